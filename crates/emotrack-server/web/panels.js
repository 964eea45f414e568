// One panel per face: seven bars sorted by probability. Each panel and bar is created once and
// updated in place; a change of order is animated with FLIP (First, Last, Invert, Play): note
// where each bar is, move the nodes, shift each back by the difference with a transform, then
// let the CSS transition bring it to zero. Widths are `transform: scaleX`, so nothing here
// makes the browser lay the page out per frame (only when the order changes).

export const EMOTIONS = ["angry", "disgust", "fear", "happy", "neutral", "sad", "surprise"];

/** How long a panel takes to fade out when its face is gone (matches --grow in style.css). */
const FADE_MS = 300;

/** Emotions by decreasing probability; ties keep the fixed order, so equal values never swap. */
export function ranked(scores) {
  return EMOTIONS.map((e, i) => [e, scores[e] ?? 0, i])
    .sort((a, b) => b[1] - a[1] || a[2] - b[2])
    .map(([e]) => e);
}

const percent = (p) => `${Math.round(p * 100)}%`;

class FacePanel {
  constructor(key, onReorder) {
    this.onReorder = onReorder;
    this.root = document.createElement("article");
    this.root.className = "face entering";
    this.root.dataset.key = key;
    const heading = document.createElement("h3");
    this.title = document.createElement("span");
    this.label = document.createElement("span");
    this.label.className = "label";
    heading.append(this.title, this.label);
    this.list = document.createElement("ol");
    this.list.className = "bars";
    this.bars = new Map();
    this.fills = new Map();
    this.values = new Map();
    this.shown = new Map(); // what each bar shows, to touch the DOM only on change
    for (const emotion of EMOTIONS) {
      const li = document.createElement("li");
      li.className = "bar";
      li.dataset.emotion = emotion;
      const name = document.createElement("span");
      name.className = "name";
      name.textContent = emotion;
      const meter = document.createElement("span");
      meter.className = "meter";
      const fill = document.createElement("span");
      fill.className = "fill";
      meter.append(fill);
      const value = document.createElement("span");
      value.className = "value";
      li.append(name, meter, value);
      this.list.append(li);
      this.bars.set(emotion, li);
      this.fills.set(emotion, fill);
      this.values.set(emotion, value);
    }
    this.vibe = document.createElement("p");
    this.vibe.className = "face-vibe";
    this.root.append(heading, this.list, this.vibe);
    this.root.setAttribute("aria-label", "Face");
    this.order = null; // none yet: the first order is placed, not animated
    this.removal = 0;
  }

  /** Shows `face`: {title, scores, label, vibe, box?}. */
  set(face) {
    if (this.title.textContent !== face.title) {
      this.title.textContent = face.title;
      this.root.setAttribute("aria-label", face.title);
    }
    const label = `${face.label} ${percent(face.scores[face.label] ?? 0)}`;
    if (this.label.textContent !== label) this.label.textContent = label;
    if (this.vibe.textContent !== face.vibe) this.vibe.textContent = face.vibe ?? "";
    this.root.dataset.label = face.label;
    if (face.box) {
      const b = face.box;
      this.root.dataset.box = [b.x, b.y, b.w, b.h].join(",");
    }
    for (const emotion of EMOTIONS) {
      const p = face.scores[emotion] ?? 0;
      const rounded = Math.round(p * 1000) / 1000;
      if (this.shown.get(emotion) === rounded) continue;
      this.shown.set(emotion, rounded);
      this.fills.get(emotion).style.transform = `scaleX(${rounded})`;
      this.values.get(emotion).textContent = percent(p);
      this.bars.get(emotion).dataset.p = String(rounded);
    }
    const order = ranked(face.scores);
    if (this.order === null) {
      this.place(order);
    } else if (order.some((e, i) => e !== this.order[i])) {
      this.reorder(order);
    }
  }

  /** Puts the bars in `order` (moving the same nodes) and marks the first. */
  place(order) {
    for (const emotion of order) this.list.append(this.bars.get(emotion));
    for (const [emotion, bar] of this.bars) bar.classList.toggle("first", emotion === order[0]);
    this.order = order;
  }

  /** Moves the bars into `order`, animated from where they are seen now (FLIP). */
  reorder(order) {
    const bars = [...this.bars.values()];
    // First: where each bar is seen, a transition in flight included; Last: its new place in
    // the layout (offsetTop ignores transforms; the list is the bars' offsetParent).
    const top = this.list.getBoundingClientRect().top;
    const first = new Map(bars.map((b) => [b, b.getBoundingClientRect().top - top]));
    this.place(order);
    const moved = [];
    for (const bar of bars) {
      const dy = first.get(bar) - bar.offsetTop;
      if (Math.abs(dy) < 0.5) continue;
      bar.classList.add("moving");
      bar.style.transform = `translateY(${dy}px)`; // Invert
      moved.push(bar);
    }
    this.onReorder();
    if (moved.length === 0) return; // not shown (another tab): nothing to animate
    this.list.getBoundingClientRect(); // commit the inverted positions before the transition
    for (const bar of moved) {
      bar.classList.remove("moving"); // Play: the transition brings each bar home
      bar.style.transform = "";
    }
  }
}

/** The panels of a set of faces, keyed (track id for a stream, index for a photo). */
export class FacePanels {
  constructor(container) {
    this.container = container;
    this.panels = new Map();
    this.reorders = 0;
  }

  /** Shows exactly `faces` ([{key, title, scores, label, vibe}]); others fade out. */
  update(faces) {
    const seen = new Set();
    for (const face of faces) {
      seen.add(face.key);
      let panel = this.panels.get(face.key);
      if (!panel) {
        panel = new FacePanel(face.key, () => this.reorders++);
        this.panels.set(face.key, panel);
        this.insert(panel, face.key);
        panel.set(face);
        panel.root.getBoundingClientRect();
        panel.root.classList.remove("entering");
        continue;
      }
      if (panel.removal) {
        clearTimeout(panel.removal);
        panel.removal = 0;
        panel.root.classList.remove("gone");
      }
      panel.set(face);
    }
    for (const [key, panel] of this.panels) {
      if (seen.has(key) || panel.removal) continue;
      panel.root.classList.add("gone");
      panel.removal = setTimeout(() => {
        panel.root.remove();
        this.panels.delete(key);
      }, FADE_MS);
    }
  }

  /** Removes every panel at once. */
  clear() {
    for (const panel of this.panels.values()) clearTimeout(panel.removal);
    this.panels.clear();
    this.container.replaceChildren();
  }

  /** Keeps panels in key order (track ids grow, so a new face goes last). */
  insert(panel, key) {
    const after = [...this.panels.entries()].find(([k, p]) => k > key && p !== panel);
    this.container.insertBefore(panel.root, after ? after[1].root : null);
  }
}
