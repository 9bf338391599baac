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
const TABLE_POLL_MS = 2000;
const EXPERIMENT_POLL_MS = 2000;
const CHARTS_POLL_MS = 10000;
const PAGE_REFRESH_MS = 5000;
const SEARCH_DELAY_MS = 300;
const BULK_PARALLEL = 4;
const COMPARE_MAX = 50;

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
  refreshLiveSections();
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
  setupSweepForm(data);
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
      const query = new URLSearchParams({ queue: "true" });
      const tags = document.getElementById("experiment-tags").value.trim();
      if (tags) query.set("tag", tags);
      const url = `/api/v1/projects/${data.project_id}/experiment?${query}`;
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
  const method = form.querySelector('[name="method"]:checked').value;
  const body = { method, spec: readSpace(form) };
  if (method === "random") {
    body.evaluations = Number(form.elements.evaluations.value);
    const seed = form.elements.seed.value.trim();
    if (seed !== "") body.seed = Number(seed);
  }
  return body;
}

/** The space of a form's option rows: an entry for each ticked option. */
function readSpace(form) {
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
  return spec;
}

/** The "Create a sweep" form: the option rows as the search's, the sweep's settings;
 * it POSTs the sweep and opens its page. Objective names come from the scores the
 * project's experiments reported (refreshed from the API). */
function setupSweepForm(data) {
  const form = document.getElementById("sweep-form");
  const showPruner = () => {
    for (const node of form.querySelectorAll(".pruner-settings")) {
      node.hidden = node.dataset.pruner !== form.elements.pruner.value;
    }
  };
  form.elements.pruner.addEventListener("change", showPruner);
  showPruner();
  for (const row of form.querySelectorAll(".search-field")) {
    row.querySelector(".settings").addEventListener("input", () => {
      row.querySelector(".vary").checked = true;
    });
  }
  api("GET", `/api/v1/projects/${data.project_id}/scores`).then((answer) => {
    const list = document.getElementById("score-names");
    list.replaceChildren(...answer.scores.map((name) => Object.assign(document.createElement("option"), { value: name })));
    if (!form.elements.objective.value && answer.scores.length) form.elements.objective.value = answer.scores[0];
  }).catch(() => {}); // the names rendered with the page stay

  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const whole = (text) => (text.trim() === "" ? undefined : Number(text));
    const body = {
      method: form.querySelector('[name="sweep-method"]:checked').value,
      space: readSpace(form),
      parallelism: whole(form.elements.parallelism.value),
      budget: whole(form.elements.budget.value),
      seed: whole(form.elements.seed.value),
    };
    const score = form.elements.objective.value.trim();
    if (score) body.objective = { score, goal: form.elements.goal.value };
    const pruner = form.elements.pruner.value;
    if (pruner) {
      body.prune = { pruner };
      for (const input of form.querySelectorAll(`[data-pruner="${pruner}"] [data-prune]`)) {
        const value = whole(input.value);
        if (value !== undefined) body.prune[input.dataset.prune] = value;
      }
    }
    say("sweep-form-message", "Creating…");
    try {
      const sweep = await api("POST", `/api/v1/projects/${data.project_id}/sweeps`, body);
      window.location.href = `/sweeps/${sweep._id}`;
    } catch (error) {
      say("sweep-form-message", error.message, true);
    }
  });
}

/* The experiments table: the server sorts, filters and pages (GET .../experiments/table);
 * the page keeps its state in the URL's query, so a reload or a shared link shows the same
 * rows. While some visible row is active, those rows alone are polled (?ids=) and updated
 * in place. */
