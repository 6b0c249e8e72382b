// Browser scenarios for the hub's pages, run by tests/tests/hub_pages.rs against a real `wasmhub serve`:
// `node pages.mjs <scenario>` with the settings as JSON in $SCENARIO_ARGS. Drives Debian's Chromium headless through
// playwright-core (never a downloaded browser), writes a screenshot of each page into args.artifacts, and prints
// `RESULT <json>` for the Rust test's own assertions. Any failed check exits non-zero with a screenshot named
// `<scenario>-failure.png`.
import { createRequire } from "node:module";
import path from "node:path";

const args = JSON.parse(process.env.SCENARIO_ARGS || "{}");
const require = createRequire(path.join(args.playwright, "package.json"));
const { chromium } = require(args.playwright);
const hub = args.hub;
const hubHost = new URL(hub).host;

function check(condition, message) {
  if (!condition) throw new Error("check failed: " + message);
}

async function shot(page, name) {
  await page.screenshot({ path: path.join(args.artifacts, name + ".png"), fullPage: true });
}

/** Logs in with the form; returns the response of the last navigation. */
async function logIn(page, user, password) {
  await page.goto(hub + "/hub/login");
  await page.fill("#username_input", user);
  await page.fill("#password_input", password);
  const [response] = await Promise.all([page.waitForNavigation({ waitUntil: "load" }), page.click("#login_submit")]);
  return response;
}

async function profileChoices(page) {
  return page.$$eval("input[name=profile]", (inputs) => inputs.map((input) => input.value));
}

async function tokenStatus(token) {
  const response = await fetch(hub + "/hub/api/user", { headers: { Authorization: "token " + token } });
  return response.status;
}

// === scenarios ===

/** alice (in gpu-users): login form and its error, profiles, spawn with progress to JupyterLab, home, tokens, logout. */
async function journey(browser) {
  const context = await browser.newContext({ viewport: { width: 1280, height: 860 } });
  const page = await context.newPage();
  // Every value the progress bar takes, even across the navigation that ends the pending page.
  const progress = [];
  await context.exposeBinding("__recordProgress", (_source, value) => progress.push(Number(value)));
  await context.addInitScript(() => {
    document.addEventListener("DOMContentLoaded", () => {
      const bar = document.getElementById("progress-bar");
      if (!bar) return;
      window.__recordProgress(bar.getAttribute("aria-valuenow"));
      new MutationObserver(() => window.__recordProgress(bar.getAttribute("aria-valuenow"))).observe(bar, {
        attributes: true,
        attributeFilter: ["aria-valuenow"],
      });
    });
  });

  await page.goto(hub + "/hub/");
  check(page.url().includes("/hub/login?next="), "an anonymous /hub/ goes to the login page, not " + page.url());
  await shot(page, "login");

  const failed = await logIn(page, "alice", "not-the-password");
  check(failed.status() === 403, "a wrong password answers 403, not " + failed.status());
  check((await page.textContent(".login_error")).includes("Invalid username or password"), "the error is shown");
  await shot(page, "login-failed");

  await logIn(page, "alice", args.password);
  check(new URL(page.url()).pathname === "/hub/spawn", "after login alice is on the spawn page: " + page.url());
  const profiles = await profileChoices(page);
  await shot(page, "spawn-options-gpu-user");

  await page.check("#profile-item-gpu");
  await page.selectOption("#profile-option-gpu--image", "tf");
  await Promise.all([page.waitForURL(/\/hub\/spawn-pending\/alice/, { timeout: 30000 }), page.click("#spawn-submit")]);
  await page.waitForSelector("#progress-bar");
  await shot(page, "spawn-pending");
  try {
    await page.waitForSelector('#progress-bar[aria-valuenow="100"]', { timeout: 120000 });
    await shot(page, "spawn-pending-100");
  } catch (error) {
    // The page may already be on its way to the server; `progress` still tells whether it reached 100.
  }
  await page.waitForURL(/\/user\/alice\/lab/, { timeout: 120000 });
  await page.waitForSelector(".jp-LabShell, #jp-main-dock-panel", { timeout: 120000 });
  await page.waitForTimeout(1500);
  await shot(page, "jupyterlab");
  check(progress.includes(100), "the progress bar reached 100%: " + JSON.stringify(progress));

  await page.goto(hub + "/hub/home");
  check(await page.isVisible("#stop"), "home offers to stop the running server");
  check((await page.getAttribute("#start", "href")) === "/user/alice/", "home links to the server");
  await shot(page, "home");

  // Tokens: request one with a note, expiry and scopes, use it, revoke it.
  await page.goto(hub + "/hub/token");
  await page.fill("#token-note", "from-the-browser");
  await page.selectOption("#token-expiration-seconds", "3600");
  await page.fill("#token-scopes", "read:users:name!user=alice");
  await page.click("#request-token-btn");
  await page.waitForFunction(() => document.getElementById("token-result").textContent.length > 0);
  const token = await page.textContent("#token-result");
  const row = page.locator("tr.token-row", { hasText: "from-the-browser" });
  await row.waitFor();
  check((await row.textContent()).includes("read:users:name!user=alice"), "the token row shows its scopes");
  await shot(page, "token");
  const before = await tokenStatus(token);
  await row.locator(".revoke-token-btn").click();
  await row.waitFor({ state: "detached" });
  const after = await tokenStatus(token);
  check(before === 200 && after === 403, `the token works until revoked (${before}, then ${after})`);

  // Cookie-authenticated writes without the XSRF token are refused.
  const apiWithoutXsrf = await page.evaluate(async () => {
    const response = await fetch("/hub/api/users/alice/tokens", {
      method: "POST",
      headers: { "Content-Type": "application/json" },
      body: "{}",
    });
    return response.status;
  });
  check(apiWithoutXsrf === 403, "an API POST without _xsrf answers 403, not " + apiWithoutXsrf);

  // Logout ends the hub session and, through the revoked OAuth token, the session at the server.
  await Promise.all([page.waitForURL(/\/hub\/login/), page.click("#logout")]);
  await shot(page, "logged-out");
  await page.goto(hub + "/user/alice/lab");
  await page.waitForLoadState("load");
  const afterLogout = page.url();
  check(new URL(afterLogout).pathname === "/hub/login", "after logout the server sends alice to log in: " + afterLogout);
  await shot(page, "server-after-logout");
  await context.close();
  return { profiles, progress, apiWithoutXsrf };
}

