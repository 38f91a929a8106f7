// Build outcomes per day as a small stacked-bar SVG. Failed builds are hatched
// and sit at the bottom of each bar, so the chart reads without colour.

import { s } from "./dom.js";

const W = 360;
const H = 168;
const PAD = { top: 12, right: 8, bottom: 30, left: 26 };

let chartId = 0;

const BUILD_WORDS = { title: "Build outcomes per day", testid: "builds-chart", success: "passed", failed: "failed" };

/**
 * @param {Array<{date: Date, success: number, failed: number, other: number, total: number}>} buckets
 * @param {{title: string, testid: string, success: string, failed: string}} [words] what the bars count
 * @returns {SVGSVGElement}
 */
export function outcomeChart(buckets, words = BUILD_WORDS) {
  const id = `chart-${++chartId}`;
  const totals = buckets.reduce(
    (acc, b) => ({
      success: acc.success + b.success,
      failed: acc.failed + b.failed,
      other: acc.other + b.other,
    }),
    { success: 0, failed: 0, other: 0 },
  );
  const max = Math.max(1, ...buckets.map((b) => b.total));
  const niceMax = max <= 4 ? max : Math.ceil(max / 2) * 2;
  const plotW = W - PAD.left - PAD.right;
  const plotH = H - PAD.top - PAD.bottom;
  const slot = plotW / buckets.length;
  const barW = Math.min(34, slot * 0.62);
  const y = (v) => PAD.top + plotH - (v / niceMax) * plotH;

  const weekday = new Intl.DateTimeFormat(undefined, { weekday: "short" });
  const dayMonth = new Intl.DateTimeFormat(undefined, { day: "numeric", month: "short" });
  const long = buckets.length > 10;
  const longDate = new Intl.DateTimeFormat(undefined, { weekday: "long", month: "short", day: "numeric" });

  const describeDay = (b) =>
    `${longDate.format(b.date)}: ${b.success} ${words.success}, ${b.failed} ${words.failed}` +
    (b.other ? `, ${b.other} queued or running` : "");

  const svg = s("svg", {
    class: "chart",
    viewBox: `0 0 ${W} ${H}`,
    role: "img",
    "aria-labelledby": `${id}-title ${id}-desc`,
    "data-testid": words.testid,
  });
  svg.append(
    s("title", { id: `${id}-title`, text: words.title }),
    s(
      "desc",
      { id: `${id}-desc` },
      `${totals.success} ${words.success}, ${totals.failed} ${words.failed}, ${totals.other} queued or running over ${buckets.length} days. ` +
        buckets.map(describeDay).join(". "),
    ),
    s(
      "defs",
      {},
      s(
        "pattern",
        {
          id: `${id}-hatch`,
          width: 5,
          height: 5,
          patternUnits: "userSpaceOnUse",
          patternTransform: "rotate(45)",
        },
        s("rect", { width: 5, height: 5, class: "hatch-bg" }),
        s("line", { x1: 0, y1: 0, x2: 0, y2: 5, class: "hatch-line" }),
      ),
    ),
  );

  // Gridlines at 0, half and max.
  const ticks = niceMax <= 1 ? [0, 1] : [0, niceMax / 2, niceMax];
  const grid = s("g", { class: "grid", "aria-hidden": "true" });
  for (const t of ticks) {
    const ty = y(t);
    grid.append(
      s("line", { x1: PAD.left, x2: W - PAD.right, y1: ty, y2: ty }),
      s("text", { x: PAD.left - 6, y: ty + 3.5, "text-anchor": "end", text: Number.isInteger(t) ? t : t.toFixed(1) }),
    );
  }
  svg.append(grid);

  const bars = s("g", { class: "bars" });
  buckets.forEach((b, i) => {
    const cx = PAD.left + slot * i + slot / 2;
    const x = cx - barW / 2;
    const g = s("g", { class: "day" });
    g.append(s("title", { text: describeDay(b) }));
    let base = 0;
    const segment = (count, cls, extra = {}) => {
      if (!count) return;
      const top = y(base + count);
      const height = y(base) - top;
      g.append(s("rect", { x, y: top, width: barW, height: Math.max(1, height - 1), rx: 2, class: cls, ...extra }));
      base += count;
    };
    segment(b.failed, "seg-failed", { fill: `url(#${id}-hatch)` });
    segment(b.success, "seg-success");
    segment(b.other, "seg-other");
    if (b.total === 0) {
      g.append(s("rect", { x, y: y(0) - 2, width: barW, height: 2, rx: 1, class: "seg-empty" }));
    } else if (!long) {
      g.append(
        s("text", { x: cx, y: y(b.total) - 3, "text-anchor": "middle", class: "count", text: b.total }),
      );
    }
    g.append(
      s("text", {
        x: cx,
        y: H - PAD.bottom + 16,
        "text-anchor": "middle",
        class: "axis",
        // A month of bars: a date under every seventh one, counting back from today.
        text: long ? ((buckets.length - 1 - i) % 7 === 0 ? dayMonth.format(b.date) : "") : weekday.format(b.date),
      }),
    );
    bars.append(g);
  });
  svg.append(bars);
  return svg;
}

