/* The home page: live machines and counts, the "upload a schema" form. */

import { api, say } from "./api.js";
import { refreshLiveSections } from "./live.js";

export function homePage() {
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