/** bob (not in gpu-users): only the CPU profile, and every forged spawn fails. */
async function restricted(browser) {
  const context = await browser.newContext({ viewport: { width: 1280, height: 800 } });
  const page = await context.newPage();
  await logIn(page, "bob", args.password);
  check(new URL(page.url()).pathname === "/hub/spawn", "after login bob is on the spawn page: " + page.url());
  const profiles = await profileChoices(page);
  await shot(page, "spawn-options-other-user");

  // The form with its token but a profile bob may not see: refused with the reason, and the form again.
  await page.evaluate(() => {
    document.querySelector("input[name=profile]").value = "gpu";
  });
  const [refused] = await Promise.all([page.waitForNavigation(), page.click("#spawn-submit")]);
  check(refused.status() === 400, "a hidden profile is refused with 400, not " + refused.status());
  check(await page.isVisible("#spawn-error"), "the refusal is shown on the form");
  await shot(page, "spawn-refused");

  // The same form without its XSRF token.
  await page.goto(hub + "/hub/spawn");
  await page.evaluate(() => document.querySelector("input[name=_xsrf]").remove());
  const [noToken] = await Promise.all([page.waitForNavigation(), page.click("#spawn-submit")]);
  check(noToken.status() === 403, "a spawn form without _xsrf answers 403, not " + noToken.status());
  await shot(page, "spawn-without-xsrf");

  // A page on another site (localhost is not 127.0.0.1 to the browser) posting the form to the hub.
  const other = hub.replace("127.0.0.1", "localhost");
  await page.goto(other + "/hub/login");
  await page.evaluate((target) => {
    const form = document.createElement("form");
    form.method = "post";
    form.action = target + "/hub/spawn";
    const field = document.createElement("input");
    field.name = "profile";
    field.value = "cpu";
    form.appendChild(field);
    document.body.appendChild(form);
    form.submit();
  }, hub);
  await page.waitForLoadState("load");
  const crossSite = page.url();
  check(!crossSite.includes("spawn-pending") && !crossSite.includes("/user/bob"), "a cross-site POST spawns nothing");

  // Open redirects: every form of auth.md §2.7 stays on the hub after login.
  const evil = [
    "//evil.example/",
    "///evil.example/",
    "////evil.example/x",
    "https://evil.example/",
    "http:evil.example",
    "/\\evil.example",
    "\\\\evil.example",
    "javascript:alert(1)",
    `http://${hubHost}@evil.example/`,
    `http://${hubHost}.evil.example/`,
    `${hub}//evil.example`,
  ];
  const landed = {};
  for (const next of evil) {
    const fresh = await browser.newContext();
    const tab = await fresh.newPage();
    await tab.goto(hub + "/hub/login?next=" + encodeURIComponent(next));
    await tab.fill("#username_input", "bob");
    await tab.fill("#password_input", args.password);
    await Promise.all([tab.waitForNavigation({ waitUntil: "load" }), tab.click("#login_submit")]);
    landed[next] = tab.url();
    check(new URL(tab.url()).host === hubHost, `next=${next} left the hub for ${tab.url()}`);
    await fresh.close();
  }
  await context.close();
  return { profiles, crossSite, landed };
}

