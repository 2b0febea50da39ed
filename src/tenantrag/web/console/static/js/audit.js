// Audit: GET /api/audit, newest first, a page at a time (`before` = the oldest seq shown).
// The API filters by tenant only, so the action, outcome and user filters apply to the records
// loaded so far; "Older records" loads the next page under the same filters.

import { byId, el } from "./dom.js";
import { formatTime } from "./format.js";

const PAGE_SIZE = 200;

export function setupAudit(api) {
  const form = byId("audit-form");
  const tbody = byId("audit-body");
  const error = byId("audit-error");
  const summary = byId("audit-summary");
  const older = byId("audit-older");

  let records = [];
  let nextBefore = null;

  function filters() {
    return {
      action: byId("audit-action").value,
      outcome: byId("audit-outcome").value,
      user: byId("audit-user").value.trim().toLowerCase(),
    };
  }

  function matches(record, f) {
    return (!f.action || record.action === f.action)
      && (!f.outcome || record.outcome === f.outcome)
      && (!f.user || String(record.user_id ?? "").toLowerCase().includes(f.user));
  }

  /** The first few resource ids; a query's can be a dozen chunk ids. */
  function resources(ids) {
    const shown = ids.slice(0, 2).join(", ");
    return ids.length > 2 ? `${shown} (+${ids.length - 2} more)` : shown;
  }

  function row(record) {
    return el("tr", {},
      el("td", { class: "num" }, String(record.seq)),
      el("td", { class: "nowrap" }, formatTime(record.time)),
      el("td", {}, String(record.user_id ?? "—")),
      el("td", {}, String(record.action)),
      el("td", {}, String(record.outcome)),
      el("td", { class: "ids" }, resources(record.resource_ids ?? [])),
      el("td", { class: "mono" }, String(record.request_id ?? "")),
    );
  }

  function render() {
    const f = filters();
    const shown = records.filter((r) => matches(r, f));
    tbody.replaceChildren(...shown.map(row));
    const filtered = f.action || f.outcome || f.user;
    summary.textContent = (filtered
      ? `${shown.length} of ${records.length} loaded records match.`
      : `${records.length} records loaded.`)
      + (nextBefore === null ? " That is all of them." : " Older records can be loaded.");
    older.disabled = nextBefore === null;
  }

  async function load({ reset }) {
    error.textContent = "";
    try {
      const page = await api.get("api/audit", { limit: PAGE_SIZE, before: reset ? null : nextBefore });
      records = reset ? page.records : records.concat(page.records);
      nextBefore = page.next_before ?? null;
      render();
    } catch (failure) {
      error.textContent = failure.message;
    }
  }

  form.addEventListener("submit", (event) => {
    event.preventDefault();
    render();
  });
  form.addEventListener("change", render); // the selects filter at once; the button is for Enter
  byId("audit-newest").addEventListener("click", () => load({ reset: true }));
  older.addEventListener("click", () => load({ reset: false }));
  function clear() {
    records = [];
    nextBefore = null;
    form.reset();
    tbody.replaceChildren();
    summary.textContent = "";
    error.textContent = "";
  }

  return { show: () => load({ reset: true }), reset: clear };
}
