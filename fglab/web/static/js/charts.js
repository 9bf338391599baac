/* C3.js charts: loadC3 (the vendored d3, C3 and C3's stylesheet, once per page; every
 * page that draws a C3 chart uses it) and drawTelemetry (C3 configs the server built). */

import { loadScript } from "./api.js";

// Shipped with FGLab (d3 5.16, C3.js 0.7.20), so charts draw on networks without internet.
const C3_URLS = {
  d3: "/assets/vendor/d3.min.js",
  c3: "/assets/vendor/c3.min.js",
  css: "/assets/vendor/c3.min.css",
};

let c3Loading = null;

/** Load the vendored d3 and C3 (and C3's stylesheet) once per page. */
export function loadC3() {
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

/** Draw C3 configs the server built from telemetry (GPU history, a run's resources). */
export async function drawTelemetry(holderId, configs) {
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
