"""Hub restart, side by side (not part of the test suite): Python JupyterHub 5 behind configurable-http-proxy 5.3,
and `wasmhub serve` behind `wasmhub proxy`, each proxy in its own process (`should_start = False`, as z2jh runs
them). A client loop makes logins, API calls and page loads through the proxy; two seconds in, the hub is killed
with SIGKILL and started again one second later with the same config. Reported per hub: requests made, failed
requests (errors and 5xx), the longest wait for one answer, and the time from the kill until a login works again.

Run by tests/bench/restart/run.sh, which says what it needs.
"""

import json
import os
import secrets
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import requests

PASSWORD = "bench-password"
TOKEN = secrets.token_hex(16)
ADMIN_TOKEN = secrets.token_hex(16)
BEFORE_KILL = 2.0
GAP = 1.0
AFTER_RESTART = 15.0


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_http(url, timeout=60):
    deadline = time.time() + timeout
    while time.time() < deadline:
        try:
            if requests.get(url, timeout=2).status_code < 500:
                return
        except requests.RequestException:
            pass
        time.sleep(0.1)
    raise SystemExit(f"nothing answered {url} within {timeout} s")


def one_request(index, public):
    """One request of the loop; returns (ok, what)."""
    kind = index % 3
    if kind == 0:
        session = requests.Session()
        form = session.get(f"{public}/hub/login", timeout=120)
        xsrf = session.cookies.get("_xsrf", "")
        login = session.post(
            f"{public}/hub/login?next=%2Fhub%2Fhome",
            data={"username": "carol", "password": PASSWORD, "_xsrf": xsrf},
            allow_redirects=False,
            timeout=120,
        )
        return form.status_code == 200 and login.status_code in (302, 303), "login"
    if kind == 1:
        answer = requests.get(f"{public}/hub/api/users", headers={"Authorization": f"token {ADMIN_TOKEN}"}, timeout=120)
        return answer.status_code == 200, "api"
    answer = requests.get(f"{public}/hub/login", timeout=120)
    return answer.status_code == 200, "page"


def client_loop(public, hub_kill_at, duration):
    """Runs requests one after another for `duration` seconds; returns their records."""
    records = []
    started = time.time()
    index = 0
    while time.time() - started < duration:
        began = time.time()
        try:
            ok, what = one_request(index, public)
        except requests.RequestException as error:
            ok, what = False, f"error {type(error).__name__}"
        records.append({"began": began, "ended": time.time(), "ok": ok, "what": what, "index": index})
        index += 1
    return records


def run_scenario(name, start_proxy, start_hub, public, kill_hub):
    proxy = start_proxy()
    hub = start_hub()
    wait_http(f"{public}/hub/api/")
    # carol exists for the logins.
    requests.post(f"{public}/hub/api/users/carol", headers={"Authorization": f"token {ADMIN_TOKEN}"}, timeout=30)
    import threading

    result = {}
    loop = threading.Thread(
        target=lambda: result.setdefault("records", client_loop(public, None, BEFORE_KILL + GAP + AFTER_RESTART))
    )
    loop.start()
    time.sleep(BEFORE_KILL)
    killed_at = time.time()
    kill_hub(hub)
    time.sleep(GAP)
    hub = start_hub()
    loop.join()
    records = result["records"]
    after_kill = [r for r in records if r["ended"] >= killed_at]
    failed = [r for r in after_kill if not r["ok"]]
    logins_back = next((r["ended"] - killed_at for r in after_kill if r["ok"] and r["what"] == "login"), None)
    summary = {
        "hub": name,
        "requests": len(after_kill),
        "failed": len(failed),
        "longest_wait_s": round(max((r["ended"] - r["began"] for r in after_kill), default=0.0), 2),
        "logins_back_s": None if logins_back is None else round(logins_back, 2),
        "failed_kinds": sorted({r["what"] for r in failed}),
    }
    kill_hub(hub)
    proxy.send_signal(signal.SIGTERM)
    proxy.wait(timeout=30)
    return summary


