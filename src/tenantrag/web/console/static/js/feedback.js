// Feedback under the answer: thumbs up or down (toggle buttons, aria-pressed) and an optional
// comment, posted to /api/feedback with the answer's request id, which is the X-Request-ID
// header of its /api/query reply (the console is served from the API's own origin, so fetch
// reads every response header; other origins get it through CORS's Access-Control-Expose-Headers).

import { byId } from "./dom.js";

export function setupFeedback(api) {
  const group = byId("feedback");
  const up = byId("feedback-up");
  const down = byId("feedback-down");
  const more = byId("feedback-more");
  const comment = byId("feedback-comment");
  const send = byId("feedback-send");
  const status = byId("feedback-status");
  const buttons = [up, down, send];
  let requestId = null; // the answer shown
  let rating = null; // its rating as the server stored it

  function pressed(value) {
    up.setAttribute("aria-pressed", String(value === "up"));
    down.setAttribute("aria-pressed", String(value === "down"));
  }

  /** Store `value` (with the comment typed, if any); the server keeps one rating per answer. */
  async function post(value) {
    const asked = requestId;
    if (!asked) return;
    for (const button of buttons) button.disabled = true;
    status.textContent = "Saving…";
    const body = { request_id: asked, rating: value };
    const text = comment.value.trim();
    if (text) body.comment = text;
    try {
      const stored = await api.json("POST", "api/feedback", { json: body });
      if (requestId !== asked) return; // another answer came meanwhile
      rating = stored.rating;
      pressed(rating);
      const said = rating === "up" ? "helpful" : "not helpful";
      status.textContent = stored.comment
        ? `Thanks: marked ${said}, with your comment.`
        : `Thanks: marked ${said}.`;
    } catch (error) {
      if (requestId === asked) status.textContent = `Not saved: ${error.message}`;
    } finally {
      if (requestId === asked) for (const button of buttons) button.disabled = false;
    }
  }

  up.addEventListener("click", () => post("up"));
  down.addEventListener("click", () => post("down"));
  send.addEventListener("click", () => {
    if (!rating) {
      status.textContent = "Choose Helpful or Not helpful first; the comment goes with it.";
      up.focus();
      return;
    }
    post(rating);
  });

  function reset() {
    requestId = null;
    rating = null;
    pressed(null);
    comment.value = "";
    more.open = false;
    status.textContent = "";
    for (const button of buttons) button.disabled = false;
    group.hidden = true;
  }

  return {
    /** Offer the thumbs for the answer with this request id (none: nothing to rate). */
    show(id) {
      reset();
      requestId = id || null;
      group.hidden = !requestId;
    },
    reset,
  };
}
