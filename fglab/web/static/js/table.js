/* The project page's experiments table: server-side sort, filter and paging with the
 * state in the URL (readTableState), column toggles, live rows, selection and the bulk
 * actions (delete, kill, rerun, compare), CSV/JSON export links. */

import { api, say } from "./api.js";
import { ACTIVE_STATUSES, durationText, isObject, showTime, showValue, statusBadge } from "./format.js";
import { BULK_PARALLEL, COMPARE_MAX, SEARCH_DELAY_MS, TABLE_POLL_MS } from "./limits.js";

/* The experiments table: the server sorts, filters and pages (GET .../experiments/table);
 * the page keeps its state in the URL's query, so a reload or a shared link shows the same
 * rows. While some visible row is active, those rows alone are polled (?ids=) and updated
 * in place. */
export function setupExperimentsTable(data) {
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

/** The table's state from the page's URL (?sort=&order=&status=&tag=&q=&filter=&offset=&limit=). */
export function readTableState(data) {
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

function isDefaultValue(value, spec) {
  if (!spec || !("default" in spec)) return false;
  return (typeof value === "boolean") === (typeof spec.default === "boolean") && value === spec.default;
}
