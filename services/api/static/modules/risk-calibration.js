// The risk read against what happened (GET /api/metrics/risk) as plain rows for the chart.
// Pure: no DOM, so node's test runner checks it (tests/dashboard/).

export const LEVELS = ["low", "medium", "high"];

export const OUTCOME_LABELS = {
  buildFailed: "build failed",
  closedUnmerged: "closed unmerged",
  reverted: "reverted",
  followUp: "follow-up change",
};

/**
 * One row per (risk level, outcome): the share of that level's analysed heads that met the
 * outcome. Levels without analysed heads keep their rows, with `rate` null.
 * @param {{outcomes?: string[], levels?: Array<{riskLevel: string, count: number,
 *   outcomes: Record<string, {count: number, rate: number|null}>}>}|null} metrics
 */
export function calibrationRows(metrics) {
  const outcomes = Array.isArray(metrics?.outcomes) ? metrics.outcomes : Object.keys(OUTCOME_LABELS);
  const byLevel = new Map((metrics?.levels ?? []).map((l) => [l.riskLevel, l]));
  const rows = [];
  for (const level of LEVELS) {
    const entry = byLevel.get(level);
    const total = Number(entry?.count) || 0;
    for (const outcome of outcomes) {
      const met = entry?.outcomes?.[outcome];
      const count = Number(met?.count) || 0;
      const rate = total && typeof met?.rate === "number" ? Math.min(1, Math.max(0, met.rate)) : null;
      rows.push({
        level,
        outcome,
        label: OUTCOME_LABELS[outcome] ?? outcome,
        count,
        total,
        rate,
        text: rate === null ? `${level}: no analysed heads` : `${level}: ${count} of ${total} ${OUTCOME_LABELS[outcome] ?? outcome} (${Math.round(rate * 100)}%)`,
      });
    }
  }
  return rows;
}

/** Whether the chart has anything to show: at least one level with analysed heads. */
export function hasCalibration(metrics) {
  return (metrics?.levels ?? []).some((l) => Number(l.count) > 0);
}
