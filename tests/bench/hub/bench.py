#!/usr/bin/env python3
"""Helper for tests/bench/hub/run.sh (hub benchmark; not part of the test suite).

Python 3 standard library only, plus wrk for the fixed-rate phases. Subcommands:
  ports N                 print N free loopback TCP ports
  wait-http URL           poll URL until it answers (bounded by --timeout; fails early if --pid dies)
  measure OUT.json        run every phase against one hub through its public port and write OUT.json:
                          create users, list them paginated, GET one user at c=1 and c=32 (wrk), spawn servers
                          at c=50, activity POSTs at c=32 (wrk), memory; CPU of the hub, its proxy, the client
                          and the rest of the machine per phase from /proc
  table RESULTS_DIR       print the markdown tables from RESULTS_DIR/*.json; --docs PATH also writes the docs page
"""

import argparse
import datetime
import glob
import http.client
import json
import os
import re
import resource
import socket
import statistics
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request

CLK_TCK = os.sysconf("SC_CLK_TCK")
PAGINATION = "application/jupyterhub-pagination+json"


def log(msg):
    print(f"[bench {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


# ---------------------------------------------------------------- /proc sampling


def _stat_fields(pid):
    with open(f"/proc/{pid}/stat") as f:
        s = f.read()
    return s[s.rindex(")") + 2 :].split()  # fields from #3 (state) on


def children(pid):
    """Direct and indirect children of pid."""
    kids = {}
    for d in os.listdir("/proc"):
        if d.isdigit():
            try:
                kids.setdefault(int(_stat_fields(d)[1]), []).append(int(d))
            except (OSError, ValueError, IndexError):
                pass
    out, todo = [], [pid]
    while todo and len(out) < 10000:
        p = todo.pop()
        for c in kids.get(p, []):
            out.append(c)
            todo.append(c)
    return out


def cpu_seconds(pids):
    """utime+stime (and reaped children) of the given processes, in seconds; gone processes count 0."""
    ticks = 0
    for pid in pids:
        try:
            f = _stat_fields(pid)
            ticks += int(f[11]) + int(f[12]) + int(f[13]) + int(f[14])
        except (OSError, ValueError, IndexError):
            pass
    return ticks / CLK_TCK


def memory_mb(pids):
    """(VmRSS, VmHWM) in MB, summed over the given processes."""
    rss = hwm = 0
    for p in pids:
        try:
            with open(f"/proc/{p}/status") as f:
                for line in f:
                    if line.startswith("VmRSS:"):
                        rss += int(line.split()[1])
                    elif line.startswith("VmHWM:"):
                        hwm += int(line.split()[1])
        except OSError:
            pass
    return rss / 1024, hwm / 1024


def alive(pid):
    try:
        return _stat_fields(pid)[0] not in ("Z", "X")
    except OSError:
        return False


def host_cpu():
    """(busy, total) jiffies of the whole machine."""
    with open("/proc/stat") as f:
        v = [int(x) for x in f.readline().split()[1:]]
    idle = v[3] + v[4]
    return sum(v) - idle, sum(v)


def loadavg():
    with open("/proc/loadavg") as f:
        return " ".join(f.read().split()[:3])


def client_cpu():
    """CPU seconds of this process (its threads) plus its reaped children (wrk)."""
    s, c = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return s.ru_utime + s.ru_stime + c.ru_utime + c.ru_stime


class Phase:
    """Wall time and CPU of the hub, its proxy, the bench client, the backend and everything else over one phase."""

    def __init__(self, hub, name):
        self.hub, self.name = hub, name

    def __enter__(self):
        h = self.hub
        self.t0 = time.perf_counter()
        self.hub0, self.proxy0 = cpu_seconds([h.hub_pid]), cpu_seconds(h.proxy_pids)
        self.back0, self.client0, self.host0 = cpu_seconds(h.backend_pids), client_cpu(), host_cpu()
        self.load0 = loadavg()
        return self

    def __exit__(self, *exc):
        if exc[0] is not None:
            return False
        h = self.hub
        wall = time.perf_counter() - self.t0
        hub = cpu_seconds([h.hub_pid]) - self.hub0
        proxy = cpu_seconds(h.proxy_pids) - self.proxy0
        back = cpu_seconds(h.backend_pids) - self.back0
        client = client_cpu() - self.client0
        host1 = host_cpu()
        busy_s = (host1[0] - self.host0[0]) / CLK_TCK
        self.stats = {
            "wall_s": wall,
            "hub_cpu_s": hub,
            "proxy_cpu_s": proxy,
            "hub_cpu_pct": 100 * hub / wall,
            "proxy_cpu_pct": 100 * proxy / wall,
            "client_cpu_pct": 100 * client / wall,
            "backend_cpu_pct": 100 * back / wall,
            "machine_busy_pct": 100 * (host1[0] - self.host0[0]) / max(1, host1[1] - self.host0[1]) * os.cpu_count(),
            "other_cpu_pct": max(0.0, 100 * (busy_s - hub - proxy - back - client) / wall),
            "loadavg_start": self.load0,
            "loadavg_end": loadavg(),
        }
        h.result["phases"][self.name] = {**h.result["phases"].get(self.name, {}), **self.stats}
        return False


# ---------------------------------------------------------------- HTTP


class Api:
    """One keep-alive connection to the hub's REST API through its public port."""

    def __init__(self, port, token):
        self.port, self.token = port, token
        self.conn = None

    def request(self, method, path, body=None, accept=None):
        headers = {"Authorization": f"token {self.token}"}
        data = None
        if body is not None:
            data = json.dumps(body).encode()
            headers["Content-Type"] = "application/json"
        if accept:
            headers["Accept"] = accept
        for attempt in range(3):
            if self.conn is None:
                self.conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=120)
            try:
                self.conn.request(method, "/hub/api" + path, body=data, headers=headers)
                r = self.conn.getresponse()
                payload = r.read()
                if r.getheader("Connection", "").lower() == "close":
                    self.conn.close()
                    self.conn = None
                return r.status, payload, r
            except (http.client.HTTPException, OSError):
                self.conn.close()
                self.conn = None
                if attempt == 2:
                    raise
        raise AssertionError("unreachable")


