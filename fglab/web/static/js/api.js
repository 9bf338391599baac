/* Shared helpers for every page: the page's server-rendered data (pageData), the JSON
 * API (api: resolves to the answer, rejects with the API's {"error"} text), a message
 * line (say) and loading a classic script (loadScript). */

import { SCRIPT_TIMEOUT_MS } from "./limits.js";

export function pageData() {
  const node = document.getElementById("page-data");
  return node ? JSON.parse(node.textContent) : {};
}

/** Call the API; resolves to the JSON answer, rejects with the API's error text. */
export async function api(method, url, body) {
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

export function say(id, text, isError = false) {
  const node = document.getElementById(id);
  if (!node) return;
  node.textContent = text;
  node.classList.toggle("error", isError);
}

export function loadScript(src) {
  return new Promise((resolve, reject) => {
    const script = document.createElement("script");
    const timer = setTimeout(() => reject(new Error(`timed out loading ${src}`)), SCRIPT_TIMEOUT_MS);
    script.src = src;
    script.onload = () => { clearTimeout(timer); resolve(); };
    script.onerror = () => { clearTimeout(timer); reject(new Error(`could not load ${src}`)); };
    document.head.append(script);
  });
}
