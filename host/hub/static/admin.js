// The admin panel: users with paging, filter and sort; add, edit and delete users; start, stop and open their
// servers; groups; login lockouts. Everything goes through the REST API, so the hub's scope checks apply to every action.
"use strict";
(function () {
  const PAGINATION = "application/jupyterhub-pagination+json";
  const state = { offset: 0, limit: 50, total: 0, editing: null };
  const usersBody = document.getElementById("users");

  function message(text) { showMessage("admin-message", text); }

  function element(tag, attributes, text) {
    const node = document.createElement(tag);
    for (const [key, value] of Object.entries(attributes || {})) node.setAttribute(key, value);
    if (text !== undefined) node.textContent = text;
    return node;
  }

  function button(label, className, action) {
    const node = element("button", { type: "button", class: "btn btn-sm " + className }, label);
    node.addEventListener("click", async () => {
      node.disabled = true;
      try { await action(); } catch (error) { message(error.message); } finally { node.disabled = false; }
    });
    return node;
  }

  function serverPath(user, server) {
    return "/users/" + quoteName(user) + (server ? "/servers/" + quoteName(server) : "/server");
  }

  function serverRow(user, serverName, server) {
    const row = element("tr", { class: "user-row", "data-user": user.name, "data-server": serverName });
    const nameCell = element("td");
    nameCell.appendChild(element("span", { class: "user-name" }, user.name));
    row.appendChild(nameCell);
    row.appendChild(element("td", {}, serverName ? "" : user.admin ? "admin" : ""));
    row.appendChild(element("td", {}, serverName || "[default]"));
    const activity = (server && server.last_activity) || (!serverName && user.last_activity);
    row.appendChild(element("td", {}, activity ? new Date(activity).toLocaleString() : "Never"));
    const ready = server && server.ready;
    const pending = server && server.pending;
    const stateCell = element("td");
    stateCell.appendChild(element("span", { class: "badge " + (ready ? "badge-ok" : pending ? "badge-pending" : "") },
      ready ? "running" : pending ? pending : "stopped"));
    row.appendChild(stateCell);
    const actions = element("td", { class: "actions" });
    if (ready) {
      actions.appendChild(button("Stop Server", "btn-danger stop-button", async () => {
        await hubApi("DELETE", serverPath(user.name, serverName));
        message("Stopped " + user.name + (serverName ? "/" + serverName : "") + ".");
        await loadUsers();
      }));
      actions.appendChild(element("a", { class: "btn btn-sm btn-primary open-button", role: "button",
        href: server.url || jhdata.base_url + "user/" + quoteName(user.name) + "/" }, "Access Server"));
    } else if (!pending) {
      actions.appendChild(button("Start Server", "btn-primary start-button", async () => {
        await hubApi("POST", serverPath(user.name, serverName));
        message("Started " + user.name + (serverName ? "/" + serverName : "") + ".");
        await loadUsers();
      }));
      const spawnPage = jhdata.prefix + "spawn/" + quoteName(user.name) + (serverName ? "/" + quoteName(serverName) : "");
      actions.appendChild(element("a", { class: "btn btn-sm spawn-page-button", role: "button", href: spawnPage },
        "Spawn Page"));
    }
    if (!serverName) {
      actions.appendChild(button("Edit User", "edit-button", async () => editUser(user)));
    }
    row.appendChild(actions);
    return row;
  }

  async function loadUsers() {
    const params = new URLSearchParams({
      include_stopped_servers: "1",
      offset: String(state.offset),
      limit: String(state.limit),
      sort: document.getElementById("user-sort").value,
    });
    const filter = document.getElementById("user-filter").value.trim();
    if (filter) params.set("name_filter", filter);
    const serverState = document.getElementById("state-filter").value;
    if (serverState) params.set("state", serverState);
    const data = await hubApi("GET", "/users?" + params, undefined, { Accept: PAGINATION });
    state.total = data._pagination ? data._pagination.total : data.items.length;
    usersBody.replaceChildren();
    for (const user of data.items || []) {
      const servers = user.servers || {};
      usersBody.appendChild(serverRow(user, "", servers[""]));
      for (const [name, server] of Object.entries(servers)) {
        if (name) usersBody.appendChild(serverRow(user, name, server));
      }
    }
    const last = Math.min(state.offset + state.limit, state.total);
    document.getElementById("page-info").textContent =
      state.total ? (state.offset + 1) + "-" + last + " of " + state.total : "no users";
    document.getElementById("prev-page").disabled = state.offset === 0;
    document.getElementById("next-page").disabled = last >= state.total;
  }

  function editUser(user) {
    state.editing = user.name;
    document.getElementById("edit-user-name").textContent = user.name;
    document.getElementById("edit-new-name").value = user.name;
    document.getElementById("edit-admin").checked = !!user.admin;
    document.getElementById("edit-user").classList.remove("hidden");
    document.getElementById("edit-new-name").focus();
  }

  function closeEdit() {
    state.editing = null;
    document.getElementById("edit-user").classList.add("hidden");
  }

  async function loadGroups() {
    const data = await hubApi("GET", "/groups", undefined, { Accept: PAGINATION });
    const body = document.getElementById("groups");
    body.replaceChildren();
    for (const group of data.items || []) {
      const row = element("tr", { class: "group-row", "data-group": group.name });
      row.appendChild(element("td", {}, group.name));
      const members = element("td");
      for (const member of group.users || []) {
        const tag = element("span", { class: "badge group-member" }, member + " ");
        tag.appendChild(button("×", "remove-member", async () => {
          await hubApi("DELETE", "/groups/" + quoteName(group.name) + "/users", { users: [member] });
          await loadGroups();
        }));
        members.appendChild(tag);
        members.appendChild(document.createTextNode(" "));
      }
      row.appendChild(members);
      const actions = element("td", { class: "actions" });
      const input = element("input", { placeholder: "username", class: "add-member-name", "aria-label": "Add member" });
      actions.appendChild(input);
      actions.appendChild(button("Add", "btn-primary add-member", async () => {
        const name = input.value.trim();
        if (!name) return;
        await hubApi("POST", "/groups/" + quoteName(group.name) + "/users", { users: [name] });
        await loadGroups();
        await loadUsers();
      }));
      actions.appendChild(button("Delete", "btn-danger delete-group", async () => {
        if (!window.confirm("Delete group " + group.name + "?")) return;
        await hubApi("DELETE", "/groups/" + quoteName(group.name));
        await loadGroups();
      }));
      row.appendChild(actions);
      body.appendChild(row);
    }
  }

  async function loadLockouts() {
    const data = await hubApi("GET", "/_wasmhub/login-lockouts");
    const body = document.getElementById("lockouts");
    body.replaceChildren();
    for (const lockout of data.lockouts || []) {
      const row = element("tr", { class: "lockout-row", "data-kind": lockout.kind, "data-key": lockout.key });
      row.appendChild(element("td", {}, (lockout.kind === "user" ? "user " : "address ") + lockout.key));
      row.appendChild(element("td", {}, String(lockout.failures)));
      row.appendChild(element("td", {}, new Date(lockout.until).toLocaleString()));
      const actions = element("td", { class: "actions" });
      actions.appendChild(button("Unlock", "btn-primary unlock-button", async () => {
        await hubApi("DELETE", "/_wasmhub/login-lockouts?" + new URLSearchParams({ [lockout.kind]: lockout.key }));
        message("Unlocked " + lockout.key + ".");
        await loadLockouts();
      }));
      row.appendChild(actions);
      body.appendChild(row);
    }
    document.getElementById("admin-lockouts").classList.toggle("hidden", !body.children.length);
  }

  document.getElementById("add-users-form").addEventListener("submit", async (event) => {
    event.preventDefault();
    const usernames = document.getElementById("add-usernames").value.split(/[\s,]+/).filter(Boolean);
    const admin = document.getElementById("add-admin").checked;
    try {
      await hubApi("POST", "/users", { usernames, admin });
      message("Added " + usernames.join(", ") + ".");
      document.getElementById("add-usernames").value = "";
      document.getElementById("add-admin").checked = false;
      await loadUsers();
    } catch (error) {
      message(error.message);
    }
  });

  document.getElementById("edit-user-form").addEventListener("submit", async (event) => {
    event.preventDefault();
    const name = state.editing;
    const newName = document.getElementById("edit-new-name").value.trim();
    const change = { admin: document.getElementById("edit-admin").checked };
    if (newName && newName !== name) change.name = newName;
    try {
      await hubApi("PATCH", "/users/" + quoteName(name), change);
      message("Updated " + (change.name || name) + ".");
      closeEdit();
      await loadUsers();
    } catch (error) {
      message(error.message);
    }
  });
  document.getElementById("edit-cancel").addEventListener("click", closeEdit);
  document.getElementById("edit-delete").addEventListener("click", async () => {
    const name = state.editing;
    if (!window.confirm("Delete user " + name + "?")) return;
    try {
      await hubApi("DELETE", "/users/" + quoteName(name));
      message("Deleted " + name + ".");
      closeEdit();
      await loadUsers();
    } catch (error) {
      message(error.message);
    }
  });

  document.getElementById("new-group-form").addEventListener("submit", async (event) => {
    event.preventDefault();
    const name = document.getElementById("new-group-name").value.trim();
    try {
      await hubApi("POST", "/groups/" + quoteName(name));
      document.getElementById("new-group-name").value = "";
      await loadGroups();
    } catch (error) {
      message(error.message);
    }
  });

  document.getElementById("stop-all").addEventListener("click", async () => {
    const rows = usersBody.querySelectorAll(".stop-button");
    for (const stop of rows) stop.click();
  });
  document.getElementById("shutdown-hub").addEventListener("click", async () => {
    if (!window.confirm("Shut down the hub? Servers keep running.")) return;
    try { await hubApi("POST", "/shutdown", { servers: false, proxy: false }); message("The hub is shutting down."); }
    catch (error) { message(error.message); }
  });

  let filterTimer = null;
  document.getElementById("user-filter").addEventListener("input", () => {
    clearTimeout(filterTimer);
    filterTimer = setTimeout(() => { state.offset = 0; loadUsers().catch((e) => message(e.message)); }, 250);
  });
  for (const id of ["user-sort", "state-filter"]) {
    document.getElementById(id).addEventListener("change", () => {
      state.offset = 0;
      loadUsers().catch((error) => message(error.message));
    });
  }
  document.getElementById("page-size").addEventListener("change", (event) => {
    state.limit = Number(event.target.value);
    state.offset = 0;
    loadUsers().catch((error) => message(error.message));
  });
  document.getElementById("prev-page").addEventListener("click", () => {
    state.offset = Math.max(0, state.offset - state.limit);
    loadUsers().catch((error) => message(error.message));
  });
  document.getElementById("next-page").addEventListener("click", () => {
    state.offset += state.limit;
    loadUsers().catch((error) => message(error.message));
  });

  loadUsers().catch((error) => message(error.message));
  loadGroups().catch((error) => message(error.message));
  loadLockouts().catch((error) => message(error.message));
})();