def pct(xs, p):
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(round(p / 100 * (len(xs) - 1))))] if xs else None


def user_name(i):
    return f"bu{i:05d}"


# ---------------------------------------------------------------- phases


class Hub:
    def __init__(self, a):
        self.a = a
        self.port, self.token = a.port, a.token
        self.hub_pid = a.hub_pid
        self.proxy_pids = [a.proxy_pid] if a.proxy_pid else []
        self.backend_pids = [a.backend_pid] + children(a.backend_pid) if a.backend_pid else []
        self.result = {"hub": a.hub, "label": a.label, "phases": {}, "errors": []}

    def phase(self, name):
        return Phase(self, name)

    def memory(self, key):
        pids = [self.hub_pid] + self.proxy_pids
        rss, hwm = memory_mb(pids)
        hub_rss, _ = memory_mb([self.hub_pid])
        self.result[key] = {"rss_mb": rss, "hwm_mb": hwm, "hub_rss_mb": hub_rss, "proxy_rss_mb": rss - hub_rss}

    def error(self, msg):
        log(f"{self.a.hub}: {msg}")
        self.result["errors"].append(msg)

    def create(self):
        a, api = self.a, Api(self.port, self.token)
        times = []
        with self.phase("create") as ph:
            for start in range(0, a.users, a.batch):
                names = [user_name(i) for i in range(start, min(a.users, start + a.batch))]
                t0 = time.perf_counter()
                status, body, _ = api.request("POST", "/users", {"usernames": names})
                times.append(time.perf_counter() - t0)
                if status != 201:
                    self.error(f"POST /users (batch at {start}) answered {status}: {body[:200]!r}")
                    break
        created = len(times) * a.batch if not self.result["errors"] else (len(times) - 1) * a.batch
        ph.stats.update(users=created, per_s=created / ph.stats["wall_s"], batch_p50_s=pct(times, 50),
                        batch_max_s=max(times), hub_cpu_ms_per_op=1000 * ph.stats["hub_cpu_s"] / max(1, created))
        self.result["phases"]["create"].update(ph.stats)
        log(f"{a.hub}: created {created} users in {ph.stats['wall_s']:.2f} s ({ph.stats['per_s']:,.0f}/s)")

    def list_users(self):
        a, api = self.a, Api(self.port, self.token)
        scans, page_times = [], []
        with self.phase("list") as ph:
            for _ in range(a.list_scans):
                t0, offset, seen, pages = time.perf_counter(), 0, 0, 0
                path = f"/users?limit={a.page}&offset=0"
                while path:
                    p0 = time.perf_counter()
                    status, body, _ = api.request("GET", path, accept=PAGINATION)
                    page_times.append(time.perf_counter() - p0)
                    if status != 200:
                        self.error(f"GET {path} answered {status}: {body[:200]!r}")
                        return
                    doc = json.loads(body)
                    seen += len(doc["items"])
                    pages += 1
                    nxt = (doc.get("_pagination") or {}).get("next")
                    path = None
                    if nxt:
                        offset = nxt["offset"]
                        path = f"/users?limit={a.page}&offset={offset}"
                scans.append(time.perf_counter() - t0)
        scan = statistics.median(scans)
        ph.stats.update(users=seen, pages=pages, scan_s=scan, per_s=seen / scan, page_p50_ms=1000 * pct(page_times, 50),
                        page_p99_ms=1000 * pct(page_times, 99), scans=len(scans),
                        hub_cpu_ms_per_op=1000 * ph.stats["hub_cpu_s"] / (pages * len(scans)))
        self.result["phases"]["list"].update(ph.stats)
        log(f"{a.hub}: listed {seen} users in {pages} pages, median scan {scan:.3f} s")

    def wrk(self, name, conns, script, users):
        a = self.a
        lua = os.path.join(a.scratch, f"{name}.lua")
        with open(lua, "w") as f:
            f.write(script.replace("@TOKEN@", self.token).replace("@USERS@", str(users)))
        threads = 1 if conns == 1 else 2
        cmd = ["wrk", f"-t{threads}", f"-c{conns}", f"-d{a.dur}s", "--latency", "-s", lua, f"http://127.0.0.1:{self.port}"]
        with self.phase(name) as ph:
            p = subprocess.run(cmd, capture_output=True, text=True, timeout=a.dur + 120)
        with open(os.path.join(a.scratch, f"{a.hub}-{name}.wrk.txt"), "w") as f:
            f.write("$ " + " ".join(cmd) + "\n" + p.stdout + p.stderr)
        if p.returncode != 0 or "Requests/sec" not in p.stdout:
            self.error(f"wrk for {name} failed: {p.stderr.strip()[:300]}")
            return
        r = parse_wrk(p.stdout)
        ph.stats.update(r, per_s=r["rps"], hub_cpu_ms_per_op=1000 * ph.stats["hub_cpu_s"] / max(1, r["requests"]))
        self.result["phases"][name].update(ph.stats)
        if r["errors"]:
            self.error(f"{name}: {r['errors']} non-2xx responses or socket errors (see {a.hub}-{name}.wrk.txt)")
        log(f"{a.hub}: {name}: {r['rps']:,.0f} req/s, p50 {r['p50_ms']:.2f} ms, p99 {r['p99_ms']:.2f} ms, "
            f"{r['errors']} errors")

    def spawn(self):
        a = self.a
        names = [user_name(i) for i in range(a.spawns)]
        lock, todo = threading.Lock(), list(reversed(names))
        latencies, codes, failed = [], {}, []

        def worker():
            api = Api(self.port, self.token)
            while True:
                with lock:
                    if not todo:
                        return
                    name = todo.pop()
                t0 = time.perf_counter()
                deadline = t0 + 120
                while True:
                    status, body, r = api.request("POST", f"/users/{name}/server")
                    with lock:
                        codes[status] = codes.get(status, 0) + 1
                    if status == 429 and time.perf_counter() < deadline:
                        time.sleep(min(float(r.getheader("Retry-After") or 1), 1.0))
                        continue
                    break
                ok = status == 201
                while status == 202 and time.perf_counter() < deadline:
                    time.sleep(0.05)
                    s2, b2, _ = api.request("GET", f"/users/{name}")
                    server = (json.loads(b2).get("servers") or {}).get("") if s2 == 200 else None
                    if server and server.get("ready"):
                        ok = True
                        break
                    if server is None or not server.get("pending"):
                        break
                with lock:
                    if ok:
                        latencies.append(time.perf_counter() - t0)
                    else:
                        failed.append(f"{name}: {status} {body[:120]!r}")

        with self.phase("spawn") as ph:
            threads = [threading.Thread(target=worker) for _ in range(a.spawn_conc)]
            for t in threads:
                t.start()
            for t in threads:
                t.join()
        ready = len(latencies)
        ph.stats.update(spawned=ready, failed=len(failed), codes={str(k): v for k, v in sorted(codes.items())},
                        per_s=ready / ph.stats["wall_s"], latency_p50_s=pct(latencies, 50),
                        latency_p99_s=pct(latencies, 99), hub_cpu_ms_per_op=1000 * ph.stats["hub_cpu_s"] / max(1, ready))
        self.result["phases"]["spawn"].update(ph.stats)
        if failed:
            self.error(f"{len(failed)} spawns failed, e.g. {failed[:3]}")
        log(f"{a.hub}: {ready} servers ready in {ph.stats['wall_s']:.2f} s ({ph.stats['per_s']:,.1f}/s), "
            f"codes {codes}, p50 {ph.stats['latency_p50_s']}")
        # Every server must be ready, as the hub reports it.
        status, body, _ = Api(self.port, self.token).request("GET", f"/users/{names[-1]}")
        if status != 200 or not ((json.loads(body).get("servers") or {}).get("") or {}).get("ready"):
            self.error(f"after the spawn phase {names[-1]} has no ready server: {status} {body[:200]!r}")

    def measure(self):
        a = self.a
        self.result["started"] = datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")
        self.result["cold_start_s"] = a.cold_start
        self.memory("mem_start")
        self.create()
        self.memory("mem_users")
        self.list_users()
        self.wrk("get_c1", 1, GET_LUA, a.users)
        self.wrk("get_c32", 32, GET_LUA, a.users)
        self.spawn()
        self.memory("mem_spawned")
        self.wrk("activity_c32", 32, ACTIVITY_LUA, a.spawns)
        self.memory("mem_end")
        self.result["finished"] = datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")


