/* The compare page: the compared experiments' charts overlaid, series by series. */

import { api, pageData, say } from "./api.js";
import { loadC3 } from "./charts.js";

/** The compared experiments' charts overlaid: a chart per series name, a line per
 * experiment, from each experiment's C3 configs (GET .../charts). */
export async function comparePage() {
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
