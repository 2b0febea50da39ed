// The signed-in credential: in this tab's sessionStorage only (never a cookie, never the URL),
// so it is sent to this origin's /api and nowhere else, and is gone when the tab closes.

const KEY = "tenantrag.console.session";

/** The stored {token, tenant, me}, or null. */
export function loadSession() {
  try {
    const raw = window.sessionStorage.getItem(KEY);
    const value = raw === null ? null : JSON.parse(raw);
    return value && typeof value.token === "string" && typeof value.tenant === "string"
      ? value
      : null;
  } catch {
    return null;
  }
}

export function saveSession(session) {
  window.sessionStorage.setItem(KEY, JSON.stringify(session));
}

export function clearSession() {
  window.sessionStorage.removeItem(KEY);
}

function base64UrlDecode(text) {
  const padded = text.replace(/-/g, "+").replace(/_/g, "/").padEnd(Math.ceil(text.length / 4) * 4, "=");
  const bytes = Uint8Array.from(window.atob(padded), (char) => char.charCodeAt(0));
  return new TextDecoder().decode(bytes);
}

/**
 * A JWT's claims, decoded without checking the signature: for display and to fill in the
 * tenant only. The server verifies every request; an API key (trk_...) or garbage gives null.
 */
export function tokenClaims(token) {
  const parts = token.trim().split(".");
  if (parts.length !== 3) return null;
  try {
    const claims = JSON.parse(base64UrlDecode(parts[1]));
    return claims !== null && typeof claims === "object" ? claims : null;
  } catch {
    return null;
  }
}

/** The tenant a token names in its `tenant_id` claim, or null. */
export function tenantFromToken(token) {
  const claims = tokenClaims(token);
  return claims && typeof claims.tenant_id === "string" ? claims.tenant_id : null;
}

export const TENANT_ID = /^[a-z0-9][a-z0-9-]{1,62}$/;