GET_LUA = r"""
-- GET /hub/api/users/{name} for a random one of the created users.
math.randomseed(os.time() + math.floor(os.clock() * 1e6))
local headers = { ["Authorization"] = "token @TOKEN@" }
request = function()
  return wrk.format("GET", string.format("/hub/api/users/bu%05d", math.random(0, @USERS@ - 1)), headers)
end
"""

ACTIVITY_LUA = r"""
-- POST /hub/api/users/{name}/activity (user and default server, as jupyterhub-singleuser posts it) for a random
-- one of the users whose server runs.
math.randomseed(os.time() + math.floor(os.clock() * 1e6))
local headers = { ["Authorization"] = "token @TOKEN@", ["Content-Type"] = "application/json" }
request = function()
  local now = os.date("!%Y-%m-%dT%H:%M:%S.000000Z")
  local body = string.format('{"last_activity":"%s","servers":{"":{"last_activity":"%s"}}}', now, now)
  local path = string.format("/hub/api/users/bu%05d/activity", math.random(0, @USERS@ - 1))
  return wrk.format("POST", path, headers, body)
end
"""


def _ms(s):
    m = re.match(r"([\d.]+)(us|ms|s)", s)
    v = float(m.group(1))
    return {"us": v / 1000, "ms": v, "s": v * 1000}[m.group(2)]


