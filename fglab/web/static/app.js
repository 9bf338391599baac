/* FGLab pages: one small script, a function per page, no build step.
 *
 * The server renders every page with its data; this script adds what needs the JSON API
 * (/api/v1/...): forms that submit, the experiments table's search/sort/columns/export,
 * live logs, auto-saved notes, charts, and the machine buttons (drain, resume, add a
 * project). Every error shown is the API's {"error"} text.
 */
"use strict";

// Shipped with FGLab (d3 5.16, C3.js 0.7.20), so charts draw on networks without internet.
const C3_URLS = {
  d3: "/assets/vendor/d3.min.js",
  c3: "/assets/vendor/c3.min.js",
  css: "/assets/vendor/c3.min.css",
};
const SCRIPT_TIMEOUT_MS = 10000;
const NOTES_INTERVAL_MS = 500;
const LOG_POLL_MS = 1000;
const LOG_MAX_CHUNKS = 20000;

// Shared helpers ---------------------------------------------------------------------

function pageData() {
  const node = document.getElementById("page-data");
  return node ? JSON.parse(node.textContent) : {};
}

/** Call the API; resolves to the JSON answer, rejects with the API's error text. */
async function api(method, url, body) {
  const init = { method, headers: { Accept: "application/json" } };
  if (body instanceof FormData) {
    init.body = body;
  } else if (body !== undefined) {
    init.body = JSON.stringify(body);
    init.headers["Content-Type"] = "application/json";
  }
  const response = await fetch(url, init);
  let answer = null;
  try {
    answer = await response.json();
  } catch (ignored) {
    answer = null;
  }
  if (!response.ok) {
    const message = answer && answer.error ? answer.error : `${response.status} ${response.statusText}`;
    throw new Error(message);
  }
  return answer;
}

function say(id, text, isError = false) {
  const node = document.getElementById(id);
  if (!node) return;
  node.textContent = text;
  node.classList.toggle("error", isError);
}

function loadScript(src) {
  return new Promise((resolve, reject) => {
    const script = document.createElement("script");
    const timer = setTimeout(() => reject(new Error(`timed out loading ${src}`)), SCRIPT_TIMEOUT_MS);
    script.src = src;
    script.onload = () => { clearTimeout(timer); resolve(); };
    script.onerror = () => { clearTimeout(timer); reject(new Error(`could not load ${src}`)); };
    document.head.append(script);
  });
}

// Home -------------------------------------------------------------------------------

function homePage() {
  const form = document.getElementById("schema-form");
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    say("schema-message", "Uploading…");
    try {
      const project = await api("POST", "/api/v1/projects/schema", new FormData(form));
      window.location.href = `/projects/${project._id}`;
    } catch (error) {
      say("schema-message", error.message, true);
    }
  });
}

// Project ----------------------------------------------------------------------------

function projectPage() {
  const data = pageData();
  setupTabs();
  setupExperimentForm(data);
  setupSearchForm(data);
  setupExperimentsTable(data);
  setupAddToMachine(data);
}

function setupTabs() {
  const tabs = [...document.querySelectorAll(".tabs a")];
  const select = (id) => {
    const known = tabs.some((tab) => tab.hash === `#${id}`);
    for (const tab of tabs) {
      const active = tab.hash === `#${known ? id : "experiments"}`;
      tab.classList.toggle("active", active);
      document.getElementById(tab.hash.slice(1)).hidden = !active;
    }
  };
  for (const tab of tabs) {
    tab.addEventListener("click", (event) => {
      event.preventDefault();
      history.replaceState(null, "", tab.hash);
      select(tab.hash.slice(1));
    });
  }
  select(window.location.hash.slice(1));
}