/** The admin panel: list, filter, add carol, stop bob's server, groups, a login lockout; carol then logs in. */
async function admin(browser) {
  // Someone guesses carol's password until the name is locked (the hub's default: 5 failures).
  const guesser = await browser.newContext();
  const guess = await guesser.newPage();
  for (let attempt = 0; attempt < 5; attempt++) await logIn(guess, "carol", "a-guess-" + attempt);
  const lockedOut = await logIn(guess, "carol", args.password);
  check(lockedOut.status() === 429, "after 5 failures carol's name answers 429, not " + lockedOut.status());
  check((await guess.textContent(".login_error")).includes("Too many failed logins"), "the lockout is explained");
  await shot(guess, "login-locked");
  await guesser.close();

  const context = await browser.newContext({ viewport: { width: 1280, height: 900 } });
  const page = await context.newPage();
  page.on("dialog", (dialog) => dialog.accept());
  await logIn(page, "admin", args.password);
  await page.goto(hub + "/hub/admin");
  await page.waitForSelector('tr.user-row[data-user="bob"]');
  await shot(page, "admin");

  // The admin sees the lockout and lifts it, so carol can log in below.
  const lockout = 'tr.lockout-row[data-kind="user"][data-key="carol"]';
  await page.waitForSelector(lockout);
  await shot(page, "admin-lockouts");
  await page.click(lockout + " .unlock-button");
  await page.waitForSelector("#admin-lockouts.hidden", { state: "attached" });

  await page.fill("#add-usernames", "carol");
  await page.click("#add-users-btn");
  await page.waitForSelector('tr.user-row[data-user="carol"]');
  await shot(page, "admin-added-user");

  await page.fill("#user-filter", "car");
  await page.waitForFunction(() => {
    const rows = [...document.querySelectorAll("tr.user-row")];
    return rows.length > 0 && rows.every((row) => row.dataset.user.includes("car"));
  });
  await shot(page, "admin-filtered");
  await page.fill("#user-filter", "");
  await page.selectOption("#user-sort", "-name");
  await page.waitForFunction(() => {
    const names = [...document.querySelectorAll('tr.user-row[data-server=""]')].map((row) => row.dataset.user);
    return names.length > 1 && names.join() === [...names].sort().reverse().join();
  });

  // bob's server was started by the test; stop it from the panel.
  const bobRow = 'tr.user-row[data-user="bob"][data-server=""]';
  await page.waitForSelector(bobRow + " .stop-button");
  await page.click(bobRow + " .stop-button");
  const deadline = Date.now() + 60000;
  while (!(await page.isVisible(bobRow + " .start-button"))) {
    check(Date.now() < deadline, "bob's server shows as stopped within a minute");
    await page.waitForTimeout(1000);
    await page.selectOption("#user-sort", "name");
    await page.selectOption("#user-sort", "-name");
  }
  await shot(page, "admin-stopped-server");

  // Groups: create one and add carol.
  await page.fill("#new-group-name", "testers");
  await page.click("#new-group-btn");
  const group = 'tr.group-row[data-group="testers"]';
  await page.waitForSelector(group);
  await page.fill(group + " .add-member-name", "carol");
  await page.click(group + " .add-member");
  await page.waitForSelector(group + " .group-member");
  await shot(page, "admin-groups");

  // Edit: make carol an admin and back, through the edit form.
  await page.click('tr.user-row[data-user="carol"][data-server=""] .edit-button');
  await page.check("#edit-admin");
  await shot(page, "admin-edit-user");
  await page.uncheck("#edit-admin");
  await page.click("#edit-save");
  await page.waitForSelector("#edit-user.hidden", { state: "attached" });

  // The new user logs in, and is no admin.
  const carolContext = await browser.newContext({ viewport: { width: 1280, height: 800 } });
  const carol = await carolContext.newPage();
  await logIn(carol, "carol", args.password);
  const carolLanded = carol.url();
  check(!carolLanded.includes("/hub/login"), "carol, added by the admin, can log in: " + carolLanded);
  await shot(carol, "added-user-logged-in");
  const adminPage = await carol.goto(hub + "/hub/admin");
  check(adminPage.status() === 403, "a user without admin-ui gets 403 from /hub/admin, not " + adminPage.status());
  await shot(carol, "admin-forbidden");
  await carolContext.close();
  await context.close();
  return { carolLanded };
}

