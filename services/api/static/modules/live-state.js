// A pr_update message applied to the dashboard's state: a pure step (the state and a message
// in, the changed parts of the state and the effects to carry out out), so that it is tested
// with node's own runner (tests/dashboard/) and app.js only wires and renders.
import { PR_STATUS, describe, insightFromSocket, prKey } from "./format.js";

/** The socket's snake_case pipeline_status in the REST item's camelCase shape. */
export function snakePipeline(ps) {
  if (!ps || typeof ps !== "object") return null;
  return {
    statusPr: ps.status_pr ?? null,
    statusBuild: ps.status_build ?? null,
    statusApproval: ps.status_approval ?? null,
    statusMerge: ps.status_merge ?? null,
  };
}

/** Whether two insights show the same (a new one drops the cached history). */
export function sameInsight(a, b) {
  if (!a || !b) return a === b;
  return (
    a.commitSha === b.commitSha &&
    a.riskLevel === b.riskLevel &&
    a.summary === b.summary &&
    a.model === b.model &&
    a.confidenceScore === b.confidenceScore
  );
}

/** A repository list item's name. */
export function repoName(r) {
  return r.fullName ?? r.name ?? "";
}

/** The PR a message is about, or null when it is not a pr_update this page shows. */
function target(state, msg) {
  if (!msg || msg.event !== "pr_update" || !msg.data || typeof msg.data !== "object") return null;
  const d = msg.data;
  const full = d.pull_request && typeof d.pull_request === "object" ? d.pull_request : null;
  const repo = d.repository ?? full?.repositoryName;
  const number = d.pr_number ?? full?.number;
  if (!repo || number === null || number === undefined) return null;
  // In any letter case: a case-only rename is then reloaded under its new spelling.
  if (state.repo && repo.toLowerCase() !== state.repo.toLowerCase()) return null;
  return { d, full, repo, number, key: prKey(repo, number) };
}

/** The PR row after the message: the message's whole row, or what it says over the old one. */
function nextRow(d, full, prev, repo, number) {
  let next;
  if (full) {
    next = { ...full };
  } else if (prev) {
    next = {
      ...prev,
      title: d.title ?? prev.title,
      updatedAt: d.updated_at ?? prev.updatedAt,
      pipelineStatus: snakePipeline(d.pipeline_status) ?? prev.pipelineStatus,
    };
  } else {
    next = {
      number,
      title: d.title ?? "",
      repositoryName: repo,
      updatedAt: d.updated_at ?? null,
      pipelineStatus: snakePipeline(d.pipeline_status) ?? {},
      status: null,
      riskLevel: null,
    };
  }
  next.repositoryName = repo;
  next.number = number;
  return next;
}

/**
 * Apply one socket message.
 *
 * @param {object} state  repo, prs, versions, touched, socketSeq, messagesApplied, insights,
 *   histories, historyErrors, repos, reloadedFor (Maps and Sets are never changed in place)
 * @param {object} msg    the decoded message
 * @returns {{state: object, effects: object[]} | null}  the fields that changed, and what to
 *   do: {kind: "card", key}, {kind: "summary"}, {kind: "repos", reload}, {kind: "load"},
 *   {kind: "history", key}, {kind: "builds"}, {kind: "announce", text}; null when the message
 *   changes nothing (not a pr_update, another repository, an old version)
 */
export function applyPrUpdate(state, msg) {
  const t = target(state, msg);
  if (!t) return null;
  const { d, full, repo, number, key } = t;
  const changed = {};

  const version = Number(d.version ?? full?.version);
  if (Number.isFinite(version)) {
    const have = state.versions.get(key);
    if (have !== undefined && version <= have) return null;
    changed.versions = new Map(state.versions).set(key, version);
  }
  changed.socketSeq = state.socketSeq + 1;
  changed.touched = new Map(state.touched).set(key, changed.socketSeq);
  changed.messagesApplied = state.messagesApplied + 1;

  const prev = state.prs.get(key);
  const next = nextRow(d, full, prev, repo, number);
  let insights = state.insights;
  let dropHistory = false;
  if ("ai_insight" in d) {
    const insight = insightFromSocket(d.ai_insight, number, repo);
    if (insight) {
      dropHistory = !sameInsight(insights.get(key), insight);
      insights = new Map(insights).set(key, insight);
      if (!full || !next.riskLevel) next.riskLevel = insight.riskLevel;
    } else if (!next.riskLevel) {
      insights = new Map(insights).set(key, null);
    }
  } else if (insights.has(key) && (insights.get(key)?.riskLevel ?? null) !== (next.riskLevel ?? null)) {
    // A new risk level without the insight itself: fetch it again.
    insights = new Map(insights);
    insights.delete(key);
    dropHistory = true;
  }
  if (insights !== state.insights) changed.insights = insights;
  if (dropHistory && (state.histories.has(key) || state.historyErrors.has(key))) {
    changed.histories = new Map(state.histories);
    changed.histories.delete(key);
    changed.historyErrors = new Map(state.historyErrors);
    changed.historyErrors.delete(key);
  }
  changed.prs = new Map(state.prs).set(key, next);

  const effects = [];
  if (!state.repos.some((r) => repoName(r) === repo)) {
    changed.repos = [...state.repos, { fullName: repo }];
    // A new name may be a rename or a transfer: the list then drops the old name's rows.
    // Once per name (a name the repository list leaves out must not reload every message).
    const reload = !state.reloadedFor.has(repo);
    if (reload) changed.reloadedFor = new Set(state.reloadedFor).add(repo);
    effects.push({ kind: "repos", reload });
  }
  effects.push({ kind: "card", key }, { kind: "summary" });
  if (!full && !prev) effects.push({ kind: "load" }); // the message lacked the row: fetch it once
  effects.push({ kind: "history", key });
  effects.push({ kind: "announce", text: `PR #${number} updated: ${describe(PR_STATUS, next.status).label}` });
  // A changed build stage means the builds list changed; so may a PR seen for the first time
  // (ingest creates one when a workflow run names it).
  const buildBefore = prev?.pipelineStatus?.statusBuild ?? "pending";
  const buildAfter = next.pipelineStatus?.statusBuild ?? "pending";
  if (buildBefore !== buildAfter || !prev) effects.push({ kind: "builds" });
  return { state: changed, effects };
}
