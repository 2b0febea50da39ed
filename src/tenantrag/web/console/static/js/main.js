// The console's entry point: sign in, then four tabs (Ask, Documents, Usage, Audit), each a
// module that talks to the public /api with the signed-in credential.

import { Api } from "./api.js";
import { setupAsk } from "./ask.js";
import { setupAudit } from "./audit.js";
import { setupDocuments } from "./documents.js";
import { byId } from "./dom.js";
import { createPassageViewer } from "./passage.js";
import { clearSession, loadSession, saveSession, TENANT_ID, tenantFromToken } from "./session.js";
import { setupTabs } from "./tabs.js";
import { setupUsage } from "./usage.js";

let session = loadSession();
// A credential refused mid-session (expired, revoked) signs out; during sign-in the form says why.
const api = new Api(() => session, (error) => {
  if (session?.me) signOut(`Signed out: ${error.message}`);
});

const signinView = byId("signin-view");
const appView = byId("app-view");
const tokenInput = byId("token");
const tenantInput = byId("tenant");
const signinError = byId("signin-error");

const ask = setupAsk(api, createPassageViewer(api));
const sections = { documents: setupDocuments(api), usage: setupUsage(api), audit: setupAudit(api) };
const tabs = setupTabs(document.querySelector('[role="tablist"]'), (name) => sections[name]?.show());

function showApp() {
  const me = session.me ?? {};
  byId("identity-text").textContent = `${me.user_id ?? "?"} · tenant ${me.tenant_id ?? session.tenant}`;
  byId("identity").hidden = false;
  signinView.hidden = true;
  appView.hidden = false;
}

function showSignIn(message = "") {
  appView.hidden = true;
  byId("identity").hidden = true;
  signinView.hidden = false;
  signinError.textContent = message;
}

function signOut(message = "") {
  session = null;
  clearSession();
  // Nothing the last person saw may stay in the page for the next one.
  ask.reset();
  for (const section of Object.values(sections)) section.reset();
  for (const dialog of document.querySelectorAll("dialog[open]")) dialog.close();
  byId("identity-text").textContent = "";
  showSignIn(message);
  tokenInput.value = "";
  tokenInput.focus();
}

// A JWT names its tenant: fill the field in, unless the person typed one of their own.
let tenantTyped = false;
tenantInput.addEventListener("input", () => {
  tenantTyped = tenantInput.value !== "";
});
tokenInput.addEventListener("input", () => {
  const tenant = tenantFromToken(tokenInput.value);
  if (!tenantTyped) tenantInput.value = tenant ?? "";
});

byId("signin-form").addEventListener("submit", async (event) => {
  event.preventDefault();
  const token = tokenInput.value.trim();
  const tenant = tenantInput.value.trim() || tenantFromToken(token) || "";
  signinError.textContent = "";
  if (!token) {
    signinError.textContent = "Paste a token or an API key.";
    tokenInput.focus();
    return;
  }
  if (!TENANT_ID.test(tenant)) {
    signinError.textContent = "Type your tenant's id (lowercase letters, digits and '-'): this credential does not name one.";
    tenantInput.focus();
    return;
  }
  session = { token, tenant };
  try {
    session.me = await api.get("api/me"); // the server's word on who this is
  } catch (error) {
    session = null;
    signinError.textContent = error.message;
    tokenInput.focus();
    return;
  }
  saveSession(session);
  tokenInput.value = "";
  showApp();
  tabs.show("ask");
  ask.focus();
});

byId("sign-out").addEventListener("click", () => signOut());

window.addEventListener("hashchange", () => {
  if (session) tabs.show(window.location.hash.slice(1));
});

async function start() {
  if (!session) {
    showSignIn();
    return;
  }
  try {
    session.me = await api.get("api/me"); // still valid? (it may have expired since)
  } catch (error) {
    if (session) signOut(error.message);
    return;
  }
  showApp();
  tabs.show(window.location.hash.slice(1) || "ask");
}

start();