def parse_wrk(out):
    r = {"non2xx": 0, "socket_errors": 0}
    r["rps"] = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))
    r["requests"] = int(re.search(r"(\d+) requests in", out).group(1))
    for p in ("50", "99"):
        r[f"p{p}_ms"] = _ms(re.search(rf"^\s+{p}%\s+(\S+)", out, re.M).group(1))
    m = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", out)
    if m:
        r["non2xx"] = int(m.group(1))
    m = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out)
    if m:
        r["socket_errors"] = sum(int(x) for x in m.groups())
    r["errors"] = r["non2xx"] + r["socket_errors"]
    return r


def cmd_measure(a):
    hub = Hub(a)
    try:
        hub.measure()
    finally:
        with open(a.out, "w") as f:
            json.dump(hub.result, f, indent=1)
        log(f"wrote {a.out}")


# ---------------------------------------------------------------- table


def _f(x, fmt="{:,.0f}", none="–"):
    return none if x is None else fmt.format(x)


def _med(xs):
    xs = [x for x in xs if x is not None]
    return statistics.median(xs) if xs else None


# (phase, key, label, format, target: ">=" ratio or "<=" ratio or None)
FIGURES = [
    ("create", "per_s", "create {users} users (POSTs of {batch} names, sequential): users/s", "{:,.0f}", (">=", 10)),
    ("list", "per_s", "list all users paginated ({page} per page, full scan): users/s", "{:,.0f}", (">=", 10)),
    ("get_c1", "per_s", "GET /users/{{name}} at concurrency 1: req/s", "{:,.0f}", (">=", 10)),
    ("get_c32", "per_s", "GET /users/{{name}} at concurrency 32: req/s", "{:,.0f}", (">=", 10)),
    ("spawn", "per_s", "spawn {spawns} servers at concurrency {spawn_conc}: spawns/s", "{:,.1f}", (">=", 10)),
    ("activity_c32", "per_s", "POST /users/{{name}}/activity at concurrency 32: req/s", "{:,.0f}", (">=", 10)),
    ("mem_spawned", "rss_mb", "resident memory after the spawn phase (hub + proxy): MB", "{:.1f}", ("<=", 0.25)),
]


