/* The experiment page: notes saved as they change, kill, rerun, move to front, live
 * logs, charts and resource charts, and polling status and scores while it runs. */

import { api, pageData, say } from "./api.js";
import { drawTelemetry, loadC3 } from "./charts.js";
import { TERMINAL_STATUSES, isObject, showTime, showValue } from "./format.js";
import {
  CHARTS_POLL_MS, EXPERIMENT_POLL_MS, LOG_MAX_CHUNKS, LOG_POLL_MS, NOTES_INTERVAL_MS,
} from "./limits.js";

export function experimentPage() {
  const data = pageData();
  const base = `/api/v1/experiments/${data.experiment_id}`;
  setupNotes(base);
  setupTags(base);
  setupKill(base);
  setupRerun(base);
  setupFront(base);
  followLogs(base);
  const charts = chartDrawer(base);
  if (data.has_charts) charts.refresh();
  drawTelemetry("resource-charts", data.resource_charts);
  if (!data.ended) watchExperiment(base, data, charts);
}

/** "Rerun": the same options as a new experiment, whose page opens next. */
function setupRerun(base) {
  const button = document.getElementById("rerun");
  if (!button) return;
  button.addEventListener("click", async () => {
    button.disabled = true;
    say("rerun-message", "Submitting…");
    try {
      const answer = await api("POST", `${base}/rerun`);
      window.location.href = `/experiments/${answer._id}`;
    } catch (error) {
      button.disabled = false;
      say("rerun-message", error.message, true);
    }
  });
}

/** "Move to front": a queued experiment goes ahead of every other queued one. */
function setupFront(base) {
  const button = document.getElementById("front");
  if (!button) return;
  button.addEventListener("click", async () => {
    button.disabled = true;
    try {
      const doc = await api("POST", `${base}/front`);
      say("queue-position", String(doc._queue_position));
      say("front-message", "Moved to the front of the queue.");
    } catch (error) {
      say("front-message", error.message, true);
    } finally {
      button.disabled = false;
    }
  });
}

/** While it runs: poll status, times and scores; redraw charts when they change. */
function watchExperiment(base, data, charts) {
  const fields = "_status,_scores,_started,_finished";
  let lastCharts = 0;
  const tick = async () => {
    let doc;
    try {
      doc = await api("GET", `${base}?fields=${fields}`);
    } catch (error) {
      setTimeout(tick, 5 * EXPERIMENT_POLL_MS);
      return;
    }
    const status = document.getElementById("status");
    status.textContent = doc._status;
    status.className = `status status-${doc._status}`;
    say("started", showTime(doc._started));
    say("finished", showTime(doc._finished));
    renderScores(isObject(doc._scores) ? doc._scores : {});
    const ended = TERMINAL_STATUSES.has(doc._status);
    if (ended || Date.now() - lastCharts >= CHARTS_POLL_MS) {
      lastCharts = Date.now();
      charts.refresh();
    }
    if (ended) {
      const kill = document.getElementById("kill");
      if (kill) kill.hidden = true;
      document.getElementById("ended-notice").hidden = false;
      return;
    }
    setTimeout(tick, EXPERIMENT_POLL_MS);
  };
  setTimeout(tick, EXPERIMENT_POLL_MS);
}

function renderScores(scores) {
  const names = Object.keys(scores);
  document.getElementById("scores-section").hidden = names.length === 0;
  const tbody = document.querySelector("#scores tbody");
  tbody.replaceChildren(...names.map((name) => {
    const row = document.createElement("tr");
    const label = document.createElement("td");
    label.textContent = name;
    const value = document.createElement("td");
    value.className = "num";
    value.textContent = showValue(scores[name]);
    row.append(label, value);
    return row;
  }));
}

/** Save the notes every 0.5 s while they change; a failed save waits for the next edit. */
/** Tags: the field's comma-separated list saved on submit (PUT `_tags`), the chips redrawn
 * from what the server kept. */
function setupTags(base) {
  const form = document.getElementById("tags-form");
  const input = document.getElementById("tags-input");
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const tags = input.value.split(",").map((tag) => tag.trim()).filter(Boolean);
    try {
      const doc = await api("PUT", base, { _tags: tags });
      const kept = Array.isArray(doc._tags) ? doc._tags : [];
      document.getElementById("tag-chips").replaceChildren(...kept.flatMap((tag) => {
        const chip = document.createElement("span");
        chip.className = "tag";
        chip.textContent = tag;
        return [chip, " "];
      }));
      input.value = kept.join(", ");
      say("tags-message", "Saved");
    } catch (error) {
      say("tags-message", `Not saved: ${error.message}`, true);
    }
  });
}

function setupNotes(base) {
  const box = document.getElementById("notes");
  let saved = box.value;
  let failed = null;
  let saving = false;
  setInterval(async () => {
    const text = box.value;
    if (saving || text === saved || text === failed) return;
    saving = true;
    try {
      await api("PUT", base, { _notes: text });
      saved = text;
      failed = null;
      say("notes-message", "Saved");
    } catch (error) {
      failed = text;
      say("notes-message", `Not saved: ${error.message}`, true);
    } finally {
      saving = false;
    }
  }, NOTES_INTERVAL_MS);
}

