// The canvas over a video or photo: each face's box, id and label. Boxes glide: an answer sets
// where each box is going, and every animation frame draws it part-way there, over the time
// the previous answer took to come (so the motion lasts about until the next one arrives).

import { EMOTIONS } from "./panels.js";

/** Shortest and longest glide between two answers, in milliseconds. */
const GLIDE_MIN_MS = 40;
const GLIDE_MAX_MS = 600;

const lerp = (a, b, t) => a + (b - a) * t;
const ease = (t) => 1 - (1 - t) * (1 - t);

export class Overlay {
  /** `canvas` covers the media element, which shows the frame with `object-fit: contain`. */
  constructor(canvas) {
    this.canvas = canvas;
    this.context = canvas.getContext("2d");
    this.frame = { width: 0, height: 0 };
    this.tracks = new Map(); // key -> {from, to, start, duration, text, emotion}
    this.dirty = true;
    this.readColours();
    matchMedia("(prefers-color-scheme: dark)").addEventListener("change", () => {
      this.readColours();
      this.dirty = true;
    });
    this.reducedMotion = matchMedia("(prefers-reduced-motion: reduce)");
    // Size the bitmap to the element only when the element changes size, never per frame.
    new ResizeObserver(() => this.resize()).observe(canvas);
  }

  readColours() {
    const style = getComputedStyle(document.documentElement);
    this.colours = Object.fromEntries(EMOTIONS.map((e) => [e, style.getPropertyValue(`--${e}`).trim() || "#39f"]));
  }

  resize() {
    const ratio = window.devicePixelRatio || 1;
    const width = Math.round(this.canvas.clientWidth * ratio);
    const height = Math.round(this.canvas.clientHeight * ratio);
    if (width !== this.canvas.width || height !== this.canvas.height) {
      this.canvas.width = width;
      this.canvas.height = height;
      this.dirty = true;
    }
  }

  /**
   * New targets: `faces` ([{key, box, label, confidence, title}]) on a frame of `width` x
   * `height`; boxes glide there over `duration` ms (0: jump).
   */
  set(width, height, faces, now, duration) {
    this.frame = { width, height };
    const glide = this.reducedMotion.matches ? 0 : Math.min(GLIDE_MAX_MS, Math.max(GLIDE_MIN_MS, duration));
    const next = new Map();
    for (const face of faces) {
      const old = this.tracks.get(face.key);
      const from = old ? this.position(old, now) : face.box;
      next.set(face.key, {
        from,
        to: face.box,
        start: now,
        duration: old ? glide : 0,
        text: `${face.title} ${face.label} ${Math.round(face.confidence * 100)}%`,
        emotion: face.label,
      });
    }
    this.tracks = next;
    this.dirty = true;
  }

  clear() {
    this.tracks.clear();
    this.dirty = true;
  }

  position(track, now) {
    if (track.duration <= 0) return track.to;
    const t = ease(Math.min(1, (now - track.start) / track.duration));
    const { from, to } = track;
    return { x: lerp(from.x, to.x, t), y: lerp(from.y, to.y, t), w: lerp(from.w, to.w, t), h: lerp(from.h, to.h, t) };
  }

  /** Draws the boxes where they are at `now` (call from requestAnimationFrame). */
  draw(now) {
    const moving = [...this.tracks.values()].some((t) => now - t.start < t.duration);
    if (!moving && !this.dirty) return;
    this.dirty = false;
    const { canvas, context: g } = this;
    g.clearRect(0, 0, canvas.width, canvas.height);
    const { width, height } = this.frame;
    if (!width || !height) return;
    const scale = Math.min(canvas.width / width, canvas.height / height);
    const dx = (canvas.width - width * scale) / 2;
    const dy = (canvas.height - height * scale) / 2;
    const ratio = window.devicePixelRatio || 1;
    const font = Math.round(13 * ratio);
    g.font = `600 ${font}px system-ui, sans-serif`;
    g.lineWidth = Math.max(2, 2.5 * ratio);
    for (const track of this.tracks.values()) {
      const b = this.position(track, now);
      const x = dx + b.x * scale;
      const y = dy + b.y * scale;
      const colour = this.colours[track.emotion] ?? "#39f";
      g.strokeStyle = colour;
      g.strokeRect(x, y, b.w * scale, b.h * scale);
      const textWidth = g.measureText(track.text).width + 8 * ratio;
      const labelY = y > font + 6 * ratio ? y - font - 6 * ratio : y;
      // White on near-black reads on any video; the box's colour names the emotion.
      g.fillStyle = "rgba(0, 0, 0, 0.75)";
      g.fillRect(x - g.lineWidth / 2, labelY, textWidth, font + 6 * ratio);
      g.fillStyle = "#fff";
      g.fillText(track.text, x + 4 * ratio - g.lineWidth / 2, labelY + font + 1 * ratio);
    }
  }
}