def load_results(d):
    res = {}
    for path in sorted(glob.glob(os.path.join(d, "result-*.json"))):
        with open(path) as f:
            r = json.load(f)
        res.setdefault(r["hub"], []).append(r)
    return res


def value(runs, phase, key):
    xs = []
    for r in runs:
        src = r.get(phase) if phase.startswith("mem_") else r["phases"].get(phase)
        xs.append((src or {}).get(key))
    return _med(xs)


def render(d, meta):
    res = load_results(d)
    jh, wh = res.get("jupyterhub", []), res.get("wasmhub", [])
    fmtargs = {k: meta.get(k, "?") for k in ("users", "batch", "page", "spawns", "spawn_conc")}
    fmtargs["users"] = f"{int(fmtargs['users']):,}" if fmtargs["users"] != "?" else "?"
    rounds = max(len(jh), len(wh))
    out = []
    out.append(
        f"Median of {rounds} round(s) per hub. Ratio = wasmhub ÷ JupyterHub (memory: the same, lower is better)."
    )
    out.append("")
    out.append(
        "| figure | JupyterHub 5.5.4 + CHP | wasmhub | ratio | target | met | hub CPU ms per op, JupyterHub ÷ wasmhub |"
    )
    out.append("|---|---|---|---|---|---|---|")
    for phase, key, label, fmt, (op, tgt) in FIGURES:
        a, b = value(jh, phase, key), value(wh, phase, key)
        ratio = b / a if (a and b is not None) else None
        met = "not measured" if ratio is None else ("yes" if (ratio >= tgt if op == ">=" else ratio <= tgt) else "**no**")
        target = f"≥ {tgt:g}×" if op == ">=" else "≤ ¼"
        rf = "{:.1f}×" if op == ">=" else "{:.3f}×"
        ca, cb = value(jh, phase, "hub_cpu_ms_per_op"), value(wh, phase, "hub_cpu_ms_per_op")
        cpu = f"{ca:.2f} ÷ {cb:.3f} = {ca / cb:.1f}×" if (ca and cb) else "–"
        out.append(
            f"| {label.format(**fmtargs)} | {_f(a, fmt)} | {_f(b, fmt)} | {_f(ratio, rf)} | {target} | {met} | {cpu} |"
        )
    out.append("")
    busiest = max(
        (r["phases"][p].get("other_cpu_pct") or 0 for runs in (jh, wh) for r in runs for p in r["phases"]), default=0
    )
    if busiest > 25:
        out.append(
            f"**The machine was busy with other work during this run** (other processes used up to {busiest:.0f} % "
            "of the 200 % in a phase; see the details). JupyterHub is one Python process on one core and loses more "
            "to such contention than wasmhub, which spreads over both cores, so the throughput ratios above "
            "overstate the difference; hub CPU per operation (last column) is the more portable comparison. "
            "Rerun on a quiet machine for the figures that count."
        )
        out.append("")
    out.append("Details (medians). Latencies are client-side; CPU % is of one core; \"CPU ms/op\" is hub CPU per "
               "operation (per user created, per page, per request, per spawn).")
    out.append("")
    out.append("| phase | hub | wall s | p50 | p99 | hub CPU % | proxy CPU % | hub CPU ms/op | client CPU % | "
               "other processes CPU % | machine busy % (of 200) | load average at end |")
    out.append("|---|---|---|---|---|---|---|---|---|---|---|---|")
    lat = {
        "create": ("batch_p50_s", "batch_max_s", 1000, " ms (batch; max)"),
        "list": ("page_p50_ms", "page_p99_ms", 1, " ms (page)"),
        "get_c1": ("p50_ms", "p99_ms", 1, " ms"),
        "get_c32": ("p50_ms", "p99_ms", 1, " ms"),
        "spawn": ("latency_p50_s", "latency_p99_s", 1000, " ms (POST to ready)"),
        "activity_c32": ("p50_ms", "p99_ms", 1, " ms"),
    }
    for phase, (k50, k99, mul, unit) in lat.items():
        for name, runs in (("JupyterHub", jh), ("wasmhub", wh)):
            if not runs:
                continue
            v = lambda k: value(runs, phase, k)  # noqa: E731
            p50, p99 = v(k50), v(k99)
            p50s = _f(p50 * mul if p50 is not None else None, "{:,.2f}")
            p99s = _f(p99 * mul if p99 is not None else None, "{:,.2f}") + unit
            loads = [r["phases"].get(phase, {}).get("loadavg_end") for r in runs]
            out.append(
                f"| {phase} | {name} | {_f(v('wall_s'), '{:.2f}')} | {p50s} | {p99s} | {_f(v('hub_cpu_pct'))} | "
                f"{_f(v('proxy_cpu_pct'))} | {_f(v('hub_cpu_ms_per_op'), '{:.3f}')} | {_f(v('client_cpu_pct'))} | "
                f"{_f(v('other_cpu_pct'))} | {_f(v('machine_busy_pct'))} | {' / '.join(x for x in loads if x)} |"
            )
    out.append("")
    out.append("| memory, MB (VmRSS; hub + proxy) | JupyterHub: hub + CHP | wasmhub (one process) | ratio |")
    out.append("|---|---|---|---|")
    for key, label in (("mem_start", "at start (empty database)"), ("mem_users", "after creating the users"),
                       ("mem_spawned", "after the spawn phase"), ("mem_end", "at the end")):
        a, b = value(jh, key, "rss_mb"), value(wh, key, "rss_mb")
        ah, ap = value(jh, key, "hub_rss_mb"), value(jh, key, "proxy_rss_mb")
        split = f" ({_f(ah, '{:.1f}')} + {_f(ap, '{:.1f}')})" if ah is not None else ""
        ratio = b / a if (a and b is not None) else None
        out.append(f"| {label} | {_f(a, '{:.1f}')}{split} | {_f(b, '{:.1f}')} | {_f(ratio, '{:.3f}×')} |")
    a, b = value(jh, "mem_end", "hwm_mb"), value(wh, "mem_end", "hwm_mb")
    out.append(f"| peak (VmHWM) | {_f(a, '{:.1f}')} | {_f(b, '{:.1f}')} | {_f(b / a if a and b else None, '{:.3f}×')} |")
    out.append("")
    spawn_codes = []
    for name, runs in (("JupyterHub", jh), ("wasmhub", wh)):
        for i, r in enumerate(runs):
            sp = r["phases"].get("spawn", {})
            spawn_codes.append(f"{name} round {i + 1}: {sp.get('codes')}, cold start {_f(r.get('cold_start_s'), '{:.2f}')} s")
    out.append("Spawn POST answers by status code, and the time from exec to the first 200 from `/hub/api/`: "
               + "; ".join(spawn_codes) + ".")
    errors = [f"- {r['hub']}: {e}" for runs in (jh, wh) for r in runs for e in r.get("errors", [])]
    if errors:
        out += ["", "Problems:", ""] + errors
    return "\n".join(out) + "\n"


