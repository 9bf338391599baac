/* How the pages show values: statuses (active, terminal, a badge), option and score
 * values, API times, run durations. No API calls. */

export const ACTIVE_STATUSES = new Set(["queued", "dispatched", "claimed", "running"]);

export const TERMINAL_STATUSES = new Set(["success", "fail", "killed", "timeout", "cancelled", "lost", "pruned"]);

export function isObject(value) {
  return value !== null && typeof value === "object" && !Array.isArray(value);
}

/** A value as the server's pages spell it: strings bare, everything else as JSON. */
export function showValue(value) {
  if (value === null || value === undefined) return "";
  return typeof value === "string" ? value : JSON.stringify(value);
}

/** An API time (ISO 8601, UTC) as the pages show it: 2024-05-01 12:00:03. */
export function showTime(value) {
  return typeof value === "string" ? value.slice(0, 19).replace("T", " ") : "";
}

/** How long a run took, or has taken so far while it runs: 1h 02m 03s. */
export function durationText(row) {
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

export function statusBadge(status) {
  const span = document.createElement("span");
  span.className = `status status-${status}`;
  span.textContent = status;
  return span;
}
