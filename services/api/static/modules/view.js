// Builders for the dashboard's pieces. They take plain data and return DOM;
// app.js decides when to call them.

import { chartLegend, outcomeChart } from "./chart.js";
import { h, maybeLink, pill, timeEl, toneIcon } from "./dom.js";
import {
  BUILD_STATUS,
  PR_STATUS,
  RISK,
  STAGES,
  bucketBuilds,
  describe,
  formatConfidence,
  formatDuration,
  formatPercent,
  idSafe,
  insightIsFor,
  normaliseRates,
  relativeTime,
  safeUrl,
  shortSha,
  splitKeyChange,
  stageInfo,
} from "./format.js";

/** A PR card's element id, so builds can link to it. */
export function cardId(repo, number) {
  return `pr-${idSafe(repo)}-${number}`;
}

/** The empty skeleton of a PR card; fillCard() puts the data in. */
export function createCard(repo, number, { onToggleHistory }) {
  const id = cardId(repo, number);
  const card = h("article", {
    class: "pr-card",
    id,
    "aria-labelledby": `${id}-title`,
    dataset: { testid: "pr-row", prNumber: number, repo },
  });
  const top = h("div", { class: "pr-top" });
  const stepper = h("ol", { class: "stepper", "aria-label": "Pipeline stages" });
  const stats = h("p", { class: "pr-stats" });
  const insight = h("section", { class: "insight", "aria-label": "AI risk assessment" });
  const history = h(
    "details",
    { class: "history", dataset: { testid: "insight-history" } },
    h("summary", {}, h("span", { text: "Insight history" })),
    h("div", { class: "history-body" }),
  );
  history.addEventListener("toggle", () => onToggleHistory(card, history.open));
  card.append(top, stepper, stats, insight, history);
  card._parts = { top, stepper, stats, insight, history, signatures: {} };
  return card;
}

/** Replaces a part's children only when its data changed, so focus and selection survive updates. */
function setPart(card, name, signature, build) {
  const parts = card._parts;
  if (parts.signatures[name] === signature) return false;
  parts.signatures[name] = signature;
  const el = parts[name];
  const focused = el.contains(document.activeElement) ? document.activeElement.dataset.focusKey : null;
  el.replaceChildren(...build());
  if (focused) el.querySelector(`[data-focus-key="${focused}"]`)?.focus();
  return true;
}

export function fillCard(card, pr, insight) {
  const repo = pr.repositoryName;
  const id = card.id;
  const status = describe(PR_STATUS, pr.status);
  const url = safeUrl(pr.url);
  card.classList.toggle("is-draft", Boolean(pr.isDraft));
  card.classList.toggle("is-done", pr.status === "merged" || pr.status === "closed");
  card.dataset.status = pr.status ?? "";

  setPart(
    card,
    "top",
    JSON.stringify([pr.title, pr.number, pr.author, pr.branchName, pr.baseBranch, pr.isDraft, pr.status, url]),
    () => [
      h(
        "div",
        { class: "pr-heading" },
        h(
          "h4",
          { id: `${id}-title`, class: "pr-title" },
          maybeLink(
            url,
            { class: "pr-link", dataset: { focusKey: "title" }, title: "Open on GitHub" },
            pr.title || `Pull request #${pr.number}`,
          ),
        ),
        h(
          "p",
          { class: "pr-sub" },
          h("span", { class: "pr-number", text: `#${pr.number}` }),
          pr.author ? h("span", { class: "pr-author", text: pr.author }) : null,
          pr.branchName
            ? h(
                "span",
                { class: "pr-branch" },
                h("code", { text: pr.branchName }),
                pr.baseBranch ? [h("span", { class: "arrow", "aria-label": "into", text: " → " }), h("code", { text: pr.baseBranch })] : null,
              )
            : null,
        ),
      ),
      h(
        "div",
        { class: "pr-badges" },
        pr.isDraft ? pill("Draft", "draft", { dataset: { testid: "pr-draft" } }) : null,
        pill(status.label, status.tone, { dataset: { testid: "pr-status", status: pr.status ?? "" } }),
      ),
    ],
  );

  const ps = pr.pipelineStatus ?? {};
  setPart(card, "stepper", JSON.stringify(STAGES.map((st) => ps[st.key] ?? null)), () =>
    STAGES.map((stage) => {
      const raw = ps[stage.key] ?? null;
      const info = stageInfo(stage, raw);
      return h(
        "li",
        {
          class: `step tone-${info.tone}`,
          dataset: { testid: `stage-${stage.id}`, state: raw ?? "", tone: info.tone },
        },
        h("span", { class: "step-icon" }, toneIcon(info.tone, 20)),
        h(
          "span",
          { class: "step-text" },
          h("span", { class: "step-name", text: stage.name }),
          h("span", { class: "sr-only", text: ": " }),
          h("span", { class: "step-value", text: info.label }),
        ),
      );
    }),
  );

  const files = Array.isArray(pr.filesChanged) ? pr.filesChanged.length : null;
  setPart(
    card,
    "stats",
    JSON.stringify([pr.additions, pr.deletions, files, pr.updatedAt, pr.commitSha]),
    () => [
      pr.additions != null ? h("span", { class: "adds", title: "Lines added", text: `+${pr.additions}` }) : null,
      pr.deletions != null ? h("span", { class: "dels", title: "Lines deleted", text: `−${pr.deletions}` }) : null,
      files !== null ? h("span", { text: `${files} file${files === 1 ? "" : "s"}` }) : null,
      pr.commitSha ? h("code", { class: "sha", title: pr.commitSha, text: shortSha(pr.commitSha) }) : null,
      pr.updatedAt ? h("span", {}, "updated ", timeEl(pr.updatedAt, relativeTime)) : null,
    ],
  );

  setPart(card, "insight", JSON.stringify([pr.riskLevel, pr.commitSha, insight === undefined ? "?" : insight]), () =>
    insightBlock(pr, insight),
  );
}

