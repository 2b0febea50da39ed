// Documents: a page of GET /api/documents at a time, upload by choosing a file, delete after a
// confirmation. Uploads go as background jobs (POST .../upload?async=true, docs/jobs.md), so a
// large file never meets a request timeout: the 202 {job_id} is followed through
// GET /api/jobs/{id} until the job ends. A 201 (a server without jobs) shows the document at once.

import { announce, byId, el } from "./dom.js";
import { formatBytes, formatInt, formatTime } from "./format.js";

const PAGE_SIZE = 20;
const JOB_POLL_MS = 1000;
const JOB_ENDED = new Set(["succeeded", "failed", "cancelled"]);

export function setupDocuments(api) {
  const body = byId("documents-body");
  const error = byId("documents-error");
  const empty = byId("documents-empty");
  const first = byId("documents-first");
  const next = byId("documents-next");
  const pageStatus = byId("documents-page");
  const input = byId("upload");
  const progress = byId("upload-progress");
  const uploadText = byId("upload-text");
  const confirm = byId("confirm-dialog");

  // cursors[i] is the cursor that loads page i (page 0 has none).
  let cursors = [null];
  let page = 0;

  function row(doc) {
    const name = doc.title || doc.id;
    return el("tr", {},
      el("td", { class: "wrap" }, el("span", { class: "doc-title" }, name), el("span", { class: "doc-id" }, doc.id)),
      el("td", {}, doc.classification),
      el("td", { class: "num" }, formatInt(doc.chunks)),
      el("td", { class: "num" }, formatBytes(doc.bytes)),
      el("td", { class: "nowrap" }, formatTime(doc.updated_at)),
      el("td", {},
        el("button", {
          type: "button",
          class: "secondary",
          "aria-label": `Delete ${name}`,
          onclick: () => askDelete(doc),
        }, "Delete")),
    );
  }

  async function load(index = page) {
    error.textContent = "";
    try {
      const result = await api.get("api/documents", { limit: PAGE_SIZE, cursor: cursors[index] });
      page = index;
      cursors = cursors.slice(0, index + 1);
      if (result.next_cursor) cursors.push(result.next_cursor);
      body.replaceChildren(...result.documents.map(row));
      empty.hidden = result.documents.length > 0 || index > 0;
      first.disabled = index === 0;
      next.disabled = !result.next_cursor;
      pageStatus.textContent = `Page ${index + 1}, ${result.documents.length} document${result.documents.length === 1 ? "" : "s"}`;
    } catch (failure) {
      error.textContent = failure.message;
    }
  }

  function askDelete(doc) {
    const name = doc.title || doc.id;
    byId("confirm-text").textContent =
      `“${name}” (${doc.id}) will be removed from the store, every index and the answer cache. This cannot be undone.`;
    confirm.returnValue = "";
    confirm.showModal();
    confirm.addEventListener("close", async () => {
      if (confirm.returnValue !== "delete") return;
      try {
        await api.json("DELETE", `api/documents/${encodeURIComponent(doc.id)}`);
        announce(`Deleted ${name}.`);
        uploadText.textContent = `Deleted “${name}”.`;
      } catch (failure) {
        error.textContent = failure.message;
      }
      await load(page);
      byId("documents-refresh").focus(); // the row and its button are gone
    }, { once: true });
  }

  const sleep = (ms) => new Promise((resolve) => window.setTimeout(resolve, ms));

  async function followJob(jobId) {
    for (;;) {
      const job = await api.get(`api/jobs/${encodeURIComponent(jobId)}`);
      const total = Number(job.total) || 1;
      progress.max = total;
      progress.value = Number(job.done) || 0;
      uploadText.textContent = `Job ${job.job_id}: ${job.status}, ${formatInt(job.done)} of ${formatInt(job.total)} done` +
        (job.failed ? `, ${formatInt(job.failed)} failed` : "");
      if (JOB_ENDED.has(job.status)) {
        const problems = (job.errors ?? []).map((e) => `${e.id ?? ""}: ${e.message}`).join("; ");
        if (problems) uploadText.textContent += ` (${problems})`;
        return job;
      }
      await sleep(JOB_POLL_MS);
    }
  }

  async function upload(file) {
    const form = new FormData();
    form.append("file", file, file.name);
    const classification = byId("upload-classification").value;
    if (classification) form.append("classification", classification);
    progress.hidden = false;
    progress.max = 1;
    progress.value = 0;
    uploadText.textContent = `Uploading “${file.name}”…`;
    try {
      const result = await api.upload("api/documents/upload", form, (loaded, total) => {
        progress.value = loaded / total;
        uploadText.textContent = `Uploading “${file.name}”: ${Math.round((100 * loaded) / total)}%`;
      }, { async: "true" });
      if (result.status === 202 && result.body && result.body.job_id) {
        uploadText.textContent = `“${file.name}” is queued as job ${result.body.job_id}.`;
        const job = await followJob(result.body.job_id);
        if (job.status === "succeeded") uploadText.textContent += ` Stored “${file.name}”.`;
        announce(`Upload of ${file.name}: ${job.status}.`);
      } else {
        const stored = result.body.documents[0];
        progress.value = progress.max;
        uploadText.textContent =
          `Stored “${file.name}” as ${stored.id}: ${formatInt(stored.chunks)} chunks (${stored.status}).`;
        announce(`Uploaded ${file.name}.`);
      }
      await load(0);
    } catch (failure) {
      progress.hidden = true;
      uploadText.textContent = `Upload of “${file.name}” failed: ${failure.message}`;
    } finally {
      input.value = ""; // choosing the same file again uploads it again
    }
  }

  input.addEventListener("change", () => {
    if (input.files && input.files.length > 0) upload(input.files[0]);
  });
  first.addEventListener("click", () => load(0));
  next.addEventListener("click", () => load(page + 1));
  byId("documents-refresh").addEventListener("click", () => load(page));

  /** Forget everything shown (sign-out): the next person starts from page 1. */
  function reset() {
    cursors = [null];
    page = 0;
    body.replaceChildren();
    error.textContent = "";
    uploadText.textContent = "";
    pageStatus.textContent = "";
    progress.hidden = true;
    empty.hidden = true;
  }

  return { show: () => load(page), reset };
}
