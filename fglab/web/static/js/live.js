/* Live sections: the page's [data-live] sections replaced with the server's fresh ones
 * every few seconds (home and machine pages). */

import { PAGE_REFRESH_MS } from "./limits.js";

/** Replace the page's [data-live] sections with fresh ones from the server every few
 * seconds (home: machines and counts; machine: ledger, queue, current experiments). */
export function refreshLiveSections() {
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