function riskPill(level) {
  if (!level) {
    return h(
      "span",
      { class: "risk tone-none" },
      toneIcon("waiting", 14),
      h("span", { dataset: { testid: "risk-badge", risk: "" }, text: "no insight" }),
    );
  }
  const info = describe(RISK, level);
  return h(
    "span",
    { class: `risk tone-${info.tone}`, dataset: { risk: level } },
    toneIcon(info.tone, 14),
    h("span", { dataset: { testid: "risk-badge", risk: level }, text: RISK[level] ? level : info.label }),
    h("span", { class: "risk-suffix", text: " risk" }),
  );
}

function confidenceMeter(score) {
  const text = formatConfidence(score);
  if (!text) return null;
  return h(
    "span",
    { class: "confidence", dataset: { testid: "insight-confidence" } },
    h("span", { class: "meter", "aria-hidden": "true" }, h("span", { class: "meter-fill", style: { width: `${parseInt(text, 10)}%` } })),
    h("span", { text: `${text} confidence` }),
  );
}

function keyChangeList(changes) {
  if (!Array.isArray(changes) || changes.length === 0) return null;
  return h(
    "ul",
    { class: "key-changes", "aria-label": "Key changes" },
    changes.map((c) => {
      const { path, what } = splitKeyChange(c);
      return h("li", {}, path ? [h("code", { text: path }), " ", what] : what);
    }),
  );
}

function insightBlock(pr, insight) {
  const level = insight?.riskLevel ?? pr.riskLevel ?? null;
  const head = h("div", { class: "insight-head" }, h("span", { class: "insight-label", text: "AI risk" }), riskPill(level));
  if (!level && !insight) {
    return [
      head,
      h("p", {
        class: "muted empty-insight",
        text: "No insight yet. It appears here once the analyser has looked at the latest commit.",
      }),
    ];
  }
  if (insight === undefined) {
    return [head, h("p", { class: "muted loading", text: "Loading the latest insight…" })];
  }
  if (insight === null) {
    return [head];
  }
  head.append(confidenceMeter(insight.confidenceScore) ?? "");
  const parts = [head];
  if (insight.summary) parts.push(h("p", { class: "summary", dataset: { testid: "insight-summary" }, text: insight.summary }));
  if (insight.recommendation) {
    parts.push(
      h(
        "p",
        { class: "recommendation", dataset: { testid: "insight-recommendation" } },
        h("strong", { text: "Recommendation: " }),
        insight.recommendation,
      ),
    );
  }
  const list = keyChangeList(insight.keyChanges);
  if (list) parts.push(list);
  if (!insightIsFor(insight, pr.commitSha)) {
    parts.push(
      h("p", {
        class: "stale",
        text: `This assessment is for an earlier commit (${shortSha(insight.commitSha)}); the latest commit is waiting for analysis.`,
      }),
    );
  }
  parts.push(
    h(
      "p",
      { class: "insight-meta" },
      insight.model ? h("span", { text: insight.model }) : null,
      insight.commitSha ? h("code", { title: insight.commitSha, text: shortSha(insight.commitSha) }) : null,
      insight.createdAt ? timeEl(insight.createdAt, relativeTime) : null,
    ),
  );
  return parts;
}

