// The cited passage in a modal dialog: the citation's text, then the document's details from
// GET /api/documents/{id} (404 there means it was deleted since the answer was given).

import { byId, el } from "./dom.js";
import { formatBytes, formatInt, formatTime } from "./format.js";

export function createPassageViewer(api) {
  const dialog = byId("passage-dialog");
  let opener = null;
  let shown = null; // the citation on display; a late answer for an earlier one is dropped
  dialog.addEventListener("close", () => {
    if (opener && opener.isConnected) opener.focus();
    opener = null;
  });

  function facts(rows) {
    return rows.flatMap(([term, value]) => [el("dt", {}, term), el("dd", {}, String(value))]);
  }

  async function details(citation) {
    const list = byId("passage-document");
    list.replaceChildren(...facts([["Document", "loading…"]]));
    try {
      const doc = await api.get(`api/documents/${encodeURIComponent(citation.document_id)}`);
      if (shown !== citation) return;
      list.replaceChildren(
        ...facts([
          ["Document", doc.title || doc.id],
          ["Id", doc.id],
          ["Source", doc.source || "—"],
          ["Classification", doc.classification],
          ["Chunks", formatInt(doc.chunks)],
          ["Size", formatBytes(doc.bytes)],
          ["Updated", formatTime(doc.updated_at)],
        ]),
      );
    } catch (error) {
      if (shown !== citation) return;
      const why = error.status === 404 ? "It is no longer stored." : error.message;
      list.replaceChildren(...facts([["Document", why]]));
    }
  }

  return {
    /** Open `citation`'s passage; focus comes back to `from` when the dialog closes. */
    open(citation, from) {
      opener = from;
      shown = citation;
      byId("passage-title").textContent = `[${citation.index}] ${citation.title || citation.document_id}`;
      byId("passage-source").textContent =
        `Passage ${citation.chunk_id} of document ${citation.document_id}, score ${Number(citation.score).toPrecision(3)}`;
      byId("passage-text").textContent = citation.snippet;
      dialog.showModal();
      details(citation);
    },
  };
}