function setupExperimentsTable(data) {
  const table = document.getElementById("experiments-table");
  const tbody = table.tBodies[0];
  const headRow = table.tHead.rows[0];
  const optionNames = Object.keys(data.schema);
  const base = `/api/v1/projects/${data.project_id}`;
  const storageKey = `fglab:hidden-columns:${data.project_id}`;
  const selected = new Set();
  const state = readTableState(data);
  let scoreNames = [...data.score_names];
  let rows = [];
  let total = data.total;
  let loading = 0; // answers to older requests are dropped

  const filterQuery = (extra = {}) => {
    const query = new URLSearchParams();
    for (const status of state.status) query.append("status", status);
    for (const tag of state.tag) query.append("tag", tag);
    if (state.q) query.set("q", state.q);
    for (const condition of state.filter) query.append("filter", condition);
    query.set("sort", state.sort);
    query.set("order", state.order);
    for (const [key, value] of Object.entries(extra)) query.set(key, value);
    return query;
  };

  const saveState = () => {
    const query = filterQuery();
    if (state.offset) query.set("offset", state.offset);
    if (state.limit !== data.page_size) query.set("limit", state.limit);
    const clone = new URLSearchParams(window.location.search).get("clone");
    if (clone) query.set("clone", clone); // a reload keeps the prefilled form
    history.replaceState(null, "", `?${query}${window.location.hash}`);
    document.getElementById("export-csv").href = `${base}/experiments.csv?${filterQuery()}`;
    document.getElementById("export-json").href = `${base}/experiments.json?${filterQuery()}`;
  };

  const load = async () => {
    const ticket = ++loading;
    table.setAttribute("aria-busy", "true");
    try {
      const answer = await api("GET", `${base}/experiments/table?${filterQuery({ offset: state.offset, limit: state.limit })}`);
      if (ticket !== loading) return;
      rows = answer.rows;
      total = answer.total;
      if (!rows.length && total && state.offset) {
        state.offset = Math.max(0, Math.floor((total - 1) / state.limit) * state.limit);
        load();
        return;
      }
      // A failed load's message goes; what a bulk action reported stays.
      if (document.getElementById("table-message").classList.contains("error")) say("table-message", "");
      render();
    } catch (error) {
      if (ticket === loading) say("table-message", `Experiments: ${error.message}`, true);
    } finally {
      if (ticket === loading) table.setAttribute("aria-busy", "false");
    }
  };

  // Columns ------------------------------------------------------------------------
  const hiddenColumns = () => {
    try {
      return JSON.parse(localStorage.getItem(storageKey) || "[]");
    } catch (ignored) {
      return [];
    }
  };
  const applyHidden = () => {
    const hidden = hiddenColumns();
    [...headRow.cells].forEach((th, column) => {
      const hide = !("noexport" in th.dataset) && hidden.includes(th.textContent.trim());
      th.hidden = hide;
      for (const row of tbody.rows) if (row.cells[column]) row.cells[column].hidden = hide;
    });
  };
  const buildToggles = () => {
    const toggles = document.getElementById("column-toggles");
    toggles.replaceChildren();
    const hidden = hiddenColumns();
    for (const th of headRow.cells) {
      if ("noexport" in th.dataset) continue;
      const name = th.textContent.trim();
      const box = document.createElement("input");
      box.type = "checkbox";
      box.checked = !hidden.includes(name);
      box.addEventListener("change", () => {
        const now = hiddenColumns().filter((n) => n !== name);
        if (!box.checked) now.push(name);
        try {
          localStorage.setItem(storageKey, JSON.stringify(now));
        } catch (ignored) {
          // Private windows may refuse storage; the choice then lasts until the next render.
        }
        applyHidden();
      });
      const item = document.createElement("label");
      item.append(box, ` ${name}`);
      toggles.append(item);
    }
  };
  const header = (label, sortKey, className, title) => {
    const th = document.createElement("th");
    th.textContent = label;
    if (className) th.className = className;
    if (title) th.title = title;
    if (sortKey) th.dataset.sort = sortKey;
    else th.dataset.nosort = "";
    return th;
  };
  const buildHeader = () => {
    const cells = [headRow.cells[0], header("ID", "_id"), header("Status", "_status"), header("Tags", null)];
    for (const name of scoreNames) cells.push(header(name, `_scores.${name}`, "score", "score"));
    for (const name of optionNames) cells.push(header(name, `_options.${name}`, "option", "option"));
    cells.push(header("Started", "_started"), header("Finished", "_finished"));
    cells.push(header("Duration", null), header("Notes", null));
    headRow.replaceChildren(...cells);
    wireHeader();
    buildToggles();
    const scoreGroup = document.getElementById("filter-scores");
    scoreGroup.replaceChildren(...scoreNames.map((name) => new Option(name, `_scores.${name}`)));
  };
  const wireHeader = () => {
    for (const th of headRow.cells) {
      if (!th.dataset.sort) continue;
      th.classList.add("sortable");
      th.tabIndex = 0;
      th.title = `${th.title ? `${th.title}; ` : ""}click to sort`;
      const sort = () => {
        if (state.sort === th.dataset.sort) state.order = state.order === "asc" ? "desc" : "asc";
        else [state.sort, state.order] = [th.dataset.sort, "asc"];
        state.offset = 0;
        saveState();
        load();
      };
      th.addEventListener("click", sort);
      th.addEventListener("keydown", (event) => {
        if (event.key === "Enter" || event.key === " ") { event.preventDefault(); sort(); }
      });
    }
  };
  const markSort = () => {
    for (const th of headRow.cells) {
      if (th.dataset.sort === state.sort) {
        th.dataset.sortLabel = state.order === "asc" ? "▲" : "▼";
        th.setAttribute("aria-sort", state.order === "asc" ? "ascending" : "descending");
      } else {
        delete th.dataset.sortLabel;
        th.removeAttribute("aria-sort");
      }
    }
  };

  // Rows ---------------------------------------------------------------------------
  const cell = (text, className, title) => {
    const td = document.createElement("td");
    td.textContent = text;
    if (className) td.className = className;
    if (title) td.title = title;
    return td;
  };
  const renderRow = (row) => {
    const tr = document.createElement("tr");
    tr.dataset.id = row._id;
    tr.dataset.status = row._status || "";
    const box = document.createElement("input");
    box.type = "checkbox";
    box.className = "select-row";
    box.dataset.id = row._id;
    box.checked = selected.has(row._id);
    box.setAttribute("aria-label", `Select experiment ${row._id}`);
    const first = document.createElement("td");
    first.append(box);
    const link = document.createElement("a");
    link.href = `/experiments/${row._id}`;
    const code = document.createElement("code");
    code.textContent = row._id;
    link.append(code);
    const idCell = document.createElement("td");
    idCell.append(link);
    const statusCell = document.createElement("td");
    statusCell.append(statusBadge(row._status || ""));
    const tags = cell("", "tags");
    for (const tag of Array.isArray(row._tags) ? row._tags : []) {
      const chip = document.createElement("span");
      chip.className = "tag";
      chip.textContent = tag;
      tags.append(chip, " ");
    }
    tr.append(first, idCell, statusCell, tags);
    const scores = isObject(row._scores) ? row._scores : {};
    for (const name of scoreNames) tr.append(cell(showValue(scores[name]), "num"));
    const options = isObject(row._options) ? row._options : {};
    for (const name of optionNames) {
      const value = options[name];
      const isDefault = isDefaultValue(value, data.schema[name]);
      tr.append(cell(showValue(value), isDefault ? "default" : "", isDefault ? "default" : ""));
    }
    tr.append(cell(showTime(row._started), "time"), cell(showTime(row._finished), "time"));
    const notes = showValue(row._notes);
    tr.append(cell(durationText(row), "duration"), cell(notes, "notes", notes));
    return tr;
  };
  const render = () => {
    const names = new Set(scoreNames);
    const fresh = rows.flatMap((row) => (isObject(row._scores) ? Object.keys(row._scores) : []))
      .filter((name) => !names.has(name) && !name.startsWith("_fglab"));
    if (fresh.length) scoreNames = [...scoreNames, ...new Set(fresh)];
    if (fresh.length || headRow.cells.length !== 8 + scoreNames.length + optionNames.length) buildHeader();
    markSort();
    tbody.replaceChildren(...rows.map(renderRow));
    applyHidden();
    const end = state.offset + rows.length;
    say("page-info", total ? `${state.offset + 1}–${end} of ${total}` : "0 of 0");
    document.getElementById("page-prev").disabled = state.offset === 0;
    document.getElementById("page-next").disabled = end >= total;
    document.getElementById("table-empty").hidden = rows.length > 0;
    updateSelection();
  };

  // Live rows: only the visible ones, only while one of them may still change.
  const refreshVisible = async () => {
    const active = rows.filter((row) => ACTIVE_STATUSES.has(row._status));
    if (!active.length || document.hidden) return;
    const ids = rows.map((row) => row._id);
    const ticket = loading;
    try {
      const answer = await api("GET", `${base}/experiments/table?ids=${ids.join(",")}&limit=500`);
      if (ticket !== loading) return;
      const fresh = new Map(answer.rows.map((row) => [row._id, row]));
      rows = rows.filter((row) => fresh.has(row._id)).map((row) => fresh.get(row._id));
      const changed = rows.some((row) => isObject(row._scores) && Object.keys(row._scores).some((n) => !scoreNames.includes(n)));
      if (changed || rows.length !== tbody.rows.length) {
        render();
        return;
      }
      rows.forEach((row, index) => {
        const old = tbody.rows[index];
        const next = renderRow(row);
        if (old.dataset.id !== row._id || old.innerHTML !== next.innerHTML) old.replaceWith(next);
      });
      applyHidden();
    } catch (error) {
      say("table-message", `Live update: ${error.message}`, true);
    }
  };
  setInterval(refreshVisible, TABLE_POLL_MS);

  // Controls -----------------------------------------------------------------------
  const search = document.getElementById("table-search");
  search.value = state.q;
  let typing = null;
  search.addEventListener("input", () => {
    clearTimeout(typing);
    typing = setTimeout(() => {
      state.q = search.value.trim();
      state.offset = 0;
      saveState();
      load();
    }, SEARCH_DELAY_MS);
  });
  document.getElementById("table-controls").addEventListener("submit", (event) => event.preventDefault());
  for (const box of document.querySelectorAll('#table-controls input[name="tag"]')) {
    box.checked = state.tag.includes(box.value);
    box.addEventListener("change", () => {
      state.tag = [...document.querySelectorAll('#table-controls input[name="tag"]:checked')].map((b) => b.value);
      state.offset = 0;
      saveState();
      load();
    });
  }
  for (const box of document.querySelectorAll('#table-controls input[name="status"]')) {
    box.checked = state.status.includes(box.value);
    box.addEventListener("change", () => {
      state.status = [...document.querySelectorAll('#table-controls input[name="status"]:checked')].map((b) => b.value);
      state.offset = 0;
      saveState();
      load();
    });
  }

  const field = document.getElementById("filter-field");
  const custom = document.getElementById("filter-custom");
  field.addEventListener("change", () => { custom.hidden = field.value !== "custom"; });
  const renderFilters = () => {
    const holder = document.getElementById("active-filters");
    holder.replaceChildren(...state.filter.map((condition, index) => {
      const chip = document.createElement("span");
      chip.className = "chip";
      chip.dataset.filter = condition;
      const remove = document.createElement("button");
      remove.type = "button";
      remove.textContent = "×";
      remove.setAttribute("aria-label", `Remove filter ${condition}`);
      remove.addEventListener("click", () => {
        state.filter.splice(index, 1);
        state.offset = 0;
        renderFilters();
        saveState();
        load();
      });
      chip.append(condition.replace(/^_(options|scores)\./, ""), " ", remove);
      return chip;
    }));
  };
  const addFilter = () => {
    const name = field.value === "custom" ? custom.value.trim() : field.value;
    const value = document.getElementById("filter-value").value.trim();
    if (!name) {
      say("table-message", "Name the custom field to filter by.", true);
      return;
    }
    state.filter.push(`${name}${document.getElementById("filter-op").value}${value}`);
    state.offset = 0;
    document.getElementById("filter-value").value = "";
    renderFilters();
    saveState();
    load();
  };
  document.getElementById("filter-add").addEventListener("click", addFilter);
  document.getElementById("filter-value").addEventListener("keydown", (event) => {
    if (event.key === "Enter") { event.preventDefault(); addFilter(); }
  });

  document.getElementById("page-prev").addEventListener("click", () => {
    state.offset = Math.max(0, state.offset - state.limit);
    saveState();
    load();
  });
  document.getElementById("page-next").addEventListener("click", () => {
    state.offset += state.limit;
    saveState();
    load();
  });
  const pageSize = document.getElementById("page-size");
  if (![...pageSize.options].some((o) => Number(o.value) === state.limit)) pageSize.append(new Option(state.limit, state.limit));
  pageSize.value = String(state.limit);
  pageSize.addEventListener("change", () => {
    state.limit = Number(pageSize.value);
    state.offset = 0;
    saveState();
    load();
  });

  // Selection and what to do with it ------------------------------------------------
  const selectPage = document.getElementById("select-page");
  const actions = [...document.querySelectorAll("#table-actions button")];
  const updateSelection = () => {
    say("selection-count", `${selected.size} selected`);
    for (const button of actions) button.disabled = selected.size === 0;
    const boxes = [...tbody.querySelectorAll("input.select-row")];
    selectPage.checked = boxes.length > 0 && boxes.every((box) => box.checked);
    selectPage.indeterminate = !selectPage.checked && boxes.some((box) => box.checked);
  };
  tbody.addEventListener("change", (event) => {
    const box = event.target.closest("input.select-row");
    if (!box) return;
    if (box.checked) selected.add(box.dataset.id);
    else selected.delete(box.dataset.id);
    updateSelection();
  });
  selectPage.addEventListener("change", () => {
    for (const box of tbody.querySelectorAll("input.select-row")) {
      box.checked = selectPage.checked;
      if (box.checked) selected.add(box.dataset.id);
      else selected.delete(box.dataset.id);
    }
    updateSelection();
  });
  document.getElementById("clear-selection").addEventListener("click", () => {
    selected.clear();
    for (const box of tbody.querySelectorAll("input.select-row")) box.checked = false;
    updateSelection();
  });
  document.getElementById("compare-selected").addEventListener("click", () => {
    const ids = [...selected].slice(0, COMPARE_MAX);
    window.location.href = `/projects/${data.project_id}/compare?ids=${ids.join(",")}`;
  });
  const bulk = async (verb, method, path, done) => {
    const ids = [...selected];
    if (verb !== "Rerun" && !window.confirm(`${verb} ${ids.length} experiment(s)?`)) return;
    say("table-message", `${verb}: 0 of ${ids.length}…`);
    const failures = [];
    let finished = 0;
    const work = async (id) => {
      try {
        await api(method, path(id));
        done(id);
      } catch (error) {
        failures.push(`${id}: ${error.message}`);
      }
      finished += 1;
      say("table-message", `${verb}: ${finished} of ${ids.length}…`);
    };
    for (let i = 0; i < ids.length; i += BULK_PARALLEL) await Promise.all(ids.slice(i, i + BULK_PARALLEL).map(work));
    say("table-message", failures.length
      ? `${verb}: ${ids.length - failures.length} done, ${failures.length} refused (${failures.slice(0, 3).join("; ")})`
      : `${verb}: ${ids.length} done.`, failures.length > 0);
    updateSelection();
    load();
  };
  document.getElementById("delete-selected").addEventListener("click", () =>
    bulk("Delete", "DELETE", (id) => `/api/v1/experiments/${id}`, (id) => selected.delete(id)));
  document.getElementById("kill-selected").addEventListener("click", () =>
    bulk("Kill", "POST", (id) => `/api/v1/experiments/${id}/kill`, () => {}));
  document.getElementById("rerun-selected").addEventListener("click", () =>
    bulk("Rerun", "POST", (id) => `/api/v1/experiments/${id}/rerun`, () => {}));

  wireHeader();
  buildToggles();
  renderFilters();
  saveState();
  load();
}

