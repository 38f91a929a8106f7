// node --test: DORA's cards and chart data (services/api/static/modules/dora.js).
import assert from "node:assert/strict";
import { test } from "node:test";

import { doraBuckets, doraCards, formatSpan, wantsDoraRefetch } from "../../services/api/static/modules/dora.js";

const WORKED = {
  windowDays: 30,
  environment: "production",
  deploymentFrequency: { perDay: 0.1, perWeek: 0.7, band: "medium" },
  leadTimeForChanges: { medianSeconds: 54000, band: "elite", changes: 3 },
  changeFailureRate: { rate: 0.25, band: "low", deployments: 4, failed: 1 },
  failedDeploymentRecoveryTime: { medianSeconds: 7200, band: "high", recoveries: 1 },
  series: [
    { day: "2026-11-27", deployments: 2, failed: 0, medianLeadSeconds: 118800 },
    { day: "2026-11-28", deployments: 2, failed: 1, medianLeadSeconds: 21600 },
  ],
};

test("the four cards of the worked example (docs/METRICS.md)", () => {
  const cards = doraCards(WORKED);
  assert.deepEqual(cards.map((c) => [c.key, c.value, c.band]), [
    ["deployment-frequency", "0.7 / week", "medium"],
    ["lead-time", "15 h", "elite"],
    ["change-failure-rate", "25%", "low"],
    ["recovery-time", "2 h", "high"],
  ]);
  assert.equal(cards[0].detail, "3 successful deployments");
  assert.equal(cards[2].detail, "1 of 4 deployments failed");
  assert.equal(cards[3].detail, "median of 1 recovery");
});

test("no deployments: dashes and no bands, never NaN", () => {
  const empty = {
    windowDays: 30, environment: "production",
    deploymentFrequency: { perDay: 0, perWeek: 0, band: null },
    leadTimeForChanges: { medianSeconds: null, band: null, changes: 0 },
    changeFailureRate: { rate: null, band: null, deployments: 0, failed: 0 },
    failedDeploymentRecoveryTime: { medianSeconds: null, band: null, recoveries: 0 },
    series: [],
  };
  for (const m of [empty, null]) {
    const cards = doraCards(m);
    assert.deepEqual(cards.map((c) => c.value), ["—", "—", "—", "—"]);
    assert.ok(cards.every((c) => c.band === null && !/NaN|undefined/.test(c.detail)));
  }
  assert.equal(doraCards({ ...empty, deploymentFrequency: { perDay: 2.5, perWeek: 17.5, band: "elite" }, changeFailureRate: { ...empty.changeFailureRate, deployments: 75 } })[0].value, "2.5 / day");
  assert.equal(doraCards({ ...empty, leadTimeForChanges: { band: "bogus" } })[1].band, null);
});

test("spans", () => {
  assert.deepEqual([formatSpan(59), formatSpan(1800), formatSpan(5400), formatSpan(3 * 86400 + 43200), formatSpan(null)], ["1 min", "30 min", "1.5 h", "3.5 d", "—"]);
});

test("the series as chart buckets: failed within the day's deployments", () => {
  const buckets = doraBuckets(WORKED);
  assert.deepEqual(buckets.map((b) => [b.date.toISOString().slice(0, 10), b.success, b.failed, b.total]), [
    ["2026-11-27", 2, 0, 2],
    ["2026-11-28", 1, 1, 2],
  ]);
  assert.deepEqual(doraBuckets({ series: [{ day: "2026-11-29", deployments: 1, failed: 5 }] })[0].failed, 1);
  assert.deepEqual(doraBuckets(null), []);
});

test("which socket messages refetch", () => {
  const msg = { event: "metrics_update", data: { repository: "Octo/App", environment: "production" } };
  assert.equal(wantsDoraRefetch(msg, ""), true);
  assert.equal(wantsDoraRefetch(msg, "octo/app"), true);
  assert.equal(wantsDoraRefetch(msg, "octo/other"), false);
  assert.equal(wantsDoraRefetch({ ...msg, data: { ...msg.data, environment: "staging" } }, ""), false);
  assert.equal(wantsDoraRefetch({ event: "pr_update", data: {} }, ""), false);
});
