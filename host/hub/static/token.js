// The token page: lists the user's API tokens, requests new ones and revokes them through the REST API.
"use strict";
(function () {
  const user = quoteName(jhdata.user);
  const tbody = document.getElementById("api-tokens");

  function cell(row, text) {
    const td = document.createElement("td");
    td.textContent = text === null || text === undefined ? "" : String(text);
    row.appendChild(td);
    return td;
  }

  async function load() {
    const data = await hubApi("GET", "/users/" + user + "/tokens");
    tbody.replaceChildren();
    for (const token of data.api_tokens || []) {
      const row = document.createElement("tr");
      row.className = "token-row";
      row.dataset.tokenId = token.id;
      cell(row, token.note);
      cell(row, (token.scopes || []).join(" "));
      cell(row, token.last_activity ? new Date(token.last_activity).toLocaleString() : "Never");
      cell(row, token.created ? new Date(token.created).toLocaleString() : "");
      cell(row, token.expires_at ? new Date(token.expires_at).toLocaleString() : "Never");
      const actions = cell(row, "");
      const revoke = document.createElement("button");
      revoke.type = "button";
      revoke.className = "btn btn-danger btn-sm revoke-token-btn";
      revoke.textContent = "revoke";
      revoke.addEventListener("click", async () => {
        revoke.disabled = true;
        try {
          await hubApi("DELETE", "/users/" + user + "/tokens/" + encodeURIComponent(token.id));
          row.remove();
        } catch (error) {
          showError(error.message);
          revoke.disabled = false;
        }
      });
      actions.appendChild(revoke);
      tbody.appendChild(row);
    }
  }

  function showError(text) {
    const element = document.getElementById("token-error");
    element.textContent = text;
    element.classList.toggle("hidden", !text);
  }

  document.getElementById("request-token-form").addEventListener("submit", async (event) => {
    event.preventDefault();
    showError("");
    const note = document.getElementById("token-note").value;
    const expires = document.getElementById("token-expiration-seconds").value;
    const scopes = document.getElementById("token-scopes").value.split(/[\s,]+/).filter(Boolean);
    const body = { note: note || "Requested via token page", expires_in: expires ? Number(expires) : null };
    if (scopes.length) body.scopes = scopes;
    try {
      const token = await hubApi("POST", "/users/" + user + "/tokens", body);
      document.getElementById("token-result").textContent = token.token;
      document.getElementById("token-area").classList.remove("hidden");
      await load();
    } catch (error) {
      showError(error.message);
    }
  });

  load().catch((error) => showError(error.message));
})();