function setupKill(base) {
  const button = document.getElementById("kill");
  if (!button) return;
  button.addEventListener("click", async () => {
    if (!window.confirm("Kill this experiment?")) return;
    button.disabled = true;
    try {
      const doc = await api("POST", `${base}/kill`);
      const status = document.getElementById("status");
      status.textContent = doc._status;
      status.className = `status status-${doc._status}`;
      say("kill-message", doc._status === "cancelled"
        ? "Cancelled before it started."
        : "Kill requested: its machine stops the program within seconds.");
    } catch (error) {
      button.disabled = false;
      say("kill-message", error.message, true);
    }
  });
}

/** Live logs over Server-Sent Events; polling the JSON route when EventSource fails. */
function followLogs(base) {
  const pre = document.getElementById("logs");
  const pause = document.getElementById("logs-pause");
  let last = null;
  let ended = false;
  let paused = false;
  let held = []; // entries that came while paused

  pause.addEventListener("click", () => {
    paused = !paused;
    pause.textContent = paused ? "Resume" : "Pause";
    pause.setAttribute("aria-pressed", String(paused));
    if (!paused) {
      const waiting = held;
      held = [];
      for (const [stream, text] of waiting) show(stream, text);
      pre.scrollTop = pre.scrollHeight;
    }
    say("logs-message", paused ? "Paused: new lines wait until you resume." : "");
  });

  const append = (stream, text) => {
    if (paused) {
      held.push([stream, text]);
      say("logs-message", `Paused: ${held.length} new entr${held.length === 1 ? "y" : "ies"} waiting.`);
      return;
    }
    show(stream, text);
  };
  const show = (stream, text) => {
    const atBottom = pre.scrollTop + pre.clientHeight >= pre.scrollHeight - 4;
    const span = document.createElement("span");
    span.className = `log-${stream}`;
    span.textContent = text;
    pre.append(span);
    while (pre.childNodes.length > LOG_MAX_CHUNKS) pre.firstChild.remove();
    if (atBottom) pre.scrollTop = pre.scrollHeight;
  };
  const finish = () => {
    ended = true;
    if (paused) {
      pause.click();
    }
    pause.disabled = true;
    say("logs-message", pre.childNodes.length ? "End of log." : "No log.");
  };

  const poll = async () => {
    let delay = LOG_POLL_MS;
    try {
      const query = last ? `?after=${encodeURIComponent(last)}` : "";
      const page = await api("GET", `${base}/logs${query}`);
      for (const entry of page.entries) append(entry.s, entry.t);
      last = page.last || last;
      if (page.ended) {
        finish();
        return;
      }
      if (page.entries.length) delay = 0; // more may be waiting
      if (!paused) say("logs-message", "");
    } catch (error) {
      say("logs-message", `Logs: ${error.message}; retrying.`, true);
      delay = 5 * LOG_POLL_MS;
    }
    setTimeout(poll, delay);
  };

  if (!window.EventSource) {
    poll();
    return;
  }
  const source = new EventSource(`${base}/logs/stream`);
  source.onmessage = (event) => {
    last = event.lastEventId || last;
    const entry = JSON.parse(event.data);
    append(entry.s, entry.t);
  };
  source.addEventListener("end", () => {
    source.close();
    finish();
  });
  source.onopen = () => {
    if (!paused) say("logs-message", ""); // a reconnection clears "unavailable"
  };
  source.addEventListener("unavailable", (event) => {
    say("logs-message", `Live logs unavailable: ${event.data}`, true);
  });
  source.onerror = () => {
    if (ended) return;
    // A stream ends after FGLAB_STREAM_LIFETIME (a `retry:` line, no `end`), or after
    // Redis failed, and the browser reconnects with Last-Event-ID, resuming after the
    // last line shown. Only a refused reconnection (429 or 503 when too many streams are
    // open) closes the source; the page polls then.
    if (source.readyState === EventSource.CONNECTING) return;
    source.close();
    say("logs-message", "Live stream lost; polling instead.");
    poll();
  };
}

/** Draws the experiment's charts; `refresh()` fetches them again and redraws only when
 * they changed (a running experiment rewrites its charts file as it goes). */
function chartDrawer(base) {
  let drawn = null;
  let loaded = null;
  const load = loadC3;
  const refresh = async () => {
    let charts;
    try {
      charts = await api("GET", `${base}/charts`);
    } catch (error) {
      say("charts-message", `Charts: ${error.message}`, true);
      return;
    }
    const text = JSON.stringify(charts);
    if (text === drawn) return;
    drawn = text;
    if (charts.length) document.getElementById("charts-section").hidden = false;
    if (!charts.length) {
      say("charts-message", "No charts.");
      return;
    }
    try {
      loaded = loaded || load();
      await loaded;
    } catch (error) {
      say("charts-message",
        `Charts are drawn with C3.js, which could not be loaded (${error.message}). `
        + `Their data is at ${base}/charts.`, true);
      return;
    }
    say("charts-message", "");
    const holder = document.getElementById("charts");
    holder.replaceChildren();
    charts.forEach((config, index) => {
      const node = document.createElement("div");
      node.className = "chart";
      holder.append(node);
      try {
        window.c3.generate({ ...config, bindto: node });
      } catch (error) {
        node.textContent = `Chart ${index + 1} could not be drawn: ${error.message}`;
      }
    });
  };
  return { refresh };
}