def cmd_table(a):
    meta = {}
    mp = os.path.join(a.results, "meta.txt")
    if os.path.exists(mp):
        with open(mp) as f:
            for line in f:
                if "=" in line:
                    k, v = line.rstrip("\n").split("=", 1)
                    meta[k] = v
    table = render(a.results, meta)
    with open(os.path.join(a.results, "table.md"), "w") as f:
        f.write(table)
    print(table, end="")
    if not a.docs:
        return
    os.makedirs(os.path.dirname(os.path.abspath(a.docs)), exist_ok=True)
    with open(a.docs, "w") as f:
        f.write("# wasmhub vs Python JupyterHub: hub benchmark\n\n")
        f.write("<!-- Generated by tests/bench/hub/run.sh --write-docs; rerun it rather than editing by hand. -->\n\n")
        f.write(f"Run {meta.get('started', '?')} – {meta.get('finished', '?')} UTC with:\n\n")
        f.write(f"```bash\n{a.command}\n```\n\n")
        f.write("Machine and versions:\n\n")
        for k in ("machine", "kernel", "loadavg_before", "loadavg_after", "wasmhub", "jupyterhub", "python", "chp",
                  "node", "sqlite", "nginx", "wrk", "order"):
            if meta.get(k):
                f.write(f"- {k}: {meta[k]}\n")
        f.write(
            "\nMethod: both hubs run on this machine in the same run, one after the other (the order alternates per "
            "round), each on a fresh SQLite file, each behind its own default proxy: JupyterHub starts "
            "configurable-http-proxy, wasmhub serves its built-in proxy in the same process. Every request goes "
            "to the public port (`/hub/api/...` through the proxy) with the token of a `bench` service that has the "
            "admin role, supplied in the config (`services[].api_token` / `hub.services.bench.apiToken`), so it is "
            "stored with JupyterHub's 16384-round hash in both hubs. Both use a no-op spawner that starts nothing and "
            "returns the URL of one shared nginx (answering 200 with an `X-JupyterHub-Version` header on every path): "
            "in JupyterHub a `Spawner` subclass in the generated `jupyterhub_config.py` (`start()` returns the URL, "
            "`poll()` returns None), in wasmhub `wasmhub.spawner: noop`. Each hub still does its whole spawn: the "
            "server's API token and OAuth client, the spawn record, the HTTP readiness probe and the proxy route. "
            "`concurrent_spawn_limit` is 100 in both (no 429 at 50), the authenticator is `dummy`, the log level "
            "INFO, the idle culler off.\n\n"
            "Phases, in this order: create the users with sequential `POST /users` of a batch of names; scan `GET "
            "/users` with JupyterHub's pagination (`Accept: application/jupyterhub-pagination+json`, following "
            "`_pagination.next`) several times (median); `GET /users/{name}` for random users with wrk at `-c1` "
            "and `-c32` for a fixed time; spawn the default server of the first users from Python threads (POST, "
            "and after a 202 poll `GET /users/{name}` until `ready`), the time running until the last is ready; "
            "`POST /users/{name}/activity` with a user and a server timestamp for random spawned users with wrk at "
            "`-c32`. CPU comes from /proc/PID/stat around each phase: the hub, its proxy (JupyterHub's CHP child), "
            "the client (this script and wrk), nginx, and \"other processes\", the rest of the machine's busy "
            "time (other work on the shared machine). Memory is VmRSS from /proc/PID/status, for JupyterHub the "
            "hub plus CHP. The client, the hubs and nginx share the 2 cores, so compare columns of the same run.\n\n"
        )
        f.write(table)
    log(f"wrote {a.docs}")