const ACTIVE_STATUSES = new Set(["queued", "dispatched", "claimed", "running"]);
const TERMINAL_STATUSES = new Set(["success", "fail", "killed", "timeout", "cancelled", "lost", "pruned"]);

/** The table's state from the page's URL (?sort=&order=&status=&tag=&q=&filter=&offset=&limit=). */
function readTableState(data) {
  const query = new URLSearchParams(window.location.search);
  const number = (key, fallback) => {
    const value = Number(query.get(key));
    return Number.isInteger(value) && value > 0 ? value : fallback;
  };
  return {
    sort: query.get("sort") || data.sort,
    order: query.get("order") === "asc" || query.get("order") === "desc" ? query.get("order") : data.order,
    status: query.getAll("status"),
    tag: query.getAll("tag"),
    q: query.get("q") || "",
    filter: query.getAll("filter"),
    offset: number("offset", 0),
    limit: Math.min(number("limit", data.page_size), 500),
  };
}

function isObject(value) {
  return value !== null && typeof value === "object" && !Array.isArray(value);
}

/** A value as the server's pages spell it: strings bare, everything else as JSON. */
function showValue(value) {
  if (value === null || value === undefined) return "";
  return typeof value === "string" ? value : JSON.stringify(value);
}

/** An API time (ISO 8601, UTC) as the pages show it: 2024-05-01 12:00:03. */
function showTime(value) {
  return typeof value === "string" ? value.slice(0, 19).replace("T", " ") : "";
}

