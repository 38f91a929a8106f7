// Pure helpers: vocabularies, labels and formatting. No DOM access here, so
// these run unchanged under node for quick checks.

/** Stage vocabularies from the contract, mapped to a label and a visual tone. */
export const STAGES = [
  {
    key: "statusPr",
    wsKey: "status_pr",
    id: "pr",
    name: "PR",
    states: {
      opened: { label: "Opened", tone: "done" },
      updated: { label: "Updated", tone: "done" },
      closed: { label: "Closed", tone: "closed" },
    },
  },
  {
    key: "statusBuild",
    wsKey: "status_build",
    id: "build",
    name: "Build",
    states: {
      pending: { label: "Pending", tone: "waiting" },
      building: { label: "Building", tone: "active" },
      buildPassed: { label: "Passed", tone: "done" },
      buildFailed: { label: "Failed", tone: "failed" },
    },
  },
  {
    key: "statusApproval",
    wsKey: "status_approval",
    id: "approval",
    name: "Approval",
    states: {
      pending: { label: "Awaiting review", tone: "waiting" },
      approved: { label: "Approved", tone: "done" },
      changes_requested: { label: "Changes requested", tone: "warn" },
    },
  },
  {
    key: "statusMerge",
    wsKey: "status_merge",
    id: "merge",
    name: "Merge",
    states: {
      pending: { label: "Not merged", tone: "waiting" },
      merged: { label: "Merged", tone: "merged" },
      closed: { label: "Closed", tone: "closed" },
    },
  },
];

/** The derived PR status (`status`). */
export const PR_STATUS = {
  pending: { label: "Pending", tone: "waiting" },
  building: { label: "Building", tone: "active" },
  buildPassed: { label: "Build passed", tone: "done" },
  buildFailed: { label: "Build failed", tone: "failed" },
  approved: { label: "Approved", tone: "done" },
  merged: { label: "Merged", tone: "merged" },
  closed: { label: "Closed", tone: "closed" },
};

/** Build statuses (`builds.status`). */
export const BUILD_STATUS = {
  queued: { label: "Queued", tone: "waiting" },
  running: { label: "Running", tone: "active" },
  success: { label: "Passed", tone: "done" },
  failed: { label: "Failed", tone: "failed" },
};

export const RISK = {
  low: { label: "low", tone: "done" },
  medium: { label: "medium", tone: "warn" },
  high: { label: "high", tone: "failed" },
};

/** Turns an unknown raw value into something readable ("changes_requested" → "Changes requested"). */
export function humanize(raw) {
  if (raw === null || raw === undefined || raw === "") return "Unknown";
  const spaced = String(raw)
    .replace(/_/g, " ")
    .replace(/([a-z])([A-Z])/g, "$1 $2")
    .toLowerCase();
  return spaced.charAt(0).toUpperCase() + spaced.slice(1);
}

/** Label and tone for a value of a vocabulary, tolerant of values it does not know. */
export function describe(vocabulary, raw) {
  const known = raw === null || raw === undefined ? undefined : vocabulary[raw];
  return known ?? { label: humanize(raw), tone: "unknown" };
}

export function stageInfo(stage, raw) {
  return describe(stage.states, raw);
}

export function shortSha(sha) {
  return typeof sha === "string" && sha.length > 0 ? sha.slice(0, 7) : "";
}

/** Whether an insight was written for this head commit (either sha may be abbreviated). */
export function insightIsFor(insight, sha) {
  const own = insight?.commitSha;
  if (!own || !sha) return true; // nothing to compare: take it as current
  return sha.startsWith(own) || own.startsWith(sha);
}

/** An element id part for any text: every character but letters, digits and "-" is written
 * as "_" and its four-digit hex code, so different texts never share an id ("a/b.c" and
 * "a/b-c" once both became "a-b-c"). */
export function idSafe(text) {
  return String(text).replace(/[^A-Za-z0-9-]/g, (c) => `_${c.charCodeAt(0).toString(16).padStart(4, "0")}`);
}

/** A duration in seconds as "42s", "3m 05s" or "1h 02m". */
export function formatDuration(seconds) {
  if (seconds === null || seconds === undefined || !Number.isFinite(Number(seconds))) return "—";
  const total = Math.max(0, Math.round(Number(seconds)));
  if (total < 60) return `${total}s`;
  const h = Math.floor(total / 3600);
  const m = Math.floor((total % 3600) / 60);
  const s = total % 60;
  if (h > 0) return `${h}h ${String(m).padStart(2, "0")}m`;
  return `${m}m ${String(s).padStart(2, "0")}s`;
}

/**
 * Rates as fractions. The contract does not say whether rates are 0..1 or
 * 0..100, so both are accepted: a pair that sums to about 100, or any value
 * over 1, means percentages.
 */
export function normaliseRates(success, failure) {
  const s = toNumber(success);
  const f = toNumber(failure);
  const percent = (s ?? 0) + (f ?? 0) > 1.5 || (s ?? 0) > 1 || (f ?? 0) > 1;
  const scale = percent ? 100 : 1;
  return {
    success: s === null ? null : s / scale,
    failure: f === null ? null : f / scale,
  };
}

export function formatPercent(fraction) {
  if (fraction === null || fraction === undefined || !Number.isFinite(fraction)) return "—";
  const pct = fraction * 100;
  const rounded = Math.round(pct * 10) / 10;
  return `${Number.isInteger(rounded) ? rounded : rounded.toFixed(1)}%`;
}