/** Body of the insight-history disclosure. */
export function historyBody(entries, error) {
  if (error) return [h("p", { class: "error-text", text: `Could not load the history: ${error}` })];
  if (entries === undefined) return [h("p", { class: "muted", text: "Loading…" })];
  if (!entries.length) return [h("p", { class: "muted", text: "No insights yet for this pull request." })];
  return [
    h(
      "ol",
      { class: "history-list" },
      entries.map((e) =>
        h(
          "li",
          { class: "history-item", dataset: { testid: "insight-history-item" } },
          h(
            "div",
            { class: "history-head" },
            riskPillPlain(e.riskLevel),
            formatConfidence(e.confidenceScore) ? h("span", { class: "muted", text: `${formatConfidence(e.confidenceScore)} confidence` }) : null,
            e.commitSha ? h("code", { title: e.commitSha, text: shortSha(e.commitSha) }) : null,
            e.createdAt ? timeEl(e.createdAt, relativeTime) : null,
          ),
          e.summary ? h("p", { text: e.summary }) : null,
          e.recommendation ? h("p", { class: "muted" }, h("strong", { text: "Recommendation: " }), e.recommendation) : null,
          keyChangeList(e.keyChanges),
        ),
      ),
    ),
  ];
}

function riskPillPlain(level) {
  const info = level ? describe(RISK, level) : { label: "unknown", tone: "unknown" };
  return h("span", { class: `risk tone-${info.tone}` }, toneIcon(info.tone, 14), h("span", { text: `${level ?? "unknown"} risk` }));
}

/** A repository group: heading, counts, and the list that holds its cards. */
export function createGroup(repo) {
  const headingId = `repo-${idSafe(repo)}`;
  const list = h("div", { class: "pr-list" });
  const meta = h("p", { class: "group-meta" });
  const group = h(
    "section",
    { class: "repo-group", "aria-labelledby": headingId, dataset: { testid: "repo-group", repo } },
    h("div", { class: "group-head" }, h("h3", { id: headingId, text: repo }), meta),
    list,
  );
  group._list = list;
  group._meta = meta;
  return group;
}

export function groupMeta(prs) {
  const open = prs.filter((p) => p.status !== "merged" && p.status !== "closed").length;
  const failing = prs.filter((p) => p.status === "buildFailed").length;
  const bits = [`${open} open`];
  if (failing) bits.push(`${failing} failing`);
  bits.push(`${prs.length} total`);
  return bits.join(" · ");
}

export function emptyState(title, ...body) {
  return h("div", { class: "empty", dataset: { testid: "empty-state" } }, h("p", { class: "empty-title", text: title }), ...body);
}

export function noRepositories() {
  return emptyState(
    "No repositories yet",
    h(
      "p",
      {},
      "FlowLens fills up as soon as GitHub sends it a webhook, and this page updates by itself. To see it come alive:",
    ),
    h(
      "ol",
      { class: "steps" },
      h("li", {}, "Run ", h("code", { text: "make dev" }), ". It prints the webhook URL and secret."),
      h("li", {}, "Replay the demo story with ", h("code", { text: "flowlens dev --demo" }), ", or send payload files with ", h("code", { text: "flowlens replay FILE…" }), "."),
      h(
        "li",
        {},
        "For a real repository: in GitHub, Settings → Webhooks → Add webhook, paste the webhook URL (through a tunnel if needed) and the secret, content type ",
        h("code", { text: "application/json" }),
        ".",
      ),
    ),
  );
}

