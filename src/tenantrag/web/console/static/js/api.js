// The console's only way to the server: the public /api endpoints, with the signed-in
// credential, so every call passes the same gateway as curl's (auth, tenant, limits, audit, costs).

import { readEvents } from "./sse.js";

/** A refused call: the API's {"error": {"code", "message"}} or a network failure. */
export class ApiError extends Error {
  constructor(status, code, message) {
    super(message);
    this.status = status;
    this.code = code;
  }
}

async function errorFrom(response) {
  let code = "http_error";
  let message = `The server answered ${response.status} ${response.statusText}.`;
  try {
    const body = await response.json();
    if (body && body.error) {
      code = String(body.error.code ?? code);
      message = String(body.error.message ?? message);
    }
  } catch {
    // not JSON: keep the status line
  }
  const retry = response.headers.get("Retry-After");
  if (response.status === 429 && retry) message += ` Try again in ${retry} s.`;
  return new ApiError(response.status, code, message);
}

export class Api {
  /**
   * session(): the current {token, tenant}; onUnauthorized(error): the credential was refused
   * (expired, revoked), so the console signs out.
   */
  constructor(session, onUnauthorized) {
    this.session = session;
    this.onUnauthorized = onUnauthorized;
  }

  url(path, query = {}) {
    const url = new URL(path, document.baseURI);
    for (const [key, value] of Object.entries(query)) {
      if (value !== undefined && value !== null && value !== "") url.searchParams.set(key, String(value));
    }
    return url;
  }

  headers(extra = {}) {
    const { token, tenant } = this.session() ?? {};
    return { Authorization: `Bearer ${token ?? ""}`, "X-Tenant-ID": tenant ?? "", ...extra };
  }

  /**
   * Drops an answer that arrives after the person who asked signed out (or someone else signed
   * in): the caller's continuation never runs, so nothing of theirs reaches the page.
   */
  unlessStale(asked, value) {
    return this.session() === asked ? value : new Promise(() => {});
  }

  async fail(response) {
    const error = await errorFrom(response);
    if (response.status === 401) this.onUnauthorized(error);
    throw error;
  }

  async send(method, path, { query, json, signal } = {}) {
    const asked = this.session();
    let response;
    try {
      response = await fetch(this.url(path, query), {
        method,
        headers: this.headers(json === undefined ? {} : { "Content-Type": "application/json" }),
        body: json === undefined ? undefined : JSON.stringify(json),
        cache: "no-store",
        credentials: "omit", // nothing ambient: the bearer header is the only credential
        signal,
      });
    } catch (error) {
      if (error.name === "AbortError") throw error;
      throw new ApiError(0, "network_error", `The server could not be reached (${error.message}).`);
    }
    await this.unlessStale(asked, null);
    if (!response.ok) await this.fail(response);
    return response;
  }

  /** The JSON body of a call (null for 204). */
  async json(method, path, options = {}) {
    const asked = this.session();
    const response = await this.send(method, path, options);
    return this.unlessStale(asked, response.status === 204 ? null : await response.json());
  }

  get(path, query) {
    return this.json("GET", path, { query });
  }

  /**
   * POST a body that answers with Server-Sent Events; onEvent(name, data) for each. Resolves to
   * the reply's X-Request-ID (what feedback on the answer names), or null.
   */
  async stream(path, json, onEvent, signal) {
    const response = await this.send("POST", path, { json, signal });
    const requestId = response.headers.get("X-Request-ID");
    const type = response.headers.get("Content-Type") ?? "";
    if (!type.startsWith("text/event-stream")) {
      onEvent("done", await response.json()); // a server that answered whole is fine too
      return requestId;
    }
    try {
      await readEvents(response, onEvent);
    } catch (error) {
      if (error instanceof ApiError || error.name === "AbortError") throw error;
      throw new ApiError(0, "stream_broken", `The answer stopped arriving (${error.message}).`);
    }
    return requestId;
  }

  /**
   * POST a multipart form with upload progress, which fetch() cannot report: XMLHttpRequest.
   * Resolves to {status, body}; refusals reject with ApiError like the other calls.
   */
  upload(path, form, onProgress, query = {}) {
    const asked = this.session();
    return new Promise((resolve, reject) => {
      const request = new XMLHttpRequest();
      request.open("POST", this.url(path, query));
      for (const [name, value] of Object.entries(this.headers())) request.setRequestHeader(name, value);
      request.responseType = "json";
      request.upload.addEventListener("progress", (event) => {
        if (event.lengthComputable) onProgress(event.loaded, event.total);
      });
      request.addEventListener("load", () => {
        if (this.session() !== asked) return; // signed out meanwhile: dropped, as in unlessStale
        const body = request.response;
        if (request.status >= 200 && request.status < 300) {
          resolve({ status: request.status, body });
          return;
        }
        const error = body && body.error ? body.error : {};
        const failure = new ApiError(
          request.status,
          String(error.code ?? "http_error"),
          String(error.message ?? `The server answered ${request.status}.`),
        );
        if (request.status === 401) this.onUnauthorized(failure);
        reject(failure);
      });
      request.addEventListener("error", () =>
        reject(new ApiError(0, "network_error", "The upload could not reach the server.")),
      );
      request.send(form);
    });
  }
}