/**
 * Subdomains (hub at hub.test, alice at alice.hub.test): alice logs in on the hub's host and lands in JupyterLab on
 * her own; a script in her server's origin sees none of the hub's cookies and can read neither hub pages nor the
 * API nor bob's server, all of which are other origins now.
 */
async function subdomains(browser) {
  const context = await browser.newContext({ viewport: { width: 1280, height: 860 } });
  const page = await context.newPage();
  await logIn(page, "alice", args.password);
  await page.waitForURL(/alice\.hub\.test:\d+\/user\/alice\/lab/, { timeout: 90000 });
  await page.waitForSelector("#jp-main-dock-panel", { timeout: 60000 });
  await shot(page, "subdomain-lab");
  const landed = page.url();
  const hubOrigin = new URL(hub).origin;
  const bobOrigin = hubOrigin.replace("//hub.test", "//bob.hub.test");
  // What any script served by alice's server could try, with the visitor's credentials.
  const probe = await page.evaluate(async ({ hubOrigin, bobOrigin }) => {
    async function read(url) {
      try {
        const response = await fetch(url, { credentials: "include" });
        return "read " + response.status + " " + (await response.text()).slice(0, 80);
      } catch (error) {
        return "blocked";
      }
    }
    return {
      cookies: document.cookie,
      hubApi: await read(hubOrigin + "/hub/api/user"),
      hubPage: await read(hubOrigin + "/hub/home"),
      hubOnOwnHost: await read("/hub/api/user"),
      bobServer: await read(bobOrigin + "/user/bob/api/contents"),
    };
  }, { hubOrigin, bobOrigin });
  // The hub's own pages still work for alice on the hub's host.
  const home = await page.goto(hub + "/hub/home");
  check(home.status() === 200 && new URL(page.url()).host === new URL(hub).host, "the hub's home is on its host");
  await shot(page, "subdomain-hub-home");
  await context.close();
  return { landed, probe };
}

const scenarios = { journey, restricted, admin, subdomains };
const name = process.argv[2];
const scenario = scenarios[name];
if (!scenario) {
  console.error("unknown scenario " + name + "; one of " + Object.keys(scenarios).join(", "));
  process.exit(2);
}
const browser = await chromium.launch({
  executablePath: args.chromium,
  headless: true,
  args: [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    // Subdomain scenarios name hosts under hub.test; they all resolve to this machine.
    ...(args.hostResolverRules ? ["--host-resolver-rules=" + args.hostResolverRules] : []),
  ],
});
let exitCode = 0;
try {
  const result = await scenario(browser);
  console.log("RESULT " + JSON.stringify(result));
} catch (error) {
  console.error(error && error.stack ? error.stack : String(error));
  for (const context of browser.contexts()) {
    for (const [index, page] of context.pages().entries()) {
      await page
        .screenshot({ path: path.join(args.artifacts, `${name}-failure-${index}.png`), fullPage: true })
        .catch(() => {});
      console.error(`page ${index} was at ${page.url()}`);
    }
  }
  exitCode = 1;
} finally {
  await browser.close();
}
process.exit(exitCode);
