// DORA's four keys (GET /api/metrics/dora) as plain card and chart data.
// Pure: no DOM, so node's test runner checks it (tests/dashboard/).

export const BANDS = ["elite", "high", "medium", "low"];

/** A duration in seconds, to the largest sensible unit: "45 min", "15 h", "3.5 d". */
export function formatSpan(seconds) {
  if (typeof seconds !== "number" || !Number.isFinite(seconds)) return "—";
  const s = Math.max(0, seconds);
  if (s < 3600) return `${Math.max(1, Math.round(s / 60))} min`;
  if (s < 86400) return `${+(s / 3600).toFixed(1)} h`;
  return `${+(s / 86400).toFixed(1)} d`;
}

function band(value) {
  return BANDS.includes(value) ? value : null;
}

/**
 * The four cards: key, title, value text, band (or null), and a line of detail.
 * @param {any} m the endpoint's answer (or null while it loads or failed)
 */
export function doraCards(m) {
  const f = m?.deploymentFrequency ?? {};
  const l = m?.leadTimeForChanges ?? {};
  const c = m?.changeFailureRate ?? {};
  const r = m?.failedDeploymentRecoveryTime ?? {};
  const perDay = Number(f.perDay) || 0;
  const perWeek = Number(f.perWeek) || 0;
  const deployments = Number(c.deployments) || 0;
  return [
    {
      key: "deployment-frequency",
      title: "Deployment frequency",
      value: deployments ? (perDay >= 1 ? `${+perDay.toFixed(1)} / day` : `${+perWeek.toFixed(1)} / week`) : "—",
      band: band(f.band),
      detail: deployments ? `${Math.round(perDay * (m?.windowDays ?? 30))} successful deployments` : "no deployments",
    },
    {
      key: "lead-time",
      title: "Lead time for changes",
      value: formatSpan(l.medianSeconds),
      band: band(l.band),
      detail: `median of ${Number(l.changes) || 0} shipped change${Number(l.changes) === 1 ? "" : "s"}`,
    },
    {
      key: "change-failure-rate",
      title: "Change failure rate",
      value: typeof c.rate === "number" ? `${Math.round(c.rate * 100)}%` : "—",
      band: band(c.band),
      detail: `${Number(c.failed) || 0} of ${deployments} deployments failed`,
    },
    {
      key: "recovery-time",
      title: "Failed deployment recovery",
      value: formatSpan(r.medianSeconds),
      band: band(r.band),
      detail: `median of ${Number(r.recoveries) || 0} recover${Number(r.recoveries) === 1 ? "y" : "ies"}`,
    },
  ];
}

/**
 * The daily series as the bar chart's buckets (successful and failed deployments).
 * @param {any} m
 */
export function doraBuckets(m) {
  return (Array.isArray(m?.series) ? m.series : []).map((d) => {
    const total = Math.max(0, Number(d.deployments) || 0);
    const failed = Math.min(total, Math.max(0, Number(d.failed) || 0));
    return { date: new Date(`${d.day}T12:00:00Z`), success: total - failed, failed, other: 0, total };
  });
}

/** Whether a socket message asks this view (filtered to `repo`, "" for all) to refetch. */
export function wantsDoraRefetch(msg, repo, environment = "production") {
  if (msg?.event !== "metrics_update") return false;
  const data = msg.data ?? {};
  if (data.environment !== environment) return false;
  return !repo || String(data.repository ?? "").toLowerCase() === repo.toLowerCase();
}
