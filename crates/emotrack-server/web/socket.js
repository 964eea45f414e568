// The stream's WebSocket: connects (token as a subprotocol), reconnects with back-off when the
// server goes away, and finds out why a connection failed (a browser WebSocket only says
// "closed"), by asking the server over HTTP.

import { authHeaders, getToken } from "./api.js";

/** The protocol the server speaks. */
const PROTOCOL = "emotrack.v1";
/** Reconnection waits: doubles from the first to the last, then stays. */
const RETRY_FIRST_MS = 1000;
const RETRY_MAX_MS = 10000;

export class StreamSocket {
  /**
   * `query()` gives the connection's options (URLSearchParams); `handlers`: onOpen(),
   * onMessage(object), onDown(reason, retryMs) (retryMs null: not retrying).
   */
  constructor(query, handlers) {
    this.query = query;
    this.handlers = handlers;
    this.ws = null;
    this.wanted = false;
    this.retryMs = RETRY_FIRST_MS;
    this.timer = 0;
  }

  get isOpen() {
    return this.ws?.readyState === WebSocket.OPEN;
  }

  open() {
    this.wanted = true;
    clearTimeout(this.timer);
    this.connect();
  }

  close() {
    this.wanted = false;
    clearTimeout(this.timer);
    const ws = this.ws;
    this.ws = null;
    if (ws) ws.close(1000, "stopped");
  }

  /** Sends a frame (Blob) or a command (object); false when not connected. */
  send(data) {
    if (!this.isOpen) return false;
    this.ws.send(data instanceof Blob ? data : JSON.stringify(data));
    return true;
  }

  connect() {
    const scheme = location.protocol === "https:" ? "wss:" : "ws:";
    const query = this.query();
    const protocols = [PROTOCOL];
    const token = getToken();
    // A token that is not a valid subprotocol name goes in the query instead.
    if (token && /^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/.test(token)) protocols.push(`bearer.${token}`);
    else if (token) query.set("token", token);
    const text = query.toString();
    const url = `${scheme}//${location.host}/v1/stream${text ? `?${text}` : ""}`;
    const ws = new WebSocket(url, protocols);
    this.ws = ws;
    let opened = false;
    ws.onopen = () => {
      opened = true;
      this.retryMs = RETRY_FIRST_MS;
      this.handlers.onOpen();
    };
    ws.onmessage = (event) => {
      let message;
      try {
        message = JSON.parse(event.data);
      } catch {
        return;
      }
      this.handlers.onMessage(message);
    };
    ws.onclose = async (event) => {
      if (this.ws !== ws) return; // replaced or stopped on purpose
      this.ws = null;
      if (!this.wanted) return;
      const why = opened ? closeReason(event) : await refusalReason();
      if (why.fatal) {
        this.wanted = false;
        this.handlers.onDown(why.text, null);
        return;
      }
      const wait = this.retryMs;
      this.retryMs = Math.min(RETRY_MAX_MS, this.retryMs * 2);
      this.handlers.onDown(why.text, wait);
      this.timer = setTimeout(() => this.wanted && this.connect(), wait);
    };
  }
}

function closeReason(event) {
  const reason = event.reason ? `: ${event.reason}` : "";
  switch (event.code) {
    case 1001:
      return { text: `The server closed the stream${reason}.` };
    case 1007:
    case 1009:
      return { text: `The server refused a message${reason}.` };
    default:
      return { text: `The connection to the server was lost${reason}.` };
  }
}

/** Why the server refused to open a stream, asked over HTTP. */
async function refusalReason() {
  try {
    const ready = await fetch("/readyz", { cache: "no-store" });
    if (!ready.ok) return { text: "The server is still loading its models." };
    // A job id that cannot exist: 404 means the token (if any) is accepted, 401 that it is not.
    const probe = await fetch("/v1/videos/token-check", { headers: authHeaders(), cache: "no-store" });
    if (probe.status === 401) {
      return {
        fatal: true,
        token: true,
        text: getToken()
          ? "The server refused this token: check it under “Token” (top right), then start again."
          : "This server needs a token: enter it under “Token” (top right), then start again.",
      };
    }
    return { text: "The server refused the stream (too many streams open, or a bad setting)." };
  } catch {
    return { text: "The server cannot be reached: is `emotrack serve` still running?" };
  }
}
