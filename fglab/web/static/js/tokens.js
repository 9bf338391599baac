/* The access page: make an API token (its secret shown once), revoke one. */

import { api, say } from "./api.js";
import { showTime } from "./format.js";

export function tokensPage() {
  document.getElementById("create-token").addEventListener("click", createToken);
  for (const button of document.querySelectorAll("button.revoke")) {
    button.addEventListener("click", () => revoke(button));
  }
}

async function createToken() {
  const name = document.getElementById("token-name").value.trim();
  const days = document.getElementById("token-days").value;
  if (!name) {
    say("token-message", "Name the token: what is it for?", true);
    return;
  }
  const body = days ? { name, days: Number(days) } : { name };
  try {
    const token = await api("POST", "/api/v1/tokens", body);
    document.getElementById("new-token").textContent = token.token;
    document.getElementById("new-token-box").hidden = false;
    addRow(token);
    say("token-message", `Token "${token.name}" made.`);
  } catch (error) {
    say("token-message", error.message, true);
  }
}

function addRow(token) {
  const row = document.createElement("tr");
  row.dataset.token = token._id;
  const cells = [token.name, showTime(token._created), token._expires ? showTime(token._expires) : "never"];
  for (const text of cells) {
    const cell = document.createElement("td");
    cell.textContent = text;
    row.append(cell);
  }
  const button = document.createElement("button");
  button.type = "button";
  button.className = "danger revoke";
  button.dataset.token = token._id;
  button.textContent = "Revoke";
  button.addEventListener("click", () => revoke(button));
  const last = document.createElement("td");
  last.append(button);
  row.append(last);
  document.querySelector("#tokens tbody").append(row);
  document.getElementById("no-tokens").hidden = true;
}

async function revoke(button) {
  button.disabled = true;
  try {
    await api("DELETE", `/api/v1/tokens/${encodeURIComponent(button.dataset.token)}`);
    button.closest("tr").remove();
    say("token-message", "Token revoked: requests that send it are refused from now on.");
    document.getElementById("no-tokens").hidden =
      document.querySelectorAll("#tokens tbody tr").length > 0;
  } catch (error) {
    button.disabled = false;
    say("token-message", error.message, true);
  }
}
