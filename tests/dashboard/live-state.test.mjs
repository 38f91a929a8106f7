// node --test: the dashboard's pr_update step (services/api/static/modules/live-state.js).
import assert from "node:assert/strict";
import { test } from "node:test";

import { applyPrUpdate, sameInsight, snakePipeline } from "../../services/api/static/modules/live-state.js";

const REPO = "octo/app";

function empty(overrides = {}) {
  return {
    repo: "",
    prs: new Map(),
    versions: new Map(),
    touched: new Map(),
    socketSeq: 0,
    messagesApplied: 0,
    insights: new Map(),
    histories: new Map(),
    historyErrors: new Map(),
    repos: [{ fullName: REPO }],
    reloadedFor: new Set(),
    ...overrides,
  };
}

function update({ number = 2, version = 1, status = "pending", build = "pending", insight, repo = REPO, full = true } = {}) {
  const pipeline = { status_pr: "opened", status_build: build, status_approval: "pending", status_merge: "pending" };
  const data = { pr_number: number, repository: repo, title: `PR ${number}`, updated_at: "2026-01-01T00:00:00+00:00", version, pipeline_status: pipeline };
  if (full) {
    data.pull_request = {
      number, title: `PR ${number}`, repositoryName: repo, status, riskLevel: insight?.risk_level ?? null,
      pipelineStatus: snakePipeline(pipeline), commitSha: "a".repeat(40),
    };
  }
  if (insight !== undefined) data.ai_insight = insight;
  return { event: "pr_update", data };
}

function step(state, msg) {
  const out = applyPrUpdate(state, msg);
  return out ? { state: { ...state, ...out.state }, effects: out.effects } : null;
}

const kinds = (effects) => effects.map((e) => e.kind);

test("a new PR's message adds its row and asks for a card, the summary and the builds", () => {
  const before = empty();
  const { state, effects } = step(before, update());
  assert.equal(state.prs.get(`${REPO}#2`).title, "PR 2");
  assert.deepEqual(kinds(effects), ["card", "summary", "history", "announce", "builds"]);
  assert.equal(state.messagesApplied, 1);
  assert.equal(state.versions.get(`${REPO}#2`), 1);
  assert.equal(before.prs.size, 0, "the state given is never changed");
});

test("an old or repeated version changes nothing", () => {
  let s = step(empty(), update({ version: 3 })).state;
  assert.equal(applyPrUpdate(s, update({ version: 3 })), null);
  assert.equal(applyPrUpdate(s, update({ version: 2, build: "buildFailed" })), null);
  s = step(s, update({ version: 4, build: "buildFailed" })).state;
  assert.equal(s.prs.get(`${REPO}#2`).pipelineStatus.statusBuild, "buildFailed");
});

test("another repository's message on a filtered page, or another event, is ignored", () => {
  const s = empty({ repo: "Octo/App" });
  assert.equal(applyPrUpdate(s, update({ repo: "other/repo" })), null);
  assert.notEqual(applyPrUpdate(s, update()), null, "letter case does not matter");
  assert.equal(applyPrUpdate(s, { event: "ping", data: {} }), null);
  assert.equal(applyPrUpdate(s, null), null);
});

test("a build change asks for the builds; the same stage does not", () => {
  let s = step(empty(), update({ version: 1 })).state;
  const same = step(s, update({ version: 2 }));
  assert.ok(!kinds(same.effects).includes("builds"));
  s = same.state;
  const red = step(s, update({ version: 3, build: "buildFailed", status: "buildFailed" }));
  assert.ok(kinds(red.effects).includes("builds"));
  assert.match(red.effects.find((e) => e.kind === "announce").text, /PR #2 updated/);
});

test("an insight is kept, and a different one drops the cached history", () => {
  const ai = { risk_level: "high", summary: "s", recommendation: "r", key_changes: [], confidence_score: 0.7, commit_sha: "a".repeat(40), model: "heuristic" };
  let s = step(empty(), update({ insight: ai })).state;
  const key = `${REPO}#2`;
  assert.equal(s.insights.get(key).riskLevel, "high");
  s = { ...s, histories: new Map([[key, ["old"]]]), historyErrors: new Map([[key, "x"]]) };
  const same = step(s, update({ version: 2, insight: ai })).state;
  assert.deepEqual(same.histories.get(key), ["old"], "the same insight keeps the history");
  const other = step(s, update({ version: 2, insight: { ...ai, risk_level: "low" } })).state;
  assert.equal(other.histories.has(key), false);
  assert.equal(other.historyErrors.has(key), false);
  assert.equal(other.insights.get(key).riskLevel, "low");
});

test("a message without the row fills in what it says, or asks to load when the row is unknown", () => {
  const unknown = step(empty(), update({ full: false }));
  assert.ok(kinds(unknown.effects).includes("load"));
  assert.equal(unknown.state.prs.get(`${REPO}#2`).status, null);
  const known = step(unknown.state, update({ full: false, version: 2, build: "building" }));
  assert.ok(!kinds(known.effects).includes("load"));
  assert.equal(known.state.prs.get(`${REPO}#2`).pipelineStatus.statusBuild, "building");
});

test("a repository the list lacks is added, and asks for one reload only", () => {
  const first = step(empty(), update({ repo: "new/name" }));
  assert.deepEqual(first.effects[0], { kind: "repos", reload: true });
  assert.deepEqual(first.state.repos.map((r) => r.fullName), [REPO, "new/name"]);
  const listless = { ...first.state, repos: [{ fullName: REPO }] };
  const second = step(listless, update({ repo: "new/name", version: 2 }));
  assert.deepEqual(second.effects[0], { kind: "repos", reload: false });
});

test("helpers", () => {
  assert.equal(snakePipeline(null), null);
  assert.deepEqual(snakePipeline({ status_pr: "opened" }), { statusPr: "opened", statusBuild: null, statusApproval: null, statusMerge: null });
  assert.ok(sameInsight(null, null));
  assert.ok(!sameInsight({ commitSha: "a" }, null));
});