/** Builds table body rows. `prLink(repo, n)` returns an in-page href or null. */
export function buildRows(builds, { showRepo, prLink }) {
  return builds.map((b) => {
    const info = describe(BUILD_STATUS, b.status);
    const url = safeUrl(b.url);
    return h(
      "tr",
      { role: "row", dataset: { testid: "build-row", buildId: b.id, status: b.status ?? "" } },
      h(
        "th",
        { scope: "row", role: "rowheader", class: "wf" },
        maybeLink(url, { class: "build-link" }, b.workflowName || b.provider || "Build"),
        showRepo && b.repositoryName ? h("span", { class: "cell-sub", text: b.repositoryName }) : null,
      ),
      h("td", { role: "cell", class: "status", dataset: { state: b.status ?? "" } }, pill(info.label, info.tone)),
      h(
        "td",
        { role: "cell", dataset: { label: "Branch" } },
        b.branch ? h("code", { class: "branch", text: b.branch }) : h("span", { class: "muted", text: "—" }),
      ),
      h(
        "td",
        { role: "cell", dataset: { label: "Commit" } },
        b.commitSha ? h("code", { title: b.commitSha, text: shortSha(b.commitSha) }) : h("span", { class: "muted", text: "—" }),
      ),
      h(
        "td",
        { role: "cell", dataset: { label: "PR" } },
        b.prNumber != null
          ? (() => {
              const href = prLink(b.repositoryName, b.prNumber);
              return href ? h("a", { href, text: `#${b.prNumber}` }) : h("span", { text: `#${b.prNumber}` });
            })()
          : h("span", { class: "muted", text: "—" }),
      ),
      h(
        "td",
        { role: "cell", class: "num", dataset: { label: "Duration" } },
        b.durationSeconds != null ? formatDuration(b.durationSeconds) : h("span", { class: "muted", text: "—" }),
      ),
      h("td", { role: "cell", dataset: { label: "Started" } }, timeEl(b.startedAt ?? b.finishedAt, relativeTime)),
    );
  });
}

/** Metric cards' values; returns the cards in order. */
export function metricCards(metrics) {
  const m = metrics ?? {};
  const rates = normaliseRates(m.successRate, m.failureRate);
  const count = Number(m.buildCount ?? 0);
  const windowText = `${count} build${count === 1 ? "" : "s"} in ${m.windowDays ?? 7} days`;
  const last = m.lastBuildStatus ? describe(BUILD_STATUS, m.lastBuildStatus) : null;
  const card = (key, title, value, sub, tone) =>
    h(
      "div",
      { class: `metric${tone ? ` tone-${tone}` : ""}`, dataset: { testid: `metric-card-${key}` } },
      h("h3", { class: "metric-title", text: title }),
      h("p", { class: "metric-value", dataset: { testid: `metric-${key}` } }, ...value),
      h("p", { class: "metric-sub" }, ...sub),
    );
  const rateBar = (fraction, cls) =>
    fraction === null ? null : h("span", { class: `bar ${cls}`, "aria-hidden": "true" }, h("span", { style: { width: `${Math.round(Math.min(1, Math.max(0, fraction)) * 100)}%` } }));
  return [
    card("success-rate", "Success rate", [count ? formatPercent(rates.success) : "—"], [rateBar(count ? rates.success : null, "bar-success"), windowText]),
    card("failure-rate", "Failure rate", [count ? formatPercent(rates.failure) : "—"], [rateBar(count ? rates.failure : null, "bar-failed"), windowText]),
    card("avg-build-time", "Average build time", [formatDuration(m.avgBuildTimeSeconds)], [count ? "finished builds" : "no builds yet"]),
    card(
      "last-build",
      "Last build",
      [last ? pill(last.label, last.tone, { dataset: { state: m.lastBuildStatus } }) : "—"],
      m.lastUpdated ? ["updated ", timeEl(m.lastUpdated, relativeTime)] : ["no builds yet"],
    ),
  ];
}

export function chartBlock(builds, days) {
  const buckets = bucketBuilds(builds, days);
  const total = buckets.reduce((n, b) => n + b.total, 0);
  return [
    outcomeChart(buckets),
    chartLegend(h),
    h("p", {
      class: "chart-note muted",
      text: total
        ? `From the ${builds.length} most recent build${builds.length === 1 ? "" : "s"}.`
        : `No builds in the last ${buckets.length} days.`,
    }),
  ];
}