/** Legend entries; the swatch is decorative, the words carry the meaning. */
export function chartLegend(h) {
  const item = (cls, label) =>
    h(
      "li",
      {},
      h("span", { class: `swatch ${cls}`, "aria-hidden": "true" }),
      h("span", { text: label }),
    );
  return h(
    "ul",
    { class: "legend", "aria-label": "Chart legend" },
    item("swatch-success", "Passed"),
    item("swatch-failed", "Failed (hatched)"),
    item("swatch-other", "Queued or running"),
  );
}

/**
 * The risk read against outcomes (rows from risk-calibration.js): for each risk level, one
 * horizontal bar per outcome, its length the share of that level's analysed heads that met it.
 * @param {ReturnType<import("./risk-calibration.js").calibrationRows>} rows
 * @returns {SVGSVGElement}
 */
export function calibrationChart(rows) {
  const id = `chart-${++chartId}`;
  const levels = [...new Set(rows.map((r) => r.level))];
  const outcomes = [...new Set(rows.map((r) => r.outcome))];
  const RW = 360;
  const left = 118;
  const right = 42;
  const barH = 9;
  const gap = 3;
  const groupGap = 14;
  const groupH = outcomes.length * (barH + gap) + groupGap;
  const RH = 8 + levels.length * groupH;
  const plotW = RW - left - right;
  const svg = s("svg", {
    class: "chart calibration",
    viewBox: `0 0 ${RW} ${RH}`,
    role: "img",
    "aria-labelledby": `${id}-title ${id}-desc`,
    "data-testid": "risk-chart",
  });
  svg.append(
    s("title", { id: `${id}-title`, text: "What happened after each risk level" }),
    s("desc", { id: `${id}-desc` }, rows.map((r) => r.text).join(". ")),
  );
  levels.forEach((level, li) => {
    const top = 8 + li * groupH;
    const g = s("g", { class: `level level-${level}`, "data-level": level });
    g.append(s("text", { x: 0, y: top + 8, class: "level-name", text: `${level} risk` }));
    const total = rows.find((r) => r.level === level)?.total ?? 0;
    g.append(s("text", { x: 0, y: top + 20, class: "axis", text: `${total} analysed` }));
    outcomes.forEach((outcome, oi) => {
      const row = rows.find((r) => r.level === level && r.outcome === outcome);
      const y = top + oi * (barH + gap);
      const bar = s("g", { class: "outcome", "data-outcome": outcome, "data-rate": row.rate ?? "" });
      bar.append(s("title", { text: row.text }));
      bar.append(s("text", { x: left - 6, y: y + barH - 1, "text-anchor": "end", class: "axis", text: row.label }));
      bar.append(s("rect", { x: left, y, width: plotW, height: barH, rx: 2, class: "track" }));
      if (row.rate !== null) {
        bar.append(s("rect", { x: left, y, width: Math.max(row.rate > 0 ? 2 : 0, row.rate * plotW), height: barH, rx: 2, class: `fill fill-${level}` }));
      }
      bar.append(s("text", { x: RW - right + 4, y: y + barH - 1, class: "count", text: row.rate === null ? "–" : `${Math.round(row.rate * 100)}%` }));
      g.append(bar);
    });
    svg.append(g);
  });
  return svg;
}
