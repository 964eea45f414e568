// emotrack's web page in real Chromium (Debian's /usr/bin/chromium, driven by playwright-core),
// against a running `emotrack serve` (scripts/test-browser.sh starts one and sets EMOTRACK_URL).
// The camera is Chromium's fake device playing a shared-media video converted to .y4m here.
//
// Without Chromium, the media or the server these tests print `SKIPPED: ...` and pass, unless
// EMOTRACK_REQUIRE_DATA=1 (CI), where they fail.

import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { execFileSync, spawn } from "node:child_process";
import { existsSync, mkdirSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { chromium } from "playwright-core";

const here = path.dirname(fileURLToPath(import.meta.url));
const repo = path.resolve(here, "../../..");
const media = process.env.EMOTRACK_MEDIA ?? path.resolve(repo, "../shared/media");
const executablePath = process.env.CHROMIUM ?? "/usr/bin/chromium";
const server = process.env.EMOTRACK_URL;
const binary = process.env.EMOTRACK_BIN;
const required = process.env.EMOTRACK_REQUIRE_DATA === "1";
/** Screenshots, for people to look at (the test says where). */
const shots = path.join(repo, "target", "browser");

const EMOTIONS = ["angry", "disgust", "fear", "happy", "neutral", "sad", "surprise"];
/** Updates watched for stable DOM nodes and re-orderings (the issue asks for at least 100). */
const UPDATES = 100;

const missing = [
  [existsSync(executablePath), `no Chromium at ${executablePath} (apt-get install chromium)`],
  [existsSync(path.join(media, "videos", "fer_test.mp4")), `no shared media at ${media}`],
  [Boolean(server), "EMOTRACK_URL is not set (run scripts/test-browser.sh)"],
  [Boolean(binary), "EMOTRACK_BIN is not set (run scripts/test-browser.sh)"],
].filter(([ok]) => !ok).map(([, why]) => why);

let browser;
let work;
let clip;

/** Skips (or, in CI, fails) a test whose prerequisites are missing; true when it may run. */
function available(t) {
  if (missing.length === 0) return true;
  const why = missing.join("; ");
  if (required) assert.fail(`EMOTRACK_REQUIRE_DATA=1 but ${why}`);
  console.log(`SKIPPED: ${t.name}: ${why}`);
  t.skip(why);
  return false;
}

before(async () => {
  if (missing.length > 0) return;
  work = mkdtempSync(path.join(tmpdir(), "emotrack-browser-"));
  mkdirSync(shots, { recursive: true });
  // The fake camera: one smiling woman (596x336, 25 fps, 4.6 s), looped by Chromium.
  clip = path.join(work, "camera.y4m");
  ffmpeg(["-i", path.join(media, "videos", "fer_test.mp4"), "-vf", "scale=640:-2", "-pix_fmt", "yuv420p", clip]);
  browser = await chromium.launch({
    executablePath,
    headless: true,
    args: [
      "--no-sandbox",
      "--disable-background-networking",
      "--use-fake-ui-for-media-stream",
      "--use-fake-device-for-media-stream",
      `--use-file-for-fake-video-capture=${clip}`,
    ],
  });
  await waitReady();
});

after(async () => {
  await browser?.close();
  if (work) rmSync(work, { recursive: true, force: true });
});

function ffmpeg(args) {
  execFileSync("ffmpeg", ["-y", "-nostdin", "-loglevel", "error", ...args], { stdio: "inherit" });
}

async function waitReady() {
  for (let i = 0; i < 600; i++) {
    const ok = await fetch(`${server}/readyz`).then((r) => r.ok, () => false);
    if (ok) return;
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`${server}/readyz never answered 200`);
}

/** A fresh page that records console errors and uncaught exceptions. */
async function open(viewport = { width: 1280, height: 800 }, hash = "", options = {}) {
  const context = await browser.newContext({ viewport, ...options });
  const page = await context.newPage();
  const errors = [];
  page.on("console", (m) => m.type() === "error" && errors.push(`console: ${m.text()}`));
  page.on("pageerror", (e) => errors.push(`exception: ${e.message}`));
  await page.goto(`${server}/${hash}`);
  return { page, errors, close: () => context.close() };
}

/** Emotions by decreasing probability, ties in the fixed order (as the page sorts them). */
function ranked(scores) {
  return EMOTIONS.map((e, i) => [e, scores[e] ?? 0, i])
    .sort((a, b) => b[1] - a[1] || a[2] - b[2])
    .map(([e]) => e);
}

test("live: boxes and panels follow the stream, bars sorted, same nodes, calm live region", async (t) => {
  if (!available(t)) return;
  const { page, errors, close } = await open();
  // Every frame answer as it came over the wire, by seq: what the server sent.
  const sent = new Map();
  page.on("websocket", (ws) =>
    ws.on("framereceived", ({ payload }) => {
      const m = JSON.parse(String(payload));
      if (m.type === "frame") sent.set(m.seq, m);
    })
  );
  const started = Date.now();
  await page.click("#live-start");
  await page.waitForFunction(
    () => document.querySelectorAll("#faces .face:not(.gone) .bar").length >= 7 && window.__emotrack.lastApplied?.faces?.length > 0,
    null,
    { timeout: 20000 }
  );
  const firstFaceMs = Date.now() - started;

  // Boxes: the overlay canvas has drawn pixels.
  const drawn = await page.evaluate(() => {
    const c = document.getElementById("overlay");
    const data = c.getContext("2d").getImageData(0, 0, c.width, c.height).data;
    let n = 0;
    for (let i = 3; i < data.length; i += 4) if (data[i] > 0) n++;
    return n;
  });
  assert.ok(drawn > 100, `the overlay shows boxes (${drawn} pixels drawn)`);

  // Watch the DOM from now on: each panel's bar nodes, moves inside bar lists, live-region writes.
  await page.evaluate(() => {
    const w = { nodes: new Map(), updatesSeen: new Map(), violations: [], moves: 0, announcements: 0, checked: 0 };
    window.__watch = w;
    new MutationObserver((records) => {
      for (const r of records) if (r.target.classList?.contains("bars")) w.moves += r.addedNodes.length;
    }).observe(document.getElementById("faces"), { childList: true, subtree: true });
    new MutationObserver(() => w.announcements++).observe(document.getElementById("vibe"), {
      childList: true,
      characterData: true,
      subtree: true,
    });
    for (const bar of document.querySelectorAll("#faces .bar")) bar.dataset.testMark = "1";
    let last = window.__emotrack.updates;
    const check = () => {
      if (window.__emotrack.updates !== last) {
        last = window.__emotrack.updates;
        w.checked++;
        for (const panel of document.querySelectorAll("#faces .face")) {
          const key = panel.dataset.key;
          const bars = [...panel.querySelectorAll(".bar")];
          const known = w.nodes.get(key);
          if (!known) {
            w.nodes.set(key, { panel, bars: new Set(bars) });
            w.updatesSeen.set(key, 0);
            continue;
          }
          if (known.panel !== panel || bars.length !== 7 || bars.some((b) => !known.bars.has(b))) w.violations.push(key);
          w.updatesSeen.set(key, w.updatesSeen.get(key) + 1);
        }
      }
      requestAnimationFrame(check);
    };
    requestAnimationFrame(check);
  });
  const from = await page.evaluate(() => ({ updates: window.__emotrack.updates, longTasks: window.__emotrack.longTasks }));
  const watchStart = Date.now();
  await page.waitForFunction((n) => window.__watch.checked >= n, UPDATES, { timeout: 240000, polling: 200 });
  const seconds = (Date.now() - watchStart) / 1000;
  await page.screenshot({ path: path.join(shots, "live.png") });

  const state = await page.evaluate(() => {
    const m = window.__emotrack;
    const w = window.__watch;
    const panels = [...document.querySelectorAll("#faces .face:not(.gone)")].map((p) => ({
      key: Number(p.dataset.key),
      order: [...p.querySelectorAll(".bar")].map((b) => b.dataset.emotion),
      marked: [...p.querySelectorAll(".bar")].filter((b) => b.dataset.testMark === "1").length,
    }));
    return {
      seq: m.lastApplied.seq,
      panels,
      updates: m.updates,
      frames: m.frames,
      reorders: m.reorders,
      longTasks: m.longTasks,
      longestTask: m.longestTask,
      fps: document.getElementById("fps").textContent,
      latency: document.getElementById("latency").textContent,
      violations: w.violations,
      moves: w.moves,
      announcements: w.announcements,
      checked: w.checked,
      longest: Math.max(0, ...w.updatesSeen.values()),
      vibe: document.getElementById("vibe").textContent,
    };
  });
  await page.click("#live-start"); // stop
  await close();

  const wire = sent.get(state.seq);
  assert.ok(wire, `the frame shown (seq ${state.seq}) came over the WebSocket`);
  assert.ok(state.panels.length > 0, "a face panel is shown");
  for (const panel of state.panels) {
    const face = wire.faces.find((f) => f.id === panel.key);
    assert.ok(face, `panel #${panel.key} is a face of frame ${state.seq}`);
    assert.deepEqual(panel.order, ranked(face.smoothed ?? face.probabilities), `panel #${panel.key}'s bars are sorted by the probabilities sent`);
  }
  assert.deepEqual(state.violations, [], "every panel kept its own seven bar nodes");
  assert.ok(state.longest >= UPDATES - 1, `one panel lived through ${state.longest} updates (≥ ${UPDATES - 1})`);
  assert.ok(state.panels.some((p) => p.marked === 7), "a panel's bars still carry the mark set before the updates");
  assert.ok(state.moves >= 1 && state.reorders >= 1, `bars were re-ordered (${state.moves} moves, ${state.reorders} re-orderings)`);
  assert.ok(state.announcements < state.checked / 4, `the live region changed ${state.announcements} times in ${state.checked} updates`);
  assert.ok(Number.parseFloat(state.fps) > 0, `FPS shown: ${state.fps}`);
  // The page's own work per update is a few milliseconds; on a 2-core machine that also runs the
  // server's analyses, the browser's main thread is now and then descheduled past 50 ms, which
  // PerformanceObserver counts as a long task too. One in a hundred updates is that noise; more
  // would be the page's own doing.
  assert.ok(
    state.longTasks - from.longTasks <= Math.floor(state.checked / 100),
    `main-thread tasks over 50 ms while streaming: ${state.longTasks - from.longTasks} in ${state.checked} updates`,
  );
  assert.deepEqual(errors, [], "no console errors");
  const newLongTasks = state.longTasks - from.longTasks;
  console.log(
    `live: first face after ${firstFaceMs} ms; ${state.checked} updates in ${seconds.toFixed(1)} s ` +
      `(FPS shown ${state.fps}, round trip ${state.latency}); ${state.reorders} re-orderings; ` +
      `live region updated ${state.announcements} times ("${state.vibe}"); long tasks while streaming: ` +
      `${newLongTasks} (longest ${Math.round(state.longestTask)} ms); screenshot ${path.join(shots, "live.png")}`
  );
});

test("live: usable at 360 px wide, by keyboard, in the dark scheme and with reduced motion", async (t) => {
  if (!available(t)) return;
  const { page, errors, close } = await open({ width: 360, height: 740 }, "", { colorScheme: "dark", reducedMotion: "reduce" });
  const look = await page.evaluate(() => ({
    background: getComputedStyle(document.body).backgroundColor,
    move: getComputedStyle(document.documentElement).getPropertyValue("--move").trim(),
  }));
  assert.equal(look.background, "rgb(18, 19, 24)", "the dark scheme's background");
  assert.equal(look.move, "0ms", "no movement with reduced motion");
  const overflow = await page.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
  assert.ok(overflow <= 0, `no sideways scrolling at 360 px (${overflow} px too wide)`);
  const focused = () => page.evaluate(() => document.activeElement.id || document.activeElement.tagName);
  await page.keyboard.press("Tab");
  assert.equal(await focused(), "tab-live", "Tab reaches the tabs first");
  await page.keyboard.press("ArrowRight");
  assert.equal(await focused(), "tab-photo");
  assert.equal(await page.isVisible("#panel-photo"), true, "ArrowRight opens the Photo tab");
  await page.keyboard.press("Tab");
  assert.equal(await focused(), "SUMMARY", "then the token field's toggle");
  await page.keyboard.press("Tab");
  assert.equal(await focused(), "photo-drop", "then the photo drop zone");
  await page.keyboard.press("ArrowLeft"); // not a tab: nothing happens
  await page.focus("#tab-photo");
  await page.keyboard.press("ArrowLeft");
  await page.keyboard.press("Tab");
  assert.equal(await focused(), "SUMMARY");
  await page.keyboard.press("Tab");
  assert.equal(await focused(), "live-start", "the Live tab's Start button is reachable");
  await page.screenshot({ path: path.join(shots, "narrow.png"), fullPage: true });
  assert.deepEqual(errors, [], "no console errors");
  await close();
});

test("photo: the page shows the faces `emotrack analyze` finds", async (t) => {
  if (!available(t)) return;
  const photo = path.join(media, "photos", "ageitgey_two_people.jpg");
  const [cli] = JSON.parse(execFileSync(binary, ["analyze", "--format", "json", photo], { encoding: "utf8" }));
  assert.ok(cli.faces.length >= 2, `the CLI finds the two people (${cli.faces.length})`);
  const { page, errors, close } = await open(undefined, "#photo");
  await page.setInputFiles("#photo-file", photo);
  await page.waitForFunction((n) => document.querySelectorAll("#photo-faces .face").length === n, cli.faces.length, {
    timeout: 60000,
  });
  const shown = await page.evaluate(() =>
    [...document.querySelectorAll("#photo-faces .face")].map((p) => ({
      label: p.dataset.label,
      box: p.dataset.box,
      top: p.querySelector(".bar").dataset.emotion,
      text: p.querySelector(".label").textContent,
    }))
  );
  // The page numbers faces from left to right.
  cli.faces.sort((a, b) => a.box.x - b.box.x);
  cli.faces.forEach((face, i) => {
    const b = face.box;
    assert.equal(shown[i].label, face.label, `face ${i + 1}'s label`);
    assert.equal(shown[i].top, face.label, `face ${i + 1}'s first bar is its label`);
    assert.equal(shown[i].box, [b.x, b.y, b.w, b.h].join(","), `face ${i + 1}'s box`);
    assert.equal(shown[i].text, `${face.label} ${Math.round(face.confidence * 100)}%`);
  });
  await page.waitForTimeout(500); // the panels' fade-in
  await page.screenshot({ path: path.join(shots, "photo.png"), fullPage: true });
  assert.deepEqual(errors, [], "no console errors");
  await close();
  console.log(`photo: ${shown.length} faces as the CLI: ${shown.map((f) => f.text).join("; ")}`);
});

test("video: a short job completes and its annotated video plays", async (t) => {
  if (!available(t)) return;
  // 1.2 s of the clip, small: the job's length is what this test waits for.
  const short = path.join(work, "short.mp4");
  ffmpeg(["-i", path.join(media, "videos", "fer_test.mp4"), "-t", "1.2", "-vf", "scale=320:-2", "-an", "-c:v", "libx264", "-pix_fmt", "yuv420p", short]);
  const { page, errors, close } = await open(undefined, "#video");
  await page.setInputFiles("#video-file", short);
  await page.waitForSelector("#video-result:not([hidden])", { timeout: 300000 });
  const played = await page.evaluate(async () => {
    const v = document.getElementById("video-player");
    v.muted = true;
    await v.play();
    await new Promise((r) => setTimeout(r, 800));
    v.pause();
    return { time: v.currentTime, error: v.error?.code ?? null, width: v.videoWidth };
  });
  assert.equal(played.error, null, "the player can decode annotated.mp4");
  assert.ok(played.time > 0, `the player plays (at ${played.time} s)`);
  const result = await page.evaluate(() => ({
    timeline: document.getElementById("video-timeline").naturalWidth,
    rows: [...document.querySelectorAll("#video-summary tbody tr")].map((r) => r.textContent),
    links: [...document.querySelectorAll("#video-downloads a")].map((a) => a.textContent),
    status: document.getElementById("video-status").textContent,
  }));
  assert.ok(result.timeline > 0, "the timeline image loads");
  assert.ok(result.rows.length >= 1 && result.rows[0].startsWith("#"), `a row per person: ${result.rows}`);
  assert.deepEqual(result.links, ["annotated.mp4", "faces.jsonl", "timeline.png", "tracks.csv"]);
  await page.evaluate(() => document.getElementById("video-player").scrollIntoView());
  await page.screenshot({ path: path.join(shots, "video.png"), fullPage: true });
  assert.deepEqual(errors, [], "no console errors");
  await close();
  console.log(`video: ${result.status} played to ${played.time.toFixed(2)} s; ${result.rows.length} person row(s)`);
});

/** Starts `emotrack serve` with `args` on a free port; its URL and process. */
async function startServer(args) {
  const child = spawn(binary, ["serve", "--bind", "127.0.0.1:0", ...args], { stdio: ["ignore", "ignore", "pipe"] });
  let log = "";
  const url = await new Promise((resolve, reject) => {
    child.stderr.on("data", (chunk) => {
      log += chunk;
      // The whole line (up to its ";"), never a prefix of the address read mid-write.
      const found = /emotrack serving on (http:\/\/[^;( ]+)[^;]*;/.exec(log);
      if (found) resolve(found[1]);
    });
    child.on("exit", () => reject(new Error(`emotrack serve exited: ${log}`)));
  });
  return { url, child };
}

test("live: a server with a token asks for it, streams once given, and is reconnected to when it goes", async (t) => {
  if (!available(t)) return;
  const { url, child } = await startServer(["--token", "s3cret"]);
  try {
    const context = await browser.newContext({ viewport: { width: 1280, height: 800 } });
    const page = await context.newPage();
    // A loaded machine (CI beside builds) can take longer than the 30 s default to show the page.
    page.setDefaultTimeout(60000);
    await page.goto(`${url}/`);
    await page.click("#live-start");
    await page.waitForFunction(() => /needs a token/.test(document.getElementById("live-status").textContent), null, { timeout: 30000 });
    assert.equal(await page.evaluate(() => document.getElementById("token-box").open), true, "the token field opens");
    await page.fill("#token", "s3cret");
    await page.press("#token", "Enter");
    await page.click("#live-start");
    await page.waitForFunction(() => window.__emotrack.frames > 0, null, { timeout: 60000 });
    child.kill("SIGTERM");
    await page.waitForFunction(() => /Reconnecting in/.test(document.getElementById("live-status").textContent), null, { timeout: 30000 });
    const status = await page.textContent("#live-status");
    await context.close();
    console.log(`token and reconnection: "${status}"`);
  } finally {
    child.kill("SIGKILL");
  }
});
