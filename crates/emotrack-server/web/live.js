// The Live tab: camera → canvas (≤ 640 px wide) → JPEG → WebSocket, one frame in flight (the
// next is captured when the answer arrives, so nothing queues anywhere). Answers go into
// `pending`; each animation frame applies the newest to the panels and the overlay, so the
// socket handler never touches the DOM and a burst of answers costs one update.

import { CameraError, listCameras, openCamera } from "./camera.js";
import { Overlay } from "./overlay.js";
import { FacePanels } from "./panels.js";
import { settingsQuery, watchSettings } from "./settings.js";
import { StreamSocket } from "./socket.js";

/** Widest frame sent; larger cameras are scaled down (faces stay findable, uploads small). */
const MAX_WIDTH = 640;
const JPEG_QUALITY = 0.8;
/**
 * Screen readers hear the first face's vibe when its label changes, once the new label has held
 * for ANNOUNCE_STABLE_MS (a flicker is not news) and at most every ANNOUNCE_EVERY_MS.
 */
const ANNOUNCE_STABLE_MS = 1500;
const ANNOUNCE_EVERY_MS = 4000;
/** FPS is counted over this window. */
const FPS_WINDOW_MS = 2000;
/** Statistics are written to the page at most this often. */
const STATS_EVERY_MS = 250;

const $ = (id) => document.getElementById(id);

export class LiveView {
  /** `metrics`: the page's counters (shown and read by the browser tests). */
  constructor(metrics) {
    this.metrics = metrics;
    this.video = $("video");
    this.stage = $("stage");
    this.button = $("live-start");
    this.cameraSelect = $("camera");
    this.status = $("live-status");
    this.form = $("settings");
    this.vibe = $("vibe");
    this.stats = { fps: $("fps"), latency: $("latency"), count: $("count") };
    this.panels = new FacePanels($("faces"));
    this.overlay = new Overlay($("overlay"));
    this.capture = document.createElement("canvas");
    this.captureContext = this.capture.getContext("2d", { alpha: false });
    this.socket = new StreamSocket(() => settingsQuery(this.form), {
      onOpen: () => this.onOpen(),
      onMessage: (m) => this.onMessage(m),
      onDown: (text, retry) => this.onDown(text, retry),
    });
    this.camera = null;
    this.running = false;
    this.inFlight = false;
    this.sentAt = 0;
    this.pending = null;
    this.answers = [];
    this.latency = 0;
    this.lastAnswerGap = 100;
    this.lastAnswerAt = 0;
    this.announced = { key: "", at: -Infinity };
    this.candidate = { key: "", since: 0 };
    this.statsAt = 0;

    this.button.addEventListener("click", () => (this.running ? this.stop() : this.start()));
    this.cameraSelect.addEventListener("change", () => this.running && this.switchCamera());
    watchSettings(this.form, (settings) => {
      if (this.socket.send({ type: "settings", ...settings })) this.say("Settings sent.");
    });
    requestAnimationFrame((t) => this.tick(t));
  }

  async start() {
    this.running = true;
    this.button.textContent = "Stop";
    this.say("Opening the camera…");
    try {
      await this.openCamera(this.cameraSelect.value);
    } catch (e) {
      this.stop();
      this.say(e instanceof CameraError ? e.message : `The camera could not be opened: ${e.message}`, true);
      return;
    }
    await this.fillCameras();
    this.say("Connecting to the server…");
    this.socket.open();
  }

  stop() {
    this.running = false;
    this.inFlight = false;
    this.socket.close();
    this.closeCamera();
    this.button.textContent = "Start camera";
    this.pending = null;
    this.panels.update([]);
    this.overlay.clear();
    this.answers = [];
    this.say("Stopped.");
  }

  async openCamera(deviceId) {
    const stream = await openCamera(deviceId);
    if (!this.running) {
      for (const t of stream.getTracks()) t.stop();
      return;
    }
    this.camera = stream;
    const [track] = stream.getVideoTracks();
    track.addEventListener("ended", () => {
      if (this.running && this.camera === stream) this.say("The camera stopped (unplugged?). Press “Start camera” to try again.", true);
    });
    this.video.srcObject = stream;
    await this.video.play();
    // The stage takes the camera's shape, so the picture fills it (no bars to draw around).
    const { videoWidth: w, videoHeight: h } = this.video;
    if (w && h) this.stage.style.aspectRatio = `${w} / ${h}`;
  }

  closeCamera() {
    for (const t of this.camera?.getTracks() ?? []) t.stop();
    this.camera = null;
    this.video.srcObject = null;
  }

  async switchCamera() {
    this.closeCamera();
    try {
      await this.openCamera(this.cameraSelect.value);
      this.socket.send({ type: "reset" });
    } catch (e) {
      this.say(e.message, true);
    }
  }

  async fillCameras() {
    const cameras = await listCameras().catch(() => []);
    const current = this.camera?.getVideoTracks()[0]?.getSettings().deviceId ?? "";
    const options = cameras.map((c, i) => new Option(c.label || `Camera ${i + 1}`, c.deviceId, false, c.deviceId === current));
    this.cameraSelect.replaceChildren(...options);
    this.cameraSelect.disabled = cameras.length < 2;
  }

