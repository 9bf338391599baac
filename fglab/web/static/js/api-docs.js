/* The API docs page (/api/docs): starts Swagger UI with the settings the page carries as
 * JSON (#swagger-config). A file, not an inline script, so that the page runs under
 * FGLab's Content-Security-Policy (script-src 'self'). A classic script, deferred after
 * swagger-ui-bundle.js, which defines window.SwaggerUIBundle. */

"use strict";

document.addEventListener("DOMContentLoaded", () => {
  const config = JSON.parse(document.getElementById("swagger-config").textContent);
  window.ui = window.SwaggerUIBundle(config);
});