def main():
    peers = Path(os.environ["WASMHUB_PEERS"])
    wasmhub_bin = os.environ["WASMHUB_BIN"]
    venv = peers / "venv-jh5"
    chp = peers / "chp" / "node_modules" / "configurable-http-proxy" / "bin" / "configurable-http-proxy"
    scratch = Path(tempfile.mkdtemp(prefix="wasmhub-restart-bench-"))
    results = []
    env = dict(os.environ, CONFIGPROXY_AUTH_TOKEN=TOKEN)

    # Python JupyterHub behind CHP.
    p_pub, p_api, p_hub = free_port(), free_port(), free_port()
    jh_dir = scratch / "jupyterhub"
    jh_dir.mkdir()
    (jh_dir / "jupyterhub_config.py").write_text(
        f"""
c.JupyterHub.bind_url = "http://127.0.0.1:{p_pub}"
c.JupyterHub.hub_ip = "127.0.0.1"
c.JupyterHub.hub_port = {p_hub}
c.ConfigurableHTTPProxy.should_start = False
c.ConfigurableHTTPProxy.api_url = "http://127.0.0.1:{p_api}"
c.ConfigurableHTTPProxy.auth_token = "{TOKEN}"
c.JupyterHub.db_url = "sqlite:///{jh_dir}/jupyterhub.sqlite"
c.JupyterHub.cookie_secret_file = "{jh_dir}/cookie_secret"
c.JupyterHub.authenticator_class = "dummy"
c.DummyAuthenticator.password = "{PASSWORD}"
c.Authenticator.allow_all = True
c.JupyterHub.services = [{{"name": "bench", "api_token": "{ADMIN_TOKEN}"}}]
c.JupyterHub.load_roles = [{{"name": "admin", "services": ["bench"]}}]
c.JupyterHub.cleanup_servers = False
c.JupyterHub.cleanup_proxy = False
"""
    )
    log = open(jh_dir / "hub.log", "ab")

    def jh_proxy():
        flags = ["--ip", "127.0.0.1", "--port", str(p_pub), "--api-ip", "127.0.0.1", "--api-port", str(p_api)]
        flags += ["--default-target", f"http://127.0.0.1:{p_hub}", "--error-target", f"http://127.0.0.1:{p_hub}/hub/error"]
        return subprocess.Popen(["node", str(chp), *flags], env=env, stdout=log, stderr=log)

    def jh_hub():
        return subprocess.Popen(
            [str(venv / "bin" / "jupyterhub"), "-f", str(jh_dir / "jupyterhub_config.py")],
            cwd=jh_dir, env=env, stdout=log, stderr=log,
        )

    def kill(process):
        process.kill()
        process.wait()

    results.append(run_scenario("JupyterHub 5.5.4 + CHP 5.3", jh_proxy, jh_hub, f"http://127.0.0.1:{p_pub}", kill))

    # wasmhub serve behind wasmhub proxy.
    w_pub, w_api, w_hub = free_port(), free_port(), free_port()
    w_dir = scratch / "wasmhub"
    w_dir.mkdir()
    (w_dir / "wasmhub.yaml").write_text(
        f"""hub:
  db:
    url: "sqlite://{w_dir}/hub.sqlite"
  services:
    bench:
      apiToken: "{ADMIN_TOKEN}"
      admin: true
  config:
    JupyterHub:
      authenticator_class: dummy
    DummyAuthenticator:
      password: {PASSWORD}
    ConfigurableHTTPProxy:
      should_start: false
      api_url: "http://127.0.0.1:{w_api}"
proxy:
  secretToken: "{TOKEN}"
cull:
  enabled: false
wasmhub:
  spawner: noop
  noop:
    url: "http://127.0.0.1:9"
  listen:
    hub: "127.0.0.1:{w_hub}"
"""
    )
    w_log = open(w_dir / "hub.log", "ab")

    def w_proxy():
        flags = ["--ip", "127.0.0.1", "--port", str(w_pub), "--api-ip", "127.0.0.1", "--api-port", str(w_api)]
        flags += ["--default-target", f"http://127.0.0.1:{w_hub}", "--no-persist-routes"]
        return subprocess.Popen([wasmhub_bin, "proxy", *flags], env=env, stdout=w_log, stderr=w_log)

    def w_hub_start():
        return subprocess.Popen(
            [wasmhub_bin, "serve", "--config", str(w_dir / "wasmhub.yaml")], cwd=w_dir, env=env, stdout=w_log, stderr=w_log
        )

    results.append(run_scenario("wasmhub serve + wasmhub proxy", w_proxy, w_hub_start, f"http://127.0.0.1:{w_pub}", kill))
    print(json.dumps(results))


if __name__ == "__main__":
    main()