  onOpen() {
    this.say("Streaming: frames go to the server one at a time.");
    this.inFlight = false;
    this.sendNext();
  }

  onDown(text, retryMs) {
    this.inFlight = false;
    this.pending = null;
    this.panels.update([]);
    this.overlay.clear();
    if (retryMs === null) {
      this.stop();
      this.say(text, true);
      if (/token/i.test(text)) document.dispatchEvent(new CustomEvent("emotrack:token-needed"));
    } else {
      this.say(`${text} Reconnecting in ${Math.round(retryMs / 1000)} s…`, true);
    }
  }

  /** Captures the current video frame and sends it, unless one is already on its way. */
  sendNext() {
    if (!this.running || this.inFlight || !this.socket.isOpen) return;
    const { video } = this;
    if (video.readyState < 2 || !video.videoWidth) {
      video.addEventListener("loadeddata", () => this.sendNext(), { once: true });
      return;
    }
    const scale = Math.min(1, MAX_WIDTH / video.videoWidth);
    const width = Math.round(video.videoWidth * scale);
    const height = Math.round(video.videoHeight * scale);
    if (this.capture.width !== width || this.capture.height !== height) {
      this.capture.width = width;
      this.capture.height = height;
    }
    this.captureContext.drawImage(video, 0, 0, width, height);
    this.inFlight = true;
    this.capture.toBlob(
      (blob) => {
        this.sentAt = performance.now();
        if (!blob || !this.socket.send(blob)) this.inFlight = false;
      },
      "image/jpeg",
      JPEG_QUALITY
    );
  }

  onMessage(message) {
    const answersFrame = message.type === "frame" || (message.type === "error" && message.seq !== undefined);
    if (!answersFrame) {
      if (message.type === "error") this.say(`The server refused the settings: ${message.message}`, true);
      return;
    }
    const now = performance.now();
    this.inFlight = false;
    this.latency = now - this.sentAt;
    if (this.lastAnswerAt) this.lastAnswerGap = now - this.lastAnswerAt;
    this.lastAnswerAt = now;
    this.answers.push(now);
    if (message.type === "frame") {
      this.metrics.frames++;
      this.pending = message;
    } else {
      this.say(`A frame could not be analysed: ${message.message}`, true);
    }
    this.sendNext();
  }

  /** One animation frame: apply the newest answer, draw the overlay, refresh the numbers. */
  tick(now) {
    requestAnimationFrame((t) => this.tick(t));
    if (this.pending) {
      this.apply(this.pending, now);
      this.pending = null;
    }
    this.overlay.draw(now);
    if (now - this.statsAt >= STATS_EVERY_MS) {
      this.statsAt = now;
      this.showStats(now);
    }
  }

  apply(message, now) {
    const faces = message.faces ?? [];
    this.panels.update(
      faces.map((f) => ({
        key: f.id,
        title: `Face #${f.id}`,
        scores: f.smoothed ?? f.probabilities,
        label: f.label,
        vibe: f.vibe,
      }))
    );
    this.overlay.set(
      message.width,
      message.height,
      faces.map((f) => ({ key: f.id, box: f.box, label: f.label, confidence: f.confidence, title: `#${f.id}` })),
      now,
      this.lastAnswerGap
    );
    this.metrics.updates++;
    this.metrics.reorders = this.panels.reorders;
    this.metrics.lastApplied = message;
    if (this.status.classList.contains("error")) this.say("Streaming: frames go to the server one at a time.");
    this.announce(faces, now);
  }

  /** Tells screen readers the first face's vibe when its label has changed and held (see above). */
  announce(faces, now) {
    const first = faces.reduce((a, f) => (a && a.id < f.id ? a : f), null);
    const key = first ? `${first.id}:${first.label}` : "none";
    if (key !== this.candidate.key) this.candidate = { key, since: now };
    if (key === this.announced.key || now - this.candidate.since < ANNOUNCE_STABLE_MS) return;
    if (now - this.announced.at < ANNOUNCE_EVERY_MS) return;
    if (!first && this.announced.key === "") return; // nothing said yet, nothing to take back
    this.announced = { key, at: now };
    this.vibe.textContent = first ? `Face #${first.id}: ${first.label}. ${first.vibe}` : "No face in view.";
    this.metrics.announcements++;
  }

  showStats(now) {
    while (this.answers.length && now - this.answers[0] > FPS_WINDOW_MS) this.answers.shift();
    const fps = this.running ? (this.answers.length * 1000) / FPS_WINDOW_MS : 0;
    this.metrics.fps = fps;
    setText(this.stats.fps, this.running ? fps.toFixed(1) : "–");
    setText(this.stats.latency, this.running && this.latency ? `${Math.round(this.latency)} ms` : "–");
    setText(this.stats.count, this.running ? String(this.panels.panels.size) : "–");
  }

  say(text, isError = false) {
    setText(this.status, text);
    this.status.classList.toggle("error", isError);
  }
}

function setText(element, text) {
  if (element.textContent !== text) element.textContent = text;
}
