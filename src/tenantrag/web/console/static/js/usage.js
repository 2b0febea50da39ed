// Usage: GET /api/usage for a date range: cost by day and by cost type as charts, with the
// tenant's monthly quotas and how much of each is used.

import { byId, el } from "./dom.js";
import { formatBytes, formatInt, formatPercent, formatTime, formatUsd, todayUtc } from "./format.js";
import { barChart, columnChart } from "./chart.js";

const DAY_MS = 86_400_000;

/** Every day from `start` to `end` (YYYY-MM-DD, inclusive) with its cost; missing days are 0. */
export function dailySeries(start, end, byDay) {
  const days = [];
  for (let t = Date.parse(`${start}T00:00:00Z`); t <= Date.parse(`${end}T00:00:00Z`); t += DAY_MS) {
    const day = new Date(t).toISOString().slice(0, 10);
    days.push({ label: day, value: Number(byDay?.[day]?.amount_usd) || 0 });
  }
  return days;
}

/** Axis labels: dollars with at most three significant digits, however small. */
const axisFormat = new Intl.NumberFormat(undefined, { style: "currency", currency: "USD", maximumSignificantDigits: 3 });
const axisUsd = (value) => axisFormat.format(value);

export function setupUsage(api) {
  const form = byId("usage-form");
  const from = byId("usage-from");
  const to = byId("usage-to");
  const error = byId("usage-error");
  const total = byId("usage-total");
  const charts = byId("usage-charts");
  const quotas = byId("quotas");

  function quotaRow(id, label, used, limit, format) {
    const ratio = limit > 0 ? used / limit : 0;
    return [
      el("dt", { id }, label),
      el("dd", {},
        el("meter", { min: 0, max: limit > 0 ? limit : 1, value: Math.min(used, limit), low: limit * 0.8, high: limit * 0.95, optimum: 0, "aria-labelledby": id }),
        `${format(used)} of ${format(limit)} (${formatPercent(ratio)})`),
    ];
  }

  function render(report) {
    const byType = Object.entries(report.by_type ?? {})
      .map(([label, t]) => ({ label, value: Number(t.amount_usd) || 0 }))
      .sort((a, b) => b.value - a.value);
    const days = dailySeries(report.start, report.end, report.by_day);
    total.textContent = `${formatUsd(report.total?.amount_usd)} and ${formatInt(report.total?.tokens)} tokens from ${report.start} to ${report.end} (UTC)`;
    charts.replaceChildren(
      columnChart({
        title: "Cost by day (USD)", columns: ["Day", "Cost"], data: days,
        format: formatUsd, axisFormat: axisUsd, tickLabel: (day) => day.slice(5),
      }),
      byType.length > 0
        ? barChart({ title: "Cost by type (USD)", columns: ["Cost type", "Cost"], data: byType, format: formatUsd })
        : el("p", { class: "chart-empty" }, "No costs in this period."),
    );
    const q = report.quotas ?? {};
    quotas.replaceChildren(
      ...quotaRow("quota-tokens", "Monthly tokens", q.monthly_tokens?.used ?? 0, q.monthly_tokens?.limit ?? 0, formatInt),
      ...quotaRow("quota-cost", "Monthly cost", q.monthly_cost_usd?.used ?? 0, q.monthly_cost_usd?.limit ?? 0, formatUsd),
      ...quotaRow("quota-storage", "Storage", q.storage_bytes?.used ?? 0, q.storage_bytes?.limit ?? 0, formatBytes),
      ...quotaRow("quota-documents", "Documents", q.documents?.used ?? 0, q.documents?.limit ?? 0, formatInt),
      el("dt", {}, "Resets"),
      el("dd", {}, q.resets_at ? `${formatTime(q.resets_at)} UTC` : "—"),
    );
  }

  async function load() {
    error.textContent = "";
    if (!to.value) to.value = todayUtc();
    if (!from.value) from.value = `${to.value.slice(0, 8)}01`;
    try {
      render(await api.get("api/usage", { from: from.value, to: to.value }));
    } catch (failure) {
      error.textContent = failure.message;
    }
  }

  form.addEventListener("submit", (event) => {
    event.preventDefault();
    load();
  });
  function reset() {
    for (const node of [error, total, charts, quotas]) node.replaceChildren();
    from.value = "";
    to.value = "";
  }

  return { show: load, reset };
}
