// The Photo tab: drop or pick an image → POST /v1/analyze → the image with boxes, and a panel
// per face (the same panels as the live view, numbered from left to right).

import { apiFetch, explain } from "./api.js";
import { Overlay } from "./overlay.js";
import { FacePanels } from "./panels.js";
import { whenDropped } from "./drop.js";

const $ = (id) => document.getElementById(id);

export class PhotoView {
  constructor(metrics) {
    this.metrics = metrics;
    this.status = $("photo-status");
    this.stage = $("photo-stage");
    this.img = $("photo-img");
    this.panels = new FacePanels($("photo-faces"));
    this.overlay = new Overlay($("photo-overlay"));
    this.url = "";
    whenDropped($("photo-drop"), $("photo-file"), (file) => this.analyse(file));
    // The overlay draws only when something changed; a resize marks it so.
    const draw = (t) => {
      this.overlay.draw(t);
      requestAnimationFrame(draw);
    };
    requestAnimationFrame(draw);
  }

  async analyse(file) {
    if (!file.type.startsWith("image/")) {
      this.say(`${file.name} is not an image: choose a JPEG, PNG, WebP, GIF, BMP or TIFF file.`, true);
      return;
    }
    this.say(`Analysing ${file.name}…`);
    const form = new FormData();
    form.append("file", file);
    let result;
    try {
      result = await (await apiFetch("/v1/analyze", { method: "POST", body: form })).json();
    } catch (e) {
      this.say(explain(e), true);
      if (e.status === 401) document.dispatchEvent(new CustomEvent("emotrack:token-needed"));
      return;
    }
    URL.revokeObjectURL(this.url);
    this.url = URL.createObjectURL(file);
    this.img.src = this.url;
    await this.img.decode().catch(() => {});
    this.stage.hidden = false;
    // Numbered left to right, as a person reads the photo.
    const faces = result.faces
      .slice()
      .sort((a, b) => a.box.x - b.box.x)
      .map((f, i) => ({ ...f, key: i + 1 }));
    this.panels.clear();
    this.panels.update(
      faces.map((f) => ({ key: f.key, title: `Face ${f.key}`, scores: f.probabilities, label: f.label, vibe: f.vibe, box: f.box }))
    );
    this.overlay.resize();
    this.overlay.set(
      result.width,
      result.height,
      faces.map((f) => ({ key: f.key, box: f.box, label: f.label, confidence: f.confidence, title: String(f.key) })),
      performance.now(),
      0
    );
    this.metrics.photo = result;
    const n = faces.length;
    this.say(n === 0 ? `No face found in ${file.name}.` : `${n} face${n === 1 ? "" : "s"} in ${file.name} (${result.width}×${result.height}).`);
  }

  say(text, isError = false) {
    this.status.textContent = text;
    this.status.classList.toggle("error", isError);
  }
}
