/* FGLab pages: native ES modules, no build step; base.html loads this one entry script.
 *
 * The server renders every page with its data; these modules add what needs the JSON API
 * (/api/v1/...): forms that submit, the experiments table's search/sort/columns/export,
 * live logs, auto-saved notes, charts, and the machine buttons (drain, resume, add a
 * project). Every error shown is the API's {"error"} text.
 *
 * This module picks the page's setup from <body data-page="..."> (each template's
 * {% block page %}) and runs it once the document is parsed. */

import { comparePage } from "./compare.js";
import { experimentPage } from "./experiment.js";
import { homePage } from "./home.js";
import { machinePage } from "./machine.js";
import { projectPage } from "./project.js";
import { sweepPage } from "./sweep.js";
import { tokensPage } from "./tokens.js";

const PAGES = {
  compare: comparePage,
  home: homePage,
  project: projectPage,
  experiment: experimentPage,
  machine: machinePage,
  sweep: sweepPage,
  tokens: tokensPage,
};

document.addEventListener("DOMContentLoaded", () => {
  const start = PAGES[document.body.dataset.page];
  if (start) start();
});
