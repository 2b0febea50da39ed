// Bar charts as inline SVG, built with DOM calls (no library, no inline style: classes colour
// them). Each chart is an image with a title and a description for screen readers, every bar
// has a tooltip, and the same numbers sit in a table under "Show as a table".

import { el, svg } from "./dom.js";

const WIDTH = 640;
let chartCount = 0;

/** A round number at or above `value`, for the axis: 1, 2 or 5 times a power of ten. */
export function niceMax(value) {
  if (!(value > 0)) return 1;
  const power = 10 ** Math.floor(Math.log10(value));
  const step = [1, 2, 5, 10].find((f) => f * power >= value);
  return step * power;
}

function frame(title, description, width, height, body) {
  chartCount += 1;
  const titleId = `chart-${chartCount}-title`;
  const descId = `chart-${chartCount}-desc`;
  return svg("svg", {
    viewBox: `0 0 ${width} ${height}`,
    role: "img",
    "aria-labelledby": `${titleId} ${descId}`,
    focusable: "false",
  }, svg("title", { id: titleId, text: title }), svg("desc", { id: descId, text: description }), body);
}

function dataTable(caption, columns, data, format) {
  return el("details", { class: "chart-data" },
    el("summary", {}, "Show as a table"),
    el("table", {},
      el("caption", { class: "visually-hidden" }, caption),
      el("thead", {}, el("tr", {}, el("th", { scope: "col" }, columns[0]), el("th", { scope: "col", class: "num" }, columns[1]))),
      el("tbody", {}, data.map((d) => el("tr", {}, el("th", { scope: "row" }, d.label), el("td", { class: "num" }, format(d.value)))))));
}

function describe(data, format) {
  if (data.length === 0) return "No data.";
  const top = data.reduce((a, b) => (b.value > a.value ? b : a));
  const total = data.reduce((sum, d) => sum + d.value, 0);
  return `${data.length} bars, total ${format(total)}; highest ${top.label} at ${format(top.value)}.`;
}

/**
 * Vertical bars, one per data point, e.g. cost per day.
 * data: [{label, value}]; format(value): the full figure (tooltips, table); axisFormat(value):
 * the value axis's short one; tickLabel(label): the category axis's short label.
 */
export function columnChart({ title, columns, data, format, axisFormat = format, tickLabel = (l) => l }) {
  const height = 240;
  const m = { top: 12, right: 8, bottom: 32, left: 84 };
  const innerW = WIDTH - m.left - m.right;
  const innerH = height - m.top - m.bottom;
  const max = niceMax(Math.max(0, ...data.map((d) => d.value)));
  const slot = innerW / Math.max(1, data.length);
  const every = Math.ceil(data.length / 8); // at most about 8 axis labels
  const parts = [];
  for (let i = 0; i <= 4; i += 1) {
    const value = (max * i) / 4;
    const y = m.top + innerH - (innerH * i) / 4;
    parts.push(svg("line", { class: "chart-axis", x1: m.left, x2: WIDTH - m.right, y1: y, y2: y }));
    parts.push(svg("text", { class: "chart-label", x: m.left - 6, y: y + 4, "text-anchor": "end", text: axisFormat(value) }));
  }
  data.forEach((d, i) => {
    const h = max > 0 ? (innerH * d.value) / max : 0;
    const x = m.left + i * slot + slot * 0.15;
    parts.push(svg("rect", {
      class: "chart-bar", x: x.toFixed(2), y: (m.top + innerH - h).toFixed(2),
      width: Math.max(1, slot * 0.7).toFixed(2), height: h.toFixed(2),
    }, svg("title", { text: `${d.label}: ${format(d.value)}` })));
    if (i % every === 0) {
      parts.push(svg("text", {
        class: "chart-label", x: (m.left + i * slot + slot / 2).toFixed(2), y: height - 10,
        "text-anchor": "middle", text: tickLabel(d.label),
      }));
    }
  });
  return el("figure", { class: "chart" },
    el("figcaption", {}, title),
    frame(title, describe(data, format), WIDTH, height, parts),
    dataTable(title, columns, data, format));
}

/** Horizontal bars, one row per category, e.g. cost per cost type, largest first. */
export function barChart({ title, columns, data, format }) {
  const row = 30;
  const labelW = 160;
  const valueW = 120;
  const height = Math.max(1, data.length) * row + 8;
  const max = Math.max(0, ...data.map((d) => d.value));
  const innerW = WIDTH - labelW - valueW;
  const parts = data.map((d, i) => {
    const y = 4 + i * row;
    const w = max > 0 ? (innerW * d.value) / max : 0;
    return svg("g", {},
      svg("text", { class: "chart-label", x: labelW - 8, y: y + row / 2 + 4, "text-anchor": "end", text: d.label }),
      svg("rect", {
        class: `chart-bar series-${(i % 5) + 1}`, x: labelW, y: y + 4,
        width: Math.max(w, d.value > 0 ? 1 : 0).toFixed(2), height: row - 8,
      }, svg("title", { text: `${d.label}: ${format(d.value)}` })),
      svg("text", { class: "chart-value", x: labelW + w + 6, y: y + row / 2 + 4, text: format(d.value) }));
  });
  return el("figure", { class: "chart" },
    el("figcaption", {}, title),
    frame(title, describe(data, format), WIDTH, height, parts),
    dataTable(title, columns, data, format));
}