/** Confidence (0..1, or 0..100 if a server sends percent) as a whole percentage. */
export function formatConfidence(score) {
  const n = toNumber(score);
  if (n === null) return null;
  const pct = n <= 1 ? n * 100 : n;
  return `${Math.round(Math.min(100, Math.max(0, pct)))}%`;
}

function toNumber(value) {
  if (value === null || value === undefined || value === "") return null;
  const n = Number(value);
  return Number.isFinite(n) ? n : null;
}

const RELATIVE_UNITS = [
  ["year", 365 * 24 * 3600],
  ["month", 30 * 24 * 3600],
  ["week", 7 * 24 * 3600],
  ["day", 24 * 3600],
  ["hour", 3600],
  ["minute", 60],
];

let rtf = null;
function relativeFormatter() {
  if (rtf === null) {
    rtf =
      typeof Intl !== "undefined" && Intl.RelativeTimeFormat
        ? new Intl.RelativeTimeFormat(undefined, { numeric: "auto", style: "short" })
        : false;
  }
  return rtf;
}

/** "5 min. ago" style text for an ISO timestamp; empty string when unparseable. */
export function relativeTime(iso, now = Date.now()) {
  const t = Date.parse(iso);
  if (!Number.isFinite(t)) return "";
  const diff = Math.round((t - now) / 1000);
  const abs = Math.abs(diff);
  if (abs < 45) return "just now";
  const fmt = relativeFormatter();
  for (const [unit, size] of RELATIVE_UNITS) {
    if (abs >= size || unit === "minute") {
      const value = Math.round(diff / size);
      if (fmt) return fmt.format(value, unit);
      const n = Math.abs(value);
      return diff < 0 ? `${n} ${unit}${n === 1 ? "" : "s"} ago` : `in ${n} ${unit}${n === 1 ? "" : "s"}`;
    }
  }
  return "";
}

/** Only http(s) links from the API become hrefs; anything else is dropped. */
export function safeUrl(url) {
  if (typeof url !== "string" || url === "") return null;
  try {
    const parsed = new URL(url); // absolute URLs only: relative ones throw
    if (parsed.protocol !== "https:" && parsed.protocol !== "http:") return null;
    return parsed.href;
  } catch {
    return null;
  }
}

/** Key of a pull request across repositories. */
export function prKey(repo, number) {
  return `${repo}#${number}`;
}

/** Splits "path: what changed" so the path can be shown as code. */
export function splitKeyChange(text) {
  const s = String(text ?? "");
  const m = /^([^\s:][^:]*?):\s+(.+)$/s.exec(s);
  if (m && /[./]/.test(m[1]) && m[1].length <= 200) return { path: m[1], what: m[2] };
  return { path: null, what: s };
}

/** The snake_case `ai_insight` of a pr_update, in the REST insight's camelCase. */
export function insightFromSocket(ai, prNumber, repo) {
  if (!ai || typeof ai !== "object") return null;
  return {
    id: ai.id ?? null,
    prNumber,
    repositoryName: repo,
    commitSha: ai.commit_sha ?? ai.commitSha ?? null,
    riskLevel: ai.risk_level ?? ai.riskLevel ?? null,
    summary: ai.summary ?? "",
    recommendation: ai.recommendation ?? "",
    keyChanges: Array.isArray(ai.key_changes ?? ai.keyChanges) ? (ai.key_changes ?? ai.keyChanges) : [],
    confidenceScore: ai.confidence_score ?? ai.confidenceScore ?? null,
    createdAt: ai.created_at ?? ai.createdAt ?? null,
    model: ai.model ?? null,
  };
}

/** Local calendar day key (YYYY-MM-DD) of a timestamp. */
export function dayKey(date) {
  const d = date instanceof Date ? date : new Date(date);
  const y = d.getFullYear();
  const m = String(d.getMonth() + 1).padStart(2, "0");
  const day = String(d.getDate()).padStart(2, "0");
  return `${y}-${m}-${day}`;
}

/**
 * Builds per local day over the last `days` days (oldest first), counted by
 * outcome. A build belongs to the day it started (or finished, if no start).
 */
export function bucketBuilds(builds, days, now = new Date()) {
  const n = Math.max(1, Math.min(90, Math.round(Number(days) || 7)));
  const buckets = [];
  const index = new Map();
  for (let i = n - 1; i >= 0; i--) {
    const d = new Date(now.getFullYear(), now.getMonth(), now.getDate() - i);
    const bucket = { key: dayKey(d), date: d, success: 0, failed: 0, other: 0, total: 0 };
    buckets.push(bucket);
    index.set(bucket.key, bucket);
  }
  for (const b of builds ?? []) {
    const when = b?.startedAt ?? b?.finishedAt;
    const t = Date.parse(when);
    if (!Number.isFinite(t)) continue;
    const bucket = index.get(dayKey(new Date(t)));
    if (!bucket) continue;
    if (b.status === "success") bucket.success += 1;
    else if (b.status === "failed") bucket.failed += 1;
    else bucket.other += 1;
    bucket.total += 1;
  }
  return buckets;
}

/** Exponential backoff with jitter: a delay in ms for attempt 0, 1, 2… */
export function backoffDelay(attempt, { base = 1000, cap = 30000, random = Math.random } = {}) {
  const ceiling = Math.min(cap, base * 2 ** Math.max(0, attempt));
  // "Equal jitter": never less than half the ceiling, so retries stay spread out
  // without ever hammering a server that just came back.
  return Math.round(ceiling / 2 + random() * (ceiling / 2));
}
