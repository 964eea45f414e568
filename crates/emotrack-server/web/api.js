// HTTP to this server: the optional token, JSON errors turned into sentences a person can act on.

const TOKEN_KEY = "emotrack.token";
let token = sessionStorage.getItem(TOKEN_KEY) ?? "";

/** The token the user entered ("" when none). */
export function getToken() {
  return token;
}

/** Remembers the token for this tab's session. */
export function setToken(value) {
  token = value.trim();
  if (token) sessionStorage.setItem(TOKEN_KEY, token);
  else sessionStorage.removeItem(TOKEN_KEY);
}

/** `Authorization` for fetch and XHR when a token is set. */
export function authHeaders() {
  return token ? { Authorization: `Bearer ${token}` } : {};
}

/** An error answer of the API (`{"error": code, "message": ...}`) or a network failure. */
export class ApiError extends Error {
  constructor(status, code, message) {
    super(message);
    this.status = status;
    this.code = code;
  }
}

/** Turns a non-2xx response into an ApiError. */
export async function errorOf(response) {
  let code = `http_${response.status}`;
  let message = `${response.status} ${response.statusText}`;
  try {
    const body = await response.json();
    if (typeof body.error === "string") code = body.error;
    else if (body.error?.code) code = body.error.code;
    message = body.message ?? body.error?.message ?? message;
  } catch {
    // Not JSON: keep the status line.
  }
  return new ApiError(response.status, code, message);
}

/** fetch() with the token; rejects with an ApiError on an error status or no server. */
export async function apiFetch(path, options = {}) {
  let response;
  try {
    response = await fetch(path, { ...options, headers: { ...authHeaders(), ...options.headers } });
  } catch {
    throw new ApiError(0, "unreachable", "The server cannot be reached: is `emotrack serve` still running?");
  }
  if (!response.ok) throw await errorOf(response);
  return response;
}

/** What to tell the user about an error. */
export function explain(error) {
  if (error instanceof ApiError) {
    if (error.status === 401) {
      return token
        ? "The server refused this token: check it under “Token” (top right)."
        : "This server needs a token: enter it under “Token” (top right).";
    }
    if (error.status === 429) return `The server is busy: ${error.message} Try again in a moment.`;
    if (error.status === 503) return `The server is not ready: ${error.message}`;
    return error.message;
  }
  return String(error?.message ?? error);
}
