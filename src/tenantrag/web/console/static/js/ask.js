// Ask: POST /api/query with "stream": true; the answer's sentences appear as they arrive (a
// polite live region reads them), then `done` brings the final answer with its citations, and
// the thumbs under it (feedback.js) rate it by the reply's request id.

import { announce, byId, el } from "./dom.js";
import { setupFeedback } from "./feedback.js";
import { formatInt, formatUsd } from "./format.js";

const MARKER = /\[(\d+)\]/g;

export function setupAsk(api, passages) {
  const form = byId("ask-form");
  const question = byId("question");
  const button = byId("ask");
  const answer = byId("answer");
  const meta = byId("answer-meta");
  const list = byId("citations");
  const error = byId("ask-error");
  const feedback = setupFeedback(api);

  function citationButton(citation, label) {
    return el("button", {
      type: "button",
      class: "link",
      onclick: (event) => passages.open(citation, event.currentTarget),
    }, label);
  }

  /** The answer text with each [n] marker a button that opens source n. */
  function renderAnswer(text, byIndex) {
    const parts = [];
    let last = 0;
    for (const match of text.matchAll(MARKER)) {
      const citation = byIndex.get(Number(match[1]));
      if (!citation) continue;
      parts.push(text.slice(last, match.index));
      const marker = citationButton(citation, match[0]);
      marker.classList.add("marker");
      marker.setAttribute("aria-label", `Source ${match[1]}: ${citation.title || citation.document_id}`);
      parts.push(marker);
      last = match.index + match[0].length;
    }
    parts.push(text.slice(last));
    return parts;
  }

  function renderDone(body) {
    const citations = Array.isArray(body.citations) ? body.citations : [];
    const byIndex = new Map(citations.map((c) => [Number(c.index), c]));
    // The streamed sentences were read aloud already: swap in the final text silently.
    answer.setAttribute("aria-live", "off");
    answer.replaceChildren(...renderAnswer(String(body.answer ?? ""), byIndex));
    list.replaceChildren(
      ...citations.map((citation) =>
        el("li", { "data-testid": "citation" },
          citationButton(citation, `[${citation.index}] ${citation.title || citation.document_id}`),
          el("span", { class: "citation-score" }, `score ${Number(citation.score).toPrecision(3)}`)),
      ),
    );
    if (citations.length === 0) list.replaceChildren(el("li", { class: "meta" }, "No sources were cited."));
    const notes = [
      `${citations.length} source${citations.length === 1 ? "" : "s"}`,
      `${formatInt(body.usage?.total_tokens)} tokens`,
      formatUsd(body.cost?.total_usd),
      `classification ${body.classification}`,
    ];
    if (body.cached) notes.push("from the cache");
    if (body.degraded) notes.push("degraded: the language model was unavailable, passages quoted instead");
    for (const flag of body.flags ?? []) notes.push(`flag: ${flag}`);
    meta.textContent = notes.join(" · ");
    announce(`Answer complete, ${notes[0]}.`);
  }

  let running = null; // the AbortController of the answer being streamed

  function reset() {
    running?.abort();
    running = null;
    question.value = "";
    answer.replaceChildren();
    list.replaceChildren();
    meta.textContent = "";
    error.textContent = "";
    button.disabled = false;
    feedback.reset();
  }

  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const text = question.value.trim();
    error.textContent = "";
    if (!text) {
      error.textContent = "Type a question first.";
      question.focus();
      return;
    }
    const topK = Number(byId("top-k").value) || 5;
    button.disabled = true;
    answer.setAttribute("aria-live", "polite");
    answer.replaceChildren();
    list.replaceChildren();
    feedback.reset();
    meta.textContent = "Searching your documents…";
    let done = false;
    const controller = new AbortController();
    running = controller;
    try {
      const requestId = await api.stream(
        "api/query",
        { query: text, top_k: Math.min(20, Math.max(1, topK)), mode: byId("mode").value, stream: true },
        (name, data) => {
          if (name === "delta") {
            if (meta.textContent.startsWith("Searching")) meta.textContent = "Answering…";
            answer.append(String(data.text ?? ""));
          } else if (name === "done") {
            done = true;
            renderDone(data);
          }
        },
        controller.signal,
      );
      if (!done) throw new Error("The answer ended before it was complete; ask again.");
      if (running === controller) feedback.show(requestId);
    } catch (failure) {
      if (controller.signal.aborted) return; // signed out meanwhile: reset() cleaned up
      meta.textContent = "";
      error.textContent = failure.message;
    } finally {
      if (running === controller) {
        running = null;
        button.disabled = false;
      }
    }
  });

  return {
    focus() {
      question.focus();
    },
    reset,
  };
}