function setupExperimentForm(data) {
  const form = document.getElementById("experiment-form");
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const options = {};
    for (const input of form.querySelectorAll("[data-type]")) {
      const type = input.dataset.type;
      if (type === "bool") {
        const checked = input.querySelector("input:checked");
        options[input.dataset.name] = checked ? checked.value === "true" : null;
      } else if (type === "int" || type === "float") {
        options[input.name] = input.value.trim() === "" ? null : Number(input.value);
      } else {
        options[input.name] = input.value;
      }
    }
    say("experiment-message", "Submitting…");
    try {
      const url = `/api/v1/projects/${data.project_id}/experiment?queue=true`;
      const answer = await api("POST", url, options);
      window.location.href = `/experiments/${answer._id}`;
    } catch (error) {
      say("experiment-message", error.message, true);
    }
  });
}

function setupSearchForm(data) {
  const form = document.getElementById("search-form");
  const showRandomOnly = () => {
    const random = form.querySelector('[name="method"]:checked').value === "random";
    for (const node of form.querySelectorAll(".random-only")) node.hidden = !random;
  };
  for (const radio of form.querySelectorAll('[name="method"]')) {
    radio.addEventListener("change", showRandomOnly);
  }
  showRandomOnly();
  // Editing an option's values means varying it.
  for (const row of form.querySelectorAll(".search-field")) {
    row.querySelector(".settings").addEventListener("input", () => {
      row.querySelector(".vary").checked = true;
    });
  }

  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const body = readSearch(form);
    say("search-message", "Submitting…");
    try {
      const answer = await api("POST", `/api/v1/projects/${data.project_id}/search`, body);
      say("search-message", `Started ${answer.count} experiment(s); they wait in the queue until a machine takes them. Reload to see them in the table.`);
    } catch (error) {
      say("search-message", error.message, true);
    }
  });
}

/** The search body: a spec entry for each ticked option, as fglab.search reads it. */
function readSearch(form) {
  const spec = {};
  for (const row of form.querySelectorAll(".search-field")) {
    if (!row.querySelector(".vary").checked) continue;
    const name = row.dataset.name;
    const type = row.dataset.type;
    if (type === "int" || type === "float") {
      const text = (key) => row.querySelector(`[data-key="${key}"]`).value.trim();
      const number = (key) => (text(key) === "" ? null : Number(text(key)));
      const settings = { min: number("min"), max: number("max"), scale: text("scale") };
      if (text("steps") !== "") settings.steps = number("steps");
      if (settings.scale === "log") settings.base = number("base");
      spec[name] = settings;
    } else if (type === "string") {
      spec[name] = { values: row.querySelector('[data-key="values"]').value };
    } else {
      const boxes = [...row.querySelectorAll("[data-value]:checked")];
      spec[name] = {
        values: boxes.map((box) => (type === "bool" ? box.dataset.value === "true" : box.dataset.value)),
      };
    }
  }
  const method = form.querySelector('[name="method"]:checked').value;
  const body = { method, spec };
  if (method === "random") {
    body.evaluations = Number(form.elements.evaluations.value);
    const seed = form.elements.seed.value.trim();
    if (seed !== "") body.seed = Number(seed);
  }
  return body;
}

