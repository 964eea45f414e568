// The Video tab: upload to /v1/videos (with upload progress), follow the job, then show the
// annotated video, the timeline, a summary per person (from tracks.csv) and download links.

import { apiFetch, authHeaders, errorOf, explain, getToken } from "./api.js";
import { whenDropped } from "./drop.js";
import { EMOTIONS } from "./panels.js";

/** How often the job is asked for its progress. */
const POLL_MS = 500;

const $ = (id) => document.getElementById(id);

export class VideoView {
  constructor(metrics) {
    this.metrics = metrics;
    this.status = $("video-status");
    this.progress = $("video-progress");
    this.result = $("video-result");
    this.player = $("video-player");
    this.timeline = $("video-timeline");
    this.summary = $("video-summary").tBodies[0];
    this.downloads = $("video-downloads");
    this.urls = [];
    this.busy = false;
    whenDropped($("video-drop"), $("video-file"), (file) => this.run(file));
  }

  async run(file) {
    if (this.busy) {
      this.say("A video is already being analysed: wait for it to finish.", true);
      return;
    }
    this.busy = true;
    this.result.hidden = true;
    this.player.removeAttribute("src");
    for (const url of this.urls) URL.revokeObjectURL(url);
    this.urls = [];
    try {
      const job = await this.upload(file);
      const done = await this.follow(job);
      await this.show(done, file.name);
    } catch (e) {
      this.progress.hidden = true;
      this.say(explain(e), true);
      if (e.status === 401) document.dispatchEvent(new CustomEvent("emotrack:token-needed"));
    } finally {
      this.busy = false;
    }
  }

  /** POSTs the file with XHR (fetch cannot report upload progress); the job created. */
  upload(file) {
    return new Promise((resolve, reject) => {
      const xhr = new XMLHttpRequest();
      xhr.open("POST", "/v1/videos");
      for (const [k, v] of Object.entries(authHeaders())) xhr.setRequestHeader(k, v);
      xhr.setRequestHeader("Content-Type", file.type || "application/octet-stream");
      this.progress.hidden = false;
      this.progress.removeAttribute("value");
      xhr.upload.onprogress = (e) => {
        if (!e.lengthComputable) return;
        this.progress.value = e.loaded / e.total;
        this.say(`Uploading ${file.name}: ${Math.round((100 * e.loaded) / e.total)}%`);
      };
      xhr.onload = async () => {
        if (xhr.status === 202) {
          resolve(JSON.parse(xhr.responseText));
        } else {
          reject(await errorOf(new Response(xhr.responseText, { status: xhr.status, statusText: xhr.statusText })));
        }
      };
      xhr.onerror = () => reject(new Error("The upload failed: is `emotrack serve` still running?"));
      xhr.send(file);
    });
  }

  /** Polls the job until it has finished; the finished job. */
  async follow(job) {
    for (;;) {
      const total = job.frames_total;
      if (job.state === "queued") {
        this.progress.removeAttribute("value");
        this.say("Waiting for a free worker…");
      } else if (job.state === "running") {
        if (total) this.progress.value = Math.min(1, job.frames_done / total);
        this.say(`Analysing: frame ${job.frames_done}${total ? ` of ${total}` : ""}`);
      } else if (job.state === "done") {
        return job;
      } else {
        throw new Error(`The analysis ${job.state === "failed" ? "failed" : "was cancelled"}${job.error ? `: ${job.error}` : "."}`);
      }
      await new Promise((r) => setTimeout(r, POLL_MS));
      job = await (await apiFetch(`/v1/videos/${job.id}`, { cache: "no-store" })).json();
    }
  }

  async show(job, name) {
    this.progress.value = 1;
    const files = job.files ?? {};
    // Media elements cannot send a token: with one, the files come through fetch as blobs.
    const source = async (file) => {
      if (!files[file]) return "";
      if (!getToken()) return files[file];
      const url = URL.createObjectURL(await (await apiFetch(files[file])).blob());
      this.urls.push(url);
      return url;
    };
    this.player.src = await source("annotated.mp4");
    this.player.hidden = !files["annotated.mp4"];
    this.timeline.src = await source("timeline.png");
    this.timeline.hidden = !files["timeline.png"];
    const links = [];
    for (const file of Object.keys(files).sort()) {
      const a = document.createElement("a");
      a.href = await source(file);
      a.download = file;
      a.textContent = file;
      links.push(a);
    }
    this.downloads.replaceChildren("Download: ", ...links);
    this.fillSummary(files["tracks.csv"] ? await (await apiFetch(files["tracks.csv"])).text() : "");
    this.result.hidden = false;
    this.metrics.video = job;
    this.say(`Done: ${name}, ${job.frames_done} frames.${job.error ? ` ${job.error}` : ""}`);
  }

  /** One row per track: id, time on screen, dominant emotion, and the emotions' shares. */
  fillSummary(csv) {
    const rows = parseCsv(csv);
    const cells = rows.map((r) => {
      const tr = document.createElement("tr");
      const seen = `${Number(r.first_seen_s).toFixed(1)}–${Number(r.last_seen_s).toFixed(1)} s`;
      const mix = document.createElement("div");
      mix.className = "mix";
      const words = [];
      for (const e of EMOTIONS) {
        const share = Number(r[e]) || 0;
        if (share <= 0) continue;
        const part = document.createElement("span");
        part.className = e;
        part.style.width = `${share * 100}%`;
        part.title = `${e} ${Math.round(share * 100)}%`;
        mix.append(part);
        if (share >= 0.05) words.push(`${e} ${Math.round(share * 100)}%`);
      }
      mix.setAttribute("role", "img");
      mix.setAttribute("aria-label", words.join(", "));
      const mixCell = document.createElement("td");
      mixCell.append(mix);
      tr.append(cell(`#${r.id}`, "th"), cell(seen), cell(r.dominant), mixCell);
      return tr;
    });
    if (cells.length === 0) {
      const tr = document.createElement("tr");
      const td = cell("No face was tracked in this video.");
      td.colSpan = 4;
      tr.append(td);
      cells.push(tr);
    }
    this.summary.replaceChildren(...cells);
  }

  say(text, isError = false) {
    this.status.textContent = text;
    this.status.classList.toggle("error", isError);
  }
}

function cell(text, tag = "td") {
  const c = document.createElement(tag);
  c.textContent = text;
  if (tag === "th") c.scope = "row";
  return c;
}

/** The rows of a simple CSV (no quoted commas: tracks.csv has numbers and names) as objects. */
function parseCsv(text) {
  const [head, ...lines] = text.trim().split(/\r?\n/).filter(Boolean);
  if (!head) return [];
  const names = head.split(",");
  return lines.map((line) => Object.fromEntries(line.split(",").map((v, i) => [names[i], v])));
}
