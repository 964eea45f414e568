// The page's entry point: tabs, the token field, the long-task monitor, and the three views.
// State flows one way in each view: a message arrives → the view's model → the DOM, updated in
// place. `window.__emotrack` exposes the counters the browser tests read.

import { getToken, setToken } from "./api.js";
import { LiveView } from "./live.js";
import { PhotoView } from "./photo.js";
import { VideoView } from "./video.js";

/** Counters shown on the page and read by the browser tests. */
const metrics = {
  frames: 0, // frame answers received
  updates: 0, // answers applied to the panels (at most one per animation frame)
  reorders: 0, // bar re-orderings (FLIP)
  announcements: 0, // live-region updates
  longTasks: 0, // main-thread tasks over 50 ms (PerformanceObserver)
  longestTask: 0,
  fps: 0,
  lastApplied: null, // the frame message shown now
};
window.__emotrack = metrics;

watchLongTasks();
setUpTabs();
setUpToken();
new LiveView(metrics);
new PhotoView(metrics);
new VideoView(metrics);

function watchLongTasks() {
  const shown = document.getElementById("longtasks");
  if (!PerformanceObserver.supportedEntryTypes?.includes("longtask")) {
    shown.textContent = "n/a";
    return;
  }
  new PerformanceObserver((list) => {
    for (const entry of list.getEntries()) {
      metrics.longTasks++;
      metrics.longestTask = Math.max(metrics.longestTask, entry.duration);
    }
    shown.textContent = String(metrics.longTasks);
    shown.title = `longest: ${Math.round(metrics.longestTask)} ms`;
  }).observe({ type: "longtask", buffered: true });
}

/** Tabs with the ARIA pattern: arrows move between them, the URL's #hash names the open one. */
function setUpTabs() {
  const tabs = [...document.querySelectorAll('[role="tab"]')];
  const select = (tab, focus) => {
    for (const t of tabs) {
      const on = t === tab;
      t.setAttribute("aria-selected", String(on));
      t.tabIndex = on ? 0 : -1;
      document.getElementById(t.getAttribute("aria-controls")).hidden = !on;
    }
    if (focus) tab.focus();
    const hash = `#${tab.id.replace("tab-", "")}`;
    if (location.hash !== hash) history.replaceState(null, "", hash);
  };
  tabs.forEach((tab, i) => {
    tab.addEventListener("click", () => select(tab, false));
    tab.addEventListener("keydown", (event) => {
      const step = { ArrowRight: 1, ArrowLeft: -1 }[event.key];
      if (event.key === "Home") select(tabs[0], true);
      else if (event.key === "End") select(tabs[tabs.length - 1], true);
      else if (step) select(tabs[(i + step + tabs.length) % tabs.length], true);
      else return;
      event.preventDefault();
    });
  });
  const initial = tabs.find((t) => `#${t.id.replace("tab-", "")}` === location.hash);
  if (initial) select(initial, false);
}

function setUpToken() {
  const box = document.getElementById("token-box");
  const input = document.getElementById("token");
  input.value = getToken();
  document.getElementById("token-form").addEventListener("submit", (event) => {
    event.preventDefault();
    setToken(input.value);
    box.open = false;
  });
  document.addEventListener("emotrack:token-needed", () => {
    box.open = true;
    input.focus();
  });
}
