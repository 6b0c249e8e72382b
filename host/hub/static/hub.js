// Shared by every page: the page's data from the server (`jhdata`), and calls to the REST API with the
// login cookie and the XSRF header, as JupyterHub's own pages make them. Also the home page's buttons.
"use strict";
const jhdata = JSON.parse(document.getElementById("jhdata").textContent || "{}");

/** Calls `/hub/api<path>`; resolves to the parsed JSON (or null), rejects with the API's message. */
async function hubApi(method, path, body, extraHeaders) {
  const headers = Object.assign(
    { "Content-Type": "application/json", Accept: "application/json", "X-XSRFToken": jhdata.xsrf_token || "" },
    extraHeaders || {},
  );
  const response = await fetch(jhdata.prefix + "api" + path, {
    method,
    credentials: "same-origin",
    headers,
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const text = await response.text();
  let data = null;
  try { data = text ? JSON.parse(text) : null; } catch (_) { data = text; }
  if (!response.ok) {
    const message = data && data.message ? data.message : response.status + " " + response.statusText;
    throw new Error(message);
  }
  return data;
}

function quoteName(name) {
  return encodeURIComponent(name).replace(/%40/g, "@");
}

function showMessage(id, text) {
  const element = document.getElementById(id);
  if (element) element.textContent = text;
}

// === home page ===
document.addEventListener("click", async (event) => {
  const button = event.target.closest("[data-stop],[data-delete]");
  if (!button || !document.getElementById("default-server")) return;
  button.disabled = true;
  const remove = button.hasAttribute("data-delete");
  const path = remove ? button.dataset.delete : button.dataset.stop;
  try {
    await hubApi("DELETE", path, remove ? { remove: true } : undefined);
    showMessage("home-message", remove ? "Server deleted." : "Server stopped.");
    window.location.reload();
  } catch (error) {
    showMessage("home-message", error.message);
    button.disabled = false;
  }
});

const newServerForm = document.getElementById("new-server-form");
if (newServerForm) {
  newServerForm.addEventListener("submit", (event) => {
    event.preventDefault();
    const name = document.getElementById("new-server-name").value.trim();
    if (name) window.location.href = newServerForm.dataset.spawnPrefix + "/" + quoteName(name);
  });
}
