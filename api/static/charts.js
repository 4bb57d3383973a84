// Small inline SVG bar charts of weekly case counts for the emerging view: drawn here, nothing
// fetched. One bar per week, the busiest week full height; each bar's title gives its week and count.
"use strict";

const SVG_NS = "http://www.w3.org/2000/svg";

function svgEl(tag, attrs) {
  const node = document.createElementNS(SVG_NS, tag);
  for (const [name, value] of Object.entries(attrs || {})) node.setAttribute(name, String(value));
  return node;
}

// counts: cases per week, oldest first; weeks: each week's first day (ISO), same length.
function weekChart(counts, weeks, label) {
  const barW = 6, gap = 2, height = 36, base = height - 2;
  const width = Math.max(1, counts.length) * (barW + gap);
  const top = Math.max(1, ...counts);
  const svg = svgEl("svg", { class: "week-chart", width, height, viewBox: `0 0 ${width} ${height}`, role: "img" });
  const total = counts.reduce((a, b) => a + b, 0);
  svg.setAttribute("aria-label", `${label}: ${total} cases over ${counts.length} weeks, at most ${top} a week`);
  svg.append(svgEl("line", { class: "axis", x1: 0, y1: base + 0.5, x2: width, y2: base + 0.5 }));
  counts.forEach((c, i) => {
    const h = c ? Math.max(2, Math.round((c / top) * (base - 2))) : 0;
    const bar = svgEl("rect", { class: c ? "week" : "week empty", x: i * (barW + gap), y: base - h, width: barW,
      height: h || 1 });
    bar.dataset.count = String(c);
    const title = svgEl("title");
    title.textContent = `week of ${weeks[i] || "?"}: ${c} case${c === 1 ? "" : "s"}`;
    bar.append(title);
    svg.append(bar);
  });
  return svg;
}

// The chart with its span written under it, for an emerging group or a rising problem order.
function trendFigure(counts, weeks, label) {
  const fig = el("figure", "trend");
  fig.append(weekChart(counts, weeks, label));
  if (weeks.length) fig.append(el("figcaption", "muted", `weekly cases since ${weeks[0]}`));
  return fig;
}