function setupExperimentsTable(data) {
  const table = document.getElementById("experiments-table");
  const headers = [...table.tHead.rows[0].cells];
  const tbody = table.tBodies[0];
  const rows = [...tbody.rows];
  const order = new Map(rows.map((row, i) => [row, i]));
  const search = document.getElementById("table-search");
  const storageKey = `fglab:hidden-columns:${data.project_id}`;
  let sortKeys = []; // [{column, direction}], first key first

  const cellText = (row, column) => row.cells[column].textContent.trim();
  const label = (column) => headers[column].textContent.trim();

  const updateCount = () => {
    const shown = rows.filter((row) => !row.hidden).length;
    say("row-count", shown === rows.length ? `${rows.length} experiment(s)` : `${shown} of ${rows.length} shown`);
  };

  // Numbers compare as numbers, everything else as text; empty cells always go last.
  const compareCells = (a, b) => {
    const x = Number(a);
    const y = Number(b);
    if (!Number.isNaN(x) && !Number.isNaN(y)) return x - y;
    return a.localeCompare(b, undefined, { numeric: true });
  };

  const sortRows = () => {
    const sorted = [...rows].sort((r1, r2) => {
      for (const { column, direction } of sortKeys) {
        const a = cellText(r1, column);
        const b = cellText(r2, column);
        if (a === b) continue;
        if (a === "") return 1;
        if (b === "") return -1;
        const result = compareCells(a, b);
        if (result !== 0) return result * direction;
      }
      return order.get(r1) - order.get(r2);
    });
    tbody.append(...sorted);
    headers.forEach((th, column) => {
      const rank = sortKeys.findIndex((key) => key.column === column);
      if (rank < 0) {
        delete th.dataset.sortLabel;
        th.removeAttribute("aria-sort");
        return;
      }
      const ascending = sortKeys[rank].direction > 0;
      th.dataset.sortLabel = (ascending ? "▲" : "▼") + (sortKeys.length > 1 ? rank + 1 : "");
      th.setAttribute("aria-sort", ascending ? "ascending" : "descending");
    });
  };

  headers.forEach((th, column) => {
    if ("nosort" in th.dataset) return;
    th.classList.add("sortable");
    th.title = "Click to sort; shift-click to add a sort key";
    th.addEventListener("click", (event) => {
      const existing = sortKeys.find((key) => key.column === column);
      if (event.shiftKey) {
        if (existing) existing.direction = -existing.direction;
        else sortKeys.push({ column, direction: 1 });
      } else {
        const flip = existing && sortKeys.length === 1;
        sortKeys = [{ column, direction: flip ? -existing.direction : 1 }];
      }
      sortRows();
    });
  });

  search.addEventListener("input", () => {
    const terms = search.value.toLowerCase().split(/\s+/).filter(Boolean);
    for (const row of rows) {
      const text = row.textContent.toLowerCase();
      row.hidden = !terms.every((term) => text.includes(term));
    }
    updateCount();
  });

  // Show/hide columns; the choice is remembered per project in this browser.
  let hidden = [];
  try {
    hidden = JSON.parse(localStorage.getItem(storageKey) || "[]");
  } catch (ignored) {
    hidden = [];
  }
  const setVisible = (column, visible) => {
    headers[column].hidden = !visible;
    for (const row of rows) row.cells[column].hidden = !visible;
  };
  const toggles = document.getElementById("column-toggles");
  headers.forEach((th, column) => {
    if ("noexport" in th.dataset) return;
    const box = document.createElement("input");
    box.type = "checkbox";
    box.checked = !hidden.includes(label(column));
    box.addEventListener("change", () => {
      setVisible(column, box.checked);
      hidden = headers.filter((h) => h.hidden).map((h) => h.textContent.trim());
      try {
        localStorage.setItem(storageKey, JSON.stringify(hidden));
      } catch (ignored) {
        // Private windows may refuse storage; the choice then lasts for this page only.
      }
    });
    const item = document.createElement("label");
    item.append(box, ` ${label(column)}`);
    toggles.append(item);
    if (!box.checked) setVisible(column, false);
  });

  document.getElementById("export-csv").addEventListener("click", () => {
    const columns = headers
      .map((th, column) => column)
      .filter((column) => !headers[column].hidden && !("noexport" in headers[column].dataset));
    const quote = (text) => (/[",\r\n]/.test(text) ? `"${text.replace(/"/g, '""')}"` : text);
    const lines = [columns.map((column) => quote(label(column))).join(",")];
    for (const row of tbody.rows) {
      if (!row.hidden) lines.push(columns.map((column) => quote(cellText(row, column))).join(","));
    }
    const blob = new Blob([`${lines.join("\r\n")}\r\n`], { type: "text/csv;charset=utf-8" });
    const link = document.createElement("a");
    link.href = URL.createObjectURL(blob);
    link.download = `${data.name}-experiments.csv`;
    document.body.append(link);
    link.click();
    link.remove();
    setTimeout(() => URL.revokeObjectURL(link.href), 1000);
  });

  tbody.addEventListener("click", async (event) => {
    const button = event.target.closest("button.delete");
    if (!button) return;
    const id = button.dataset.id;
    if (!window.confirm(`Delete experiment ${id} and its files?`)) return;
    button.disabled = true;
    try {
      await api("DELETE", `/api/v1/experiments/${id}`);
      const row = button.closest("tr");
      rows.splice(rows.indexOf(row), 1);
      row.remove();
      updateCount();
    } catch (error) {
      button.disabled = false;
      window.alert(error.message);
    }
  });

  updateCount();
}

/** "Add to machine": the machine's worker writes a template entry into its projects.json. */
function setupAddToMachine(data) {
  for (const button of document.querySelectorAll("button.add-to-machine")) {
    button.addEventListener("click", async () => {
      const machine = encodeURIComponent(button.dataset.machine);
      const project = encodeURIComponent(data.project_id);
      button.disabled = true;
      say(button.dataset.message, "Sending…");
      try {
        await api("POST", `/api/v1/machines/${machine}/projects/${project}`);
        say(button.dataset.message, "Template sent; edit command and paths in that machine's projects.json");
      } catch (error) {
        button.disabled = false;
        say(button.dataset.message, error.message, true);
      }
    });
  }
}

// Experiment -------------------------------------------------------------------------

function experimentPage() {
  const data = pageData();
  const base = `/api/v1/experiments/${data.experiment_id}`;
  setupNotes(base);
  setupKill(base);
  followLogs(base);
  if (data.has_charts) drawCharts(base);
}

/** Save the notes every 0.5 s while they change; a failed save waits for the next edit. */
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
  let last = null;
  let ended = false;

  const append = (stream, text) => {
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
      say("logs-message", "");
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
  source.addEventListener("unavailable", (event) => {
    say("logs-message", `Live logs unavailable: ${event.data}`, true);
  });
  source.onerror = () => {
    if (ended) return;
    source.close();
    say("logs-message", "Live stream lost; polling instead.");
    poll();
  };
}

async function drawCharts(base) {
  let charts;
  try {
    charts = await api("GET", `${base}/charts`);
  } catch (error) {
    say("charts-message", `Charts: ${error.message}`, true);
    return;
  }
  if (!charts.length) {
    say("charts-message", "No charts.");
    return;
  }
  try {
    const css = document.createElement("link");
    css.rel = "stylesheet";
    css.href = C3_URLS.css;
    document.head.append(css);
    if (!window.d3) await loadScript(C3_URLS.d3);
    if (!window.c3) await loadScript(C3_URLS.c3);
  } catch (error) {
    say("charts-message",
      `Charts are drawn with C3.js, which could not be loaded (${error.message}). `
      + `Their data is at ${base}/charts.`, true);
    return;
  }
  const holder = document.getElementById("charts");
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
}

// Machine ----------------------------------------------------------------------------

function machinePage() {
  const data = pageData();
  const base = `/api/v1/machines/${encodeURIComponent(data.machine_id)}`;
  setupDrain(base);
}

/** Drain (with an optional reason) or resume the machine, then show the page anew. */
function setupDrain(base) {
  const drain = document.getElementById("drain");
  const resume = document.getElementById("resume");
  const post = async (button, url, body) => {
    button.disabled = true;
    say("drain-message", "Saving…");
    try {
      await api("POST", url, body);
      window.location.reload();
    } catch (error) {
      button.disabled = false;
      say("drain-message", error.message, true);
    }
  };
  if (drain) {
    drain.addEventListener("click", () => {
      const reason = document.getElementById("drain-reason-input").value.trim();
      post(drain, `${base}/drain`, reason ? { reason } : undefined);
    });
  }
  if (resume) resume.addEventListener("click", () => post(resume, `${base}/resume`));
}

// Start ------------------------------------------------------------------------------

const PAGES = {
  home: homePage,
  project: projectPage,
  experiment: experimentPage,
  machine: machinePage,
};

document.addEventListener("DOMContentLoaded", () => {
  const start = PAGES[document.body.dataset.page];
  if (start) start();
});