function isDefaultValue(value, spec) {
  if (!spec || !("default" in spec)) return false;
  return (typeof value === "boolean") === (typeof spec.default === "boolean") && value === spec.default;
}

/** How long a run took, or has taken so far while it runs: 1h 02m 03s. */
function durationText(row) {
  if (!row._started) return "";
  const end = row._finished ? Date.parse(row._finished) : (row._status === "running" ? Date.now() : NaN);
  const seconds = Math.max(0, Math.floor((end - Date.parse(row._started)) / 1000));
  if (Number.isNaN(seconds)) return "";
  const hours = Math.floor(seconds / 3600);
  const minutes = Math.floor((seconds % 3600) / 60);
  const rest = String(seconds % 60).padStart(2, "0");
  if (hours) return `${hours}h ${String(minutes).padStart(2, "0")}m ${rest}s`;
  return minutes ? `${minutes}m ${rest}s` : `${seconds % 60}s`;
}

function statusBadge(status) {
  const span = document.createElement("span");
  span.className = `status status-${status}`;
  span.textContent = status;
  return span;
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

/** Draws the experiment's charts; `refresh()` fetches them again and redraws only when
 * they changed (a running experiment rewrites its charts file as it goes). */
let c3Loading = null;

/** Load the vendored d3 and C3 (and C3's stylesheet) once per page. */
function loadC3() {
  c3Loading = c3Loading || (async () => {
    const css = document.createElement("link");
    css.rel = "stylesheet";
    css.href = C3_URLS.css;
    document.head.append(css);
    if (!window.d3) await loadScript(C3_URLS.d3);
    if (!window.c3) await loadScript(C3_URLS.c3);
  })();
  return c3Loading;
}

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

// Live sections -------------------------------------------------------------------------

/** Replace the page's [data-live] sections with fresh ones from the server every few
 * seconds (home: machines and counts; machine: ledger, queue, current experiments). */
function refreshLiveSections() {
  const tick = async () => {
    if (document.hidden) {
      setTimeout(tick, PAGE_REFRESH_MS);
      return;
    }
    try {
      const response = await fetch(window.location.href, { headers: { Accept: "text/html" } });
      if (!response.ok || response.redirected) return; // logged out or gone: stop
      const fresh = new DOMParser().parseFromString(await response.text(), "text/html");
      for (const node of document.querySelectorAll("[data-live]")) {
        const next = fresh.querySelector(`[data-live="${node.dataset.live}"]`);
        if (next && next.innerHTML !== node.innerHTML) node.replaceWith(document.adoptNode(next));
      }
    } catch (ignored) {
      // A missed refresh is retried at the next tick.
    }
    setTimeout(tick, PAGE_REFRESH_MS);
  };
  setTimeout(tick, PAGE_REFRESH_MS);
}

// Machine ----------------------------------------------------------------------------

function machinePage() {
  const data = pageData();
  const base = `/api/v1/machines/${encodeURIComponent(data.machine_id)}`;
  setupDrain(base);
  drawTelemetry("gpu-charts", data.gpu_charts);
  refreshLiveSections();
}

/** Draw C3 configs the server built from telemetry (GPU history, a run's resources). */
async function drawTelemetry(holderId, configs) {
  const holder = document.getElementById(holderId);
  if (!holder || !configs || !configs.length) return;
  try {
    await loadC3();
  } catch (error) {
    holder.textContent = `Charts need C3.js, which could not be loaded (${error.message}).`;
    return;
  }
  for (const config of configs) {
    const node = document.createElement("div");
    node.className = "chart";
    holder.append(node);
    window.c3.generate({ ...config, bindto: node });
  }
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

// Sweep --------------------------------------------------------------------------------

/** The objective per trial (pruned and failed trials without one are left out) and the
 * best so far, the parallel coordinates, each trial's curve; pause/resume/cancel buttons;
 * the trials table sorts and selects trials to compare; a reload every few seconds while
 * it runs (held back while trials are selected). */
function sweepPage() {
  const data = pageData();
  document.querySelectorAll("[data-sweep-action]").forEach((button) => {
    button.addEventListener("click", async () => {
      try {
        await api("POST", `/api/v1/sweeps/${data.sweep_id}/${button.dataset.sweepAction}`);
        window.location.reload();
      } catch (error) {
        say("sweep-message", error.message, true);
      }
    });
  });
  const selected = setupTrialsTable(data);
  if (data.state === "running" || data.state === "paused") {
    const reload = () => {
      if (selected().length) setTimeout(reload, PAGE_REFRESH_MS);
      else window.location.reload();
    };
    setTimeout(reload, PAGE_REFRESH_MS);
  }
  if (data.objective) {
    drawSweepChart(data);
    drawParallel(data);
    drawCurves(data);
  }
}

/** Sorting by a header (kept in the URL's query, so the reload keeps it) and selecting
 * trials to compare; returns a function that lists the selected experiment IDs. */
function setupTrialsTable(data) {
  const table = document.getElementById("trials");
  const body = table.tBodies[0];
  const params = new URLSearchParams(window.location.search);
  let key = params.get("sort");
  let descending = params.get("order") === "desc";
  const sortRows = () => {
    const header = table.querySelector(`th[data-sort-key="${key}"]`);
    for (const th of table.querySelectorAll("th[data-sort-key]")) {
      if (th === header) {
        th.dataset.sortLabel = descending ? "▼" : "▲";
        th.setAttribute("aria-sort", descending ? "descending" : "ascending");
      } else {
        delete th.dataset.sortLabel;
        th.removeAttribute("aria-sort");
      }
    }
    if (!header) return;
    const index = [...header.parentNode.children].indexOf(header);
    const numeric = header.dataset.sortType === "number";
    const value = (row) => row.cells[index].dataset.value || "";
    const rows = [...body.rows].sort((a, b) => {
      const [x, y] = [value(a), value(b)];
      if (x === "" || y === "") return (x === "") - (y === ""); // empty cells last
      const order = numeric ? Number(x) - Number(y) : x.localeCompare(y);
      return descending ? -order : order;
    });
    body.append(...rows);
  };
  for (const th of table.querySelectorAll("th[data-sort-key]")) {
    th.addEventListener("click", () => {
      descending = key === th.dataset.sortKey ? !descending : false;
      key = th.dataset.sortKey;
      const query = new URLSearchParams(window.location.search);
      query.set("sort", key);
      query.set("order", descending ? "desc" : "asc");
      history.replaceState(null, "", `?${query}`);
      sortRows();
    });
  }
  sortRows();

  const button = document.getElementById("compare-trials");
  const selected = () => [...table.querySelectorAll(".select-trial:checked")].map((box) => box.dataset.id);
  table.addEventListener("change", () => {
    const count = selected().length;
    document.getElementById("trial-selection").textContent = `${count} selected`;
    button.disabled = count < 2 || count > COMPARE_MAX;
  });
  button.addEventListener("click", () => {
    window.location.href = `/projects/${data.project_id}/compare?ids=${selected().join(",")}`;
  });
  return selected;
}

const SVG_NS = "http://www.w3.org/2000/svg";

function svgNode(tag, attributes = {}, text = undefined) {
  const node = document.createElementNS(SVG_NS, tag);
  for (const [name, value] of Object.entries(attributes)) node.setAttribute(name, value);
  if (text !== undefined) node.textContent = text;
  return node;
}

function shortNumber(value) {
  return Math.abs(value) >= 1e4 || (value !== 0 && Math.abs(value) < 1e-3)
    ? value.toExponential(2) : String(Number(value.toPrecision(3)));
}

/** An axis over `values` from pixel `from` to pixel `to`: numbers on a linear (or log)
 * scale with three ticks, anything else as evenly spaced categories. */
function axisOf(values, log, from, to) {
  if (values.every((v) => typeof v === "number")) {
    const f = log ? (v) => Math.log10(Math.max(v, Number.MIN_VALUE)) : (v) => v;
    let low = Math.min(...values.map(f));
    let high = Math.max(...values.map(f));
    if (low === high) { low -= 0.5; high += 0.5; }
    const at = (v) => from + ((f(v) - low) / (high - low)) * (to - from);
    const unf = log ? (v) => 10 ** v : (v) => v;
    const ticks = [low, (low + high) / 2, high].map((v) => [at(unf(v)), shortNumber(unf(v))]);
    return { at, ticks };
  }
  const categories = [...new Set(values.map((v) => JSON.stringify(v)))].sort();
  const step = (to - from) / Math.max(1, categories.length - 1);
  const at = (v) => (categories.length === 1 ? (from + to) / 2 : from + categories.indexOf(JSON.stringify(v)) * step);
  return { at, ticks: categories.map((c, i) => [categories.length === 1 ? (from + to) / 2 : from + i * step, String(JSON.parse(c))]) };
}

/** Each trial that reported the objective as a line through its options' values and its
 * objective, darker for better; pruned trials dashed. Plain SVG, no library. */
function drawParallel(data) {
  const node = document.getElementById("sweep-parallel");
  const trials = data.trials.filter((t) => t.objective !== null);
  if (!trials.length) {
    node.textContent = "No trial has reported the objective yet.";
    return;
  }
  const width = Math.max(node.clientWidth, 480);
  const height = 320;
  const [top, bottom, left, right] = [34, height - 24, 70, width - 90];
  const better = data.objective.goal === "maximize" ? (a, b) => b - a : (a, b) => a - b;
  const ranked = [...trials].sort((a, b) => better(a.objective, b.objective));
  // An option that kept one value in every trial tells nothing: no axis for it.
  const varied = data.space.filter((field) => new Set(trials.map((t) => JSON.stringify(t.options[field.name]))).size > 1);
  const axes = varied.map((field) => ({
    name: field.name,
    ...axisOf(trials.map((t) => t.options[field.name]), field.log, bottom, top),
    value: (t) => t.options[field.name],
  }));
  axes.push({
    name: data.objective.score,
    ...axisOf(trials.map((t) => t.objective), false, bottom, top),
    value: (t) => t.objective,
  });
  const x = (i) => (axes.length === 1 ? left : left + (i * (right - left)) / (axes.length - 1));
  const chart = svgNode("svg", {
    width, height, role: "img", class: "parallel",
    "aria-label": `Parallel coordinates of ${trials.length} trials: ${axes.map((a) => a.name).join(", ")}`,
  });
  // The worst first, so the best lines are drawn on top.
  [...ranked].reverse().forEach((trial) => {
    const rank = ranked.length === 1 ? 0 : ranked.indexOf(trial) / (ranked.length - 1);
    const points = axes.map((axis, i) => `${x(i)},${axis.at(axis.value(trial))}`).join(" ");
    const line = svgNode("polyline", {
      points,
      class: `pc-line${trial.status === "pruned" ? " pruned" : ""}`,
      stroke: `hsl(215, 75%, ${22 + 55 * rank}%)`,
      "data-trial": trial.trial,
    });
    line.append(svgNode("title", {}, `trial ${trial.trial} (${trial.status}): ${data.objective.score} ${trial.objective}`));
    chart.append(line);
  });
  axes.forEach((axis, i) => {
    const group = svgNode("g", { class: "pc-axis" });
    group.append(svgNode("line", { x1: x(i), x2: x(i), y1: top, y2: bottom }));
    group.append(svgNode("text", { x: x(i), y: top - 14, class: "pc-name" }, axis.name));
    for (const [y, label] of axis.ticks) {
      group.append(svgNode("text", { x: x(i) + 5, y: y + 4, class: "pc-tick" }, label));
    }
    chart.append(group);
  });
  node.replaceChildren(chart);
}

/** Each trial's reported objective by step on one chart; pruned trials red, dashed and
 * ending with × where they were stopped. Plain SVG, no library. */
function drawCurves(data) {
  const node = document.getElementById("sweep-curves");
  const trials = data.trials.filter((t) => t.curve.length);
  if (!trials.length) {
    node.textContent = "No trial has reported a step yet (a program reports them with _step).";
    return;
  }
  const width = Math.max(node.clientWidth, 480);
  const height = 300;
  const [top, bottom, left, right] = [16, height - 36, 70, width - 20];
  const all = trials.flatMap((t) => t.curve);
  const xAxis = axisOf(all.map((p) => p[0]), false, left, right);
  const yAxis = axisOf(all.map((p) => p[1]), false, bottom, top);
  const chart = svgNode("svg", {
    width, height, role: "img", class: "curves",
    "aria-label": `${data.objective.score} by step of ${trials.length} trials`,
  });
  const frame = svgNode("g", { class: "pc-axis" });
  frame.append(svgNode("line", { x1: left, x2: right, y1: bottom, y2: bottom }));
  frame.append(svgNode("line", { x1: left, x2: left, y1: top, y2: bottom }));
  for (const [px, label] of xAxis.ticks) frame.append(svgNode("text", { x: px, y: bottom + 16, class: "pc-tick middle" }, label));
  for (const [py, label] of yAxis.ticks) frame.append(svgNode("text", { x: left - 6, y: py + 4, class: "pc-tick end" }, label));
  frame.append(svgNode("text", { x: (left + right) / 2, y: height - 4, class: "pc-tick middle" }, "step"));
  chart.append(frame);
  for (const trial of trials) {
    const pruned = trial.status === "pruned";
    const points = trial.curve.map(([step, value]) => [xAxis.at(step), yAxis.at(value)]);
    const line = svgNode("polyline", {
      points: points.map((p) => p.join(",")).join(" "),
      class: `curve${pruned ? " pruned" : ""}`,
      "data-trial": trial.trial,
    });
    line.append(svgNode("title", {}, `trial ${trial.trial} (${trial.status})${trial.reason ? `: ${trial.reason}` : ""}`));
    chart.append(line);
    if (pruned) {
      const [px, py] = points[points.length - 1];
      const mark = svgNode("text", { x: px, y: py + 5, class: "pruned-mark", "data-trial": trial.trial }, "×");
      mark.append(svgNode("title", {}, `trial ${trial.trial}: ${trial.reason || "pruned"}`));
      chart.append(mark);
    }
  }
  node.replaceChildren(chart);
}

async function drawSweepChart(data) {
  const node = document.getElementById("sweep-chart");
  const done = data.points.filter((p) => p.objective !== null);
  if (!node || !done.length) {
    say("sweep-chart-message", "No trial has reported the objective yet.");
    return;
  }
  const better = data.objective.goal === "maximize"
    ? (a, b) => a > b : (a, b) => a < b;
  let best = null;
  const bestSoFar = done.map((p) => {
    if (p.status === "success" && (best === null || better(p.objective, best))) best = p.objective;
    return best;
  });
  try {
    const css = document.createElement("link");
    css.rel = "stylesheet";
    css.href = C3_URLS.css;
    document.head.append(css);
    if (!window.d3) await loadScript(C3_URLS.d3);
    if (!window.c3) await loadScript(C3_URLS.c3);
  } catch (error) {
    say("sweep-chart-message", `The chart needs C3.js, which could not be loaded (${error.message}).`, true);
    return;
  }
  const name = data.objective.score;
  window.c3.generate({
    bindto: node,
    data: {
      x: "trial",
      columns: [
        ["trial", ...done.map((p) => p.trial)],
        [name, ...done.map((p) => p.objective)],
        ["best so far", ...bestSoFar],
      ],
      types: { [name]: "scatter", "best so far": "step" },
    },
    axis: { x: { label: "trial" }, y: { label: name } },
  });
}

// Compare ------------------------------------------------------------------------------

/** The compared experiments' charts overlaid: a chart per series name, a line per
 * experiment, from each experiment's C3 configs (GET .../charts). */
async function comparePage() {
  const data = pageData();
  if (!data.ids || !data.ids.length) return;
  let configs;
  try {
    configs = await Promise.all(data.ids.map((id) => api("GET", `/api/v1/experiments/${id}/charts`)));
    if (!configs.some((charts) => charts.length)) return;
    await loadC3();
  } catch (error) {
    say("compare-charts-message", `Charts: ${error.message}`, true);
    return;
  }
  const overlaid = overlaySeries(data.ids, configs);
  if (!overlaid.size) return;
  document.getElementById("compare-charts-section").hidden = false;
  const holder = document.getElementById("compare-charts");
  for (const [series, { lines, axis }] of overlaid) {
    const figure = document.createElement("figure");
    figure.className = "chart";
    figure.dataset.series = series;
    const caption = document.createElement("figcaption");
    caption.textContent = series;
    const node = document.createElement("div");
    figure.append(caption, node);
    holder.append(figure);
    const xs = {};
    const columns = [];
    for (const line of lines) {
      const label = `${series} · ${line.id.slice(-6)}`;
      xs[label] = `x ${label}`;
      columns.push([label, ...line.ys], [`x ${label}`, ...line.xs]);
    }
    window.c3.generate({ bindto: node, data: { xs, columns }, axis, point: { show: false }, zoom: { enabled: true } });
  }
}

/** Series name -> the experiments' lines ({id, xs, ys}) and the first chart's axes. A
 * series without an x column of its own is drawn against its index. */
function overlaySeries(ids, configs) {
  const overlaid = new Map();
  configs.forEach((charts, index) => {
    for (const config of charts) {
      const columns = Object.fromEntries(config.data.columns.map((c) => [c[0], c.slice(1)]));
      const xOf = config.data.xs || {};
      const xNames = new Set(Object.values(xOf));
      for (const [name, ys] of Object.entries(columns)) {
        if (xNames.has(name)) continue;
        const xs = xOf[name] ? columns[xOf[name]] : ys.map((_, i) => i);
        if (!overlaid.has(name)) overlaid.set(name, { lines: [], axis: config.axis || {} });
        overlaid.get(name).lines.push({ id: ids[index], xs, ys });
      }
    }
  });
  return overlaid;
}

async function loadC3() {
  const css = document.createElement("link");
  css.rel = "stylesheet";
  css.href = C3_URLS.css;
  document.head.append(css);
  if (!window.d3) await loadScript(C3_URLS.d3);
  if (!window.c3) await loadScript(C3_URLS.c3);
}

const PAGES = {
  compare: comparePage,
  home: homePage,
  project: projectPage,
  experiment: experimentPage,
  machine: machinePage,
  sweep: sweepPage,
};

document.addEventListener("DOMContentLoaded", () => {
  const start = PAGES[document.body.dataset.page];
  if (start) start();
});
