/* The machine page: drain and resume, GPU charts, live ledger, queue and experiments. */

import { api, pageData, say } from "./api.js";
import { drawTelemetry } from "./charts.js";
import { refreshLiveSections } from "./live.js";

export function machinePage() {
  const data = pageData();
  const base = `/api/v1/machines/${encodeURIComponent(data.machine_id)}`;
  setupDrain(base);
  drawTelemetry("gpu-charts", data.gpu_charts);
  refreshLiveSections();
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
