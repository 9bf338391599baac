/* The project page: tabs, the new experiment, search and sweep forms, "add to machine",
 * and the experiments table (table.js). */

import { api, pageData, say } from "./api.js";
import { setupExperimentsTable } from "./table.js";

export function projectPage() {
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
