// The stream's settings form: its values as the `settings` message and the connection's query.

/** Fields that hold whole numbers, and fields that hold decimals (the others are names). */
const WHOLE = new Set(["min_face", "detect_every", "window"]);
const DECIMAL = new Set(["label_hold"]);

/**
 * The settings the user chose (fields left empty keep the server's defaults). The form starts at
 * webcam settings: faces from 60 px, searched whole every 3rd frame (bench/RESULTS.md, Server:
 * 8 streams at 15 fps within 50 ms on 2 cores).
 */
export function readSettings(form) {
  const settings = {};
  for (const [name, raw] of new FormData(form)) {
    const value = String(raw).trim();
    if (!value) continue;
    if (WHOLE.has(name) || DECIMAL.has(name)) {
      const n = Number(value);
      if (n >= 0 && (DECIMAL.has(name) ? Number.isFinite(n) : Number.isInteger(n))) settings[name] = n;
    } else {
      settings[name] = value;
    }
  }
  return settings;
}

/** Calls `onChange(settings)` when a field is changed (not on every keystroke). */
export function watchSettings(form, onChange) {
  form.addEventListener("change", () => onChange(readSettings(form)));
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    onChange(readSettings(form));
  });
}

/** The settings as query parameters of a new connection. */
export function settingsQuery(form) {
  return new URLSearchParams(Object.entries(readSettings(form)).map(([k, v]) => [k, String(v)]));
}
