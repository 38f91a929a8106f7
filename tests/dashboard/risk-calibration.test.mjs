// node --test: the risk calibration rows (services/api/static/modules/risk-calibration.js).
import assert from "node:assert/strict";
import { test } from "node:test";

import { calibrationRows, hasCalibration } from "../../services/api/static/modules/risk-calibration.js";

const OUTCOMES = ["buildFailed", "closedUnmerged", "reverted", "followUp"];

function level(riskLevel, count, met = {}) {
  const outcomes = {};
  for (const o of OUTCOMES) {
    const c = met[o] ?? 0;
    outcomes[o] = { count: c, rate: count ? c / count : null };
  }
  return { riskLevel, count, outcomes };
}

test("one row per level and outcome, in order, with rates and words", () => {
  const metrics = { windowDays: 30, outcomes: OUTCOMES, levels: [level("high", 4, { buildFailed: 3, reverted: 1 }), level("low", 10, { followUp: 1 }), level("medium", 0)] };
  const rows = calibrationRows(metrics);
  assert.equal(rows.length, 12);
  assert.deepEqual(rows.slice(0, 4).map((r) => [r.level, r.outcome]), OUTCOMES.map((o) => ["low", o]));
  const failedHigh = rows.find((r) => r.level === "high" && r.outcome === "buildFailed");
  assert.equal(failedHigh.rate, 0.75);
  assert.equal(failedHigh.text, "high: 3 of 4 build failed (75%)");
  const medium = rows.filter((r) => r.level === "medium");
  assert.ok(medium.every((r) => r.rate === null && r.text === "medium: no analysed heads"));
  assert.equal(rows.find((r) => r.level === "low" && r.outcome === "followUp").rate, 0.1);
  assert.ok(hasCalibration(metrics));
});

test("missing or empty metrics give empty levels, never a bar", () => {
  for (const metrics of [null, {}, { levels: [] }, { outcomes: OUTCOMES, levels: [level("low", 0)] }]) {
    const rows = calibrationRows(metrics);
    assert.equal(rows.length, 12);
    assert.ok(rows.every((r) => r.rate === null));
    assert.equal(hasCalibration(metrics), false);
  }
});

test("rates are clamped to 0..1 and unknown outcomes keep their own name", () => {
  const metrics = { outcomes: ["weird"], levels: [{ riskLevel: "high", count: 2, outcomes: { weird: { count: 3, rate: 1.5 } } }] };
  const [row] = calibrationRows(metrics).filter((r) => r.level === "high");
  assert.equal(row.rate, 1);
  assert.equal(row.label, "weird");
});
