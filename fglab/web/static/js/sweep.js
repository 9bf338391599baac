/* The sweep page: pause/resume/cancel, the trials table (sort, select to compare), the
 * objective chart (C3) and the parallel coordinates and trial curves (plain SVG). */

import { api, pageData, say } from "./api.js";
import { loadC3 } from "./charts.js";
import { COMPARE_MAX, PAGE_REFRESH_MS } from "./limits.js";

/** The objective per trial (pruned and failed trials without one are left out) and the
 * best so far, the parallel coordinates, each trial's curve; pause/resume/cancel buttons;
 * the trials table sorts and selects trials to compare; a reload every few seconds while
 * it runs (held back while trials are selected). */
export function sweepPage() {
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
    await loadC3();
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