# ---------------------------------------------------------------- small commands


def cmd_ports(a):
    found, p = [], a.base
    while len(found) < a.n and p < a.base + 2000:
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        try:
            s.bind(("127.0.0.1", p))
            found.append(p)
        except OSError:
            pass
        finally:
            s.close()
        p += 1
    if len(found) < a.n:
        sys.exit(f"only {len(found)} free ports in {a.base}..{a.base + 1999}")
    print(" ".join(map(str, found)))


def cmd_wait_http(a):
    t0 = time.monotonic()
    deadline = t0 + a.timeout
    last = None
    while time.monotonic() < deadline:
        if a.pid and not alive(a.pid):
            sys.exit(f"process {a.pid} exited before {a.url} answered")
        try:
            req = urllib.request.Request(a.url)
            if a.token:
                req.add_header("Authorization", f"token {a.token}")
            with urllib.request.urlopen(req, timeout=2) as r:
                if r.status == 200:
                    print(f"{time.time() - a.since:.3f}" if a.since else "ok")
                    return
                last = f"status {r.status}"
        except urllib.error.HTTPError as e:
            last = f"status {e.code}"
        except OSError as e:
            last = repr(e)
        time.sleep(0.05)
    sys.exit(f"{a.url} did not answer 200 within {a.timeout} s (last: {last})")


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)
    p = sub.add_parser("ports")
    p.add_argument("n", type=int)
    p.add_argument("--base", type=int, default=24900)
    p.set_defaults(fn=cmd_ports)
    p = sub.add_parser("wait-http")
    p.add_argument("url")
    p.add_argument("--token")
    p.add_argument("--pid", type=int)
    p.add_argument("--timeout", type=float, default=60)
    p.add_argument("--since", type=float, help="epoch seconds of the exec; prints the time to the first 200")
    p.set_defaults(fn=cmd_wait_http)
    p = sub.add_parser("measure")
    p.add_argument("out")
    p.add_argument("--hub", required=True, choices=["jupyterhub", "wasmhub"])
    p.add_argument("--label", default="")
    p.add_argument("--port", type=int, required=True, help="the hub's public (proxy) port")
    p.add_argument("--token", required=True)
    p.add_argument("--hub-pid", type=int, required=True)
    p.add_argument("--proxy-pid", type=int, help="the proxy process when it is not the hub (CHP)")
    p.add_argument("--backend-pid", type=int, help="nginx, the servers' shared backend")
    p.add_argument("--scratch", required=True)
    p.add_argument("--cold-start", type=float)
    p.add_argument("--users", type=int, default=10000)
    p.add_argument("--batch", type=int, default=100)
    p.add_argument("--page", type=int, default=200)
    p.add_argument("--list-scans", type=int, default=3)
    p.add_argument("--dur", type=int, default=10)
    p.add_argument("--spawns", type=int, default=1000)
    p.add_argument("--spawn-conc", type=int, default=50)
    p.set_defaults(fn=cmd_measure)
    p = sub.add_parser("table")
    p.add_argument("results")
    p.add_argument("--docs")
    p.add_argument("--command", default="tests/bench/hub/run.sh")
    p.set_defaults(fn=cmd_table)
    a = ap.parse_args()
    a.fn(a)


if __name__ == "__main__":
    main()
