#!/usr/bin/env python3
"""Helper for tests/bench/proxy/run.sh (proxy benchmark; not part of the test suite).

Python 3 standard library only. Subcommands:
  ports N                 print N free loopback TCP ports
  wait-http URL           poll URL until it answers (bounded by --timeout; fails early if --pid dies)
  measure RESULTS_DIR     read RESULTS_DIR/setups.tsv (written by run.sh), register routes, check routing,
                          time GET /api/routes, run wrk interleaved, sample CPU and memory from /proc;
                          write RESULTS_DIR/results.json and raw wrk output under RESULTS_DIR/raw/
  table RESULTS_DIR       print the markdown tables; --docs PATH also writes the docs page
"""

import argparse
import datetime
import http.client
import json
import os
import re
import socket
import statistics
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request

CLK_TCK = os.sysconf("SC_CLK_TCK")
PAGE_KB = os.sysconf("SC_PAGE_SIZE") // 1024
BACKEND_BODY = b"hello from backend\n"


def log(msg):
    print(f"[bench {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


# ---------------------------------------------------------------- /proc sampling


def _stat_fields(pid):
    with open(f"/proc/{pid}/stat") as f:
        s = f.read()
    return s[s.rindex(")") + 2 :].split()  # fields from #3 (state) on


def _children(pid):
    """Direct and indirect children of pid (a proxy might fork workers)."""
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


def cpu_seconds(pid):
    """utime+stime (+ reaped children) of pid plus utime+stime of its live descendants, in seconds."""
    f = _stat_fields(pid)
    ticks = int(f[11]) + int(f[12]) + int(f[13]) + int(f[14])
    for c in _children(pid):
        try:
            g = _stat_fields(c)
            ticks += int(g[11]) + int(g[12])
        except (OSError, ValueError, IndexError):
            pass
    return ticks / CLK_TCK


def memory_mb(pid):
    """(VmRSS, VmHWM) in MB, summed over pid and its descendants."""
    rss = hwm = 0
    for p in [pid] + _children(pid):
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
    """(busy, total) jiffies of the whole machine, to report how loaded it was."""
    with open("/proc/stat") as f:
        v = [int(x) for x in f.readline().split()[1:]]
    idle = v[3] + v[4]
    return sum(v) - idle, sum(v)


def loadavg():
    with open("/proc/loadavg") as f:
        return " ".join(f.read().split()[:3])


# ---------------------------------------------------------------- HTTP helpers


def api_request(conn, method, path, token, body=None):
    headers = {"Authorization": f"token {token}"}
    data = None
    if body is not None:
        data = json.dumps(body).encode()
        headers["Content-Type"] = "application/json"
    conn.request(method, path, body=data, headers=headers)
    r = conn.getresponse()
    return r.status, r.read()


def http_get(url, timeout=5.0):
    try:
        with urllib.request.urlopen(url, timeout=timeout) as r:
            return r.status, r.read()
    except urllib.error.HTTPError as e:
        return e.code, e.read()


def register_routes(host, port, token, n, conc, target):
    """POST n JupyterHub-shaped routes /user/u{i} with conc keep-alive clients. Returns (seconds, errors)."""
    errors = []
    lock = threading.Lock()

    def worker(k):
        conn = http.client.HTTPConnection(host, port, timeout=30)
        try:
            for i in range(k, n, conc):
                body = {"user": f"u{i}", "server_name": "", "target": target, "jupyterhub": True}
                try:
                    status, _ = api_request(conn, "POST", f"/api/routes/user/u{i}", token, body)
                except (OSError, http.client.HTTPException) as e:
                    status = repr(e)
                    conn.close()
                    conn = http.client.HTTPConnection(host, port, timeout=30)
                if status != 201:
                    with lock:
                        errors.append(f"u{i}: {status}")
                        if len(errors) > 100:
                            return
        finally:
            conn.close()

    threads = [threading.Thread(target=worker, args=(k,)) for k in range(conc)]
    t0 = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return time.perf_counter() - t0, errors


def time_get_routes(host, port, token, repeat):
    conn = http.client.HTTPConnection(host, port, timeout=60)
    times, size, count = [], 0, 0
    try:
        for _ in range(repeat):
            t0 = time.perf_counter()
            status, body = api_request(conn, "GET", "/api/routes", token)
            times.append((time.perf_counter() - t0) * 1000)
            if status != 200:
                raise RuntimeError(f"GET /api/routes -> {status}")
            size, count = len(body), len(json.loads(body))
    finally:
        conn.close()
    return {"median_ms": statistics.median(times), "max_ms": max(times), "bytes": size, "routes": count}


# ---------------------------------------------------------------- wrk

_UNITS = {"us": 1e-3, "ms": 1.0, "s": 1e3, "m": 60e3, "h": 3600e3}


def _ms(text):
    m = re.fullmatch(r"([\d.]+)(us|ms|s|m|h)", text)
    if not m:
        raise ValueError(f"bad wrk time {text!r}")
    return float(m.group(1)) * _UNITS[m.group(2)]


def parse_wrk(out):
    r = {"non2xx": 0, "socket_errors": 0}
    m = re.search(r"Requests/sec:\s+([\d.]+)", out)
    if not m:
        raise ValueError("no Requests/sec in wrk output")
    r["rps"] = float(m.group(1))
    m = re.search(r"(\d+) requests in ([\d.]+\w+)", out)
    r["requests"] = int(m.group(1))
    for pct in ("50", "99"):
        m = re.search(rf"^\s+{pct}%\s+(\S+)", out, re.M)
        r[f"p{pct}_ms"] = _ms(m.group(1))
    m = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", out)
    if m:
        r["non2xx"] = int(m.group(1))
    m = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out)
    if m:
        r["socket_errors"] = sum(int(x) for x in m.groups())
    return r


def run_wrk(url, threads, conns, dur, raw_path=None, pid=None):
    cpu0 = cpu_seconds(pid) if pid else None
    h0 = host_cpu()
    t0 = time.perf_counter()
    cmd = ["wrk", f"-t{threads}", f"-c{conns}", f"-d{dur}s", "--latency", url]
    p = subprocess.run(cmd, capture_output=True, text=True, timeout=dur + 60)
    wall = time.perf_counter() - t0
    h1 = host_cpu()
    if raw_path:
        with open(raw_path, "w") as f:
            f.write("$ " + " ".join(cmd) + "\n" + p.stdout + p.stderr)
    if p.returncode != 0:
        raise RuntimeError(f"wrk exited {p.returncode}: {p.stderr.strip()[:300]}")
    r = parse_wrk(p.stdout)
    r["wall_s"] = wall
    r["host_busy_pct"] = 100.0 * (h1[0] - h0[0]) / max(1, h1[1] - h0[1])
    r["loadavg"] = loadavg()
    if pid:
        cpu = cpu_seconds(pid) - cpu0
        r["proxy_cpu_s"] = cpu
        r["proxy_cpu_pct"] = 100.0 * cpu / wall
        r["req_per_cpu_s"] = r["requests"] / cpu if cpu > 0 else None
        r["rss_mb"], r["hwm_mb"] = memory_mb(pid)
    return r


# ---------------------------------------------------------------- measure


def read_setups(d):
    """setups.tsv: name kind pid proxy_port api_port routes url_user (pid/api '-' for direct)."""
    setups = []
    with open(os.path.join(d, "setups.tsv")) as f:
        for line in f:
            if not line.strip() or line.startswith("#"):
                continue
            name, kind, pid, port, api, routes, user = line.split()
            setups.append(
                {
                    "name": name,
                    "kind": kind,
                    "pid": None if pid == "-" else int(pid),
                    "port": int(port),
                    "api": None if api == "-" else int(api),
                    "routes": int(routes),
                    "url": f"http://127.0.0.1:{port}/user/{user}/api/status",
                    "ok": True,
                    "note": "",
                }
            )
    return setups


def check_routing(s, n_routes):
    users = ["u0"] if n_routes <= 1 else ["u0", f"u{n_routes // 2}", f"u{n_routes - 1}"]
    for u in users:
        url = f"http://127.0.0.1:{s['port']}/user/{u}/api/status"
        status, body = http_get(url)
        if status != 200 or body != BACKEND_BODY:
            raise RuntimeError(f"GET {url} -> {status} {body[:80]!r}")
    if s["kind"] != "direct":
        status, _ = http_get(f"http://127.0.0.1:{s['port']}/user/nobody-{n_routes}/x")
        if status != 404:
            raise RuntimeError(f"unrouted path -> {status}, expected 404")


def cmd_measure(a):
    d = a.results
    raw = os.path.join(d, "raw")
    os.makedirs(raw, exist_ok=True)
    setups = read_setups(d)
    token = a.token
    res = {
        "started": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "rounds": a.rounds,
        "dur": a.dur,
        "warmup": a.warmup,
        "n_routes": a.n_routes,
        "reg_conc": a.reg_conc,
        "loadavg_start": loadavg(),
        "setups": setups,
        "runs": [],
    }

    def fail(s, why):
        s["ok"] = False
        s["note"] = why
        log(f"{s['name']}: SKIPPED: {why}")

    # 1. register routes (one proxy at a time), check routing, time GET /api/routes
    for s in setups:
        if s["kind"] == "direct":
            continue
        pid = s["pid"]
        try:
            s["rss_start_mb"], s["hwm_start_mb"] = memory_mb(pid)
            cpu0 = cpu_seconds(pid)
            secs, errs = register_routes("127.0.0.1", s["api"], token, s["routes"], a.reg_conc, a.target)
            if errs:
                raise RuntimeError(f"{len(errs)}+ failed POSTs, first: {errs[:3]}")
            s["register_s"] = secs
            s["register_cpu_s"] = cpu_seconds(pid) - cpu0
            s["get_routes"] = time_get_routes("127.0.0.1", s["api"], token, a.get_repeat)
            if s["get_routes"]["routes"] != s["routes"]:
                raise RuntimeError(f"GET /api/routes lists {s['get_routes']['routes']} routes, expected {s['routes']}")
            check_routing(s, s["routes"])
            s["rss_reg_mb"], s["hwm_reg_mb"] = memory_mb(pid)
            log(
                f"{s['name']}: registered {s['routes']} routes in {secs:.2f} s "
                f"(proxy CPU {s['register_cpu_s']:.2f} s); GET /api/routes median "
                f"{s['get_routes']['median_ms']:.1f} ms; RSS {s['rss_reg_mb']:.1f} MB"
            )
        except Exception as e:  # noqa: BLE001 - a broken proxy must not stop the others
            fail(s, f"setup failed: {e}")
    for s in setups:
        if s["kind"] == "direct":
            try:
                check_routing(s, 1)
            except Exception as e:  # noqa: BLE001
                fail(s, f"backend check failed: {e}")

    # 2. warm-up (not recorded), then interleaved rounds
    for s in setups:
        if s["ok"]:
            try:
                run_wrk(s["url"], 2, 64, a.warmup)
            except Exception as e:  # noqa: BLE001
                fail(s, f"warm-up failed: {e}")
    loads = [(2, 64), (1, 1)]
    for rnd in range(1, a.rounds + 1):
        live = [s for s in setups if s["ok"]]
        k = (rnd - 1) % max(1, len(live))
        order = live[k:] + live[:k]  # rotate the order each round
        for t, c in loads:
            for s in order:
                if not s["ok"]:
                    continue
                if s["pid"] and not alive(s["pid"]):
                    fail(s, f"process {s['pid']} died during round {rnd}")
                    continue
                raw_path = os.path.join(raw, f"r{rnd}-c{c}-{s['name']}.txt")
                try:
                    r = run_wrk(s["url"], t, c, a.dur, raw_path, s["pid"])
                except Exception as e:  # noqa: BLE001
                    log(f"{s['name']} c{c} round {rnd}: wrk failed: {e}")
                    r = {"error": str(e)}
                r.update({"setup": s["name"], "round": rnd, "threads": t, "conns": c})
                res["runs"].append(r)
                if "rps" in r:
                    cpu = f", proxy CPU {r['proxy_cpu_pct']:.0f}%" if "proxy_cpu_pct" in r else ""
                    log(
                        f"round {rnd} -c{c} {s['name']}: {r['rps']:.0f} req/s p50 {r['p50_ms']:.3f} ms "
                        f"p99 {r['p99_ms']:.2f} ms{cpu} (load {r['loadavg']})"
                    )
    for s in setups:
        if s["pid"] and alive(s["pid"]):
            s["rss_end_mb"], s["hwm_end_mb"] = memory_mb(s["pid"])
    res["loadavg_end"] = loadavg()
    res["finished"] = datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")
    with open(os.path.join(d, "results.json"), "w") as f:
        json.dump(res, f, indent=1)
    log(f"wrote {os.path.join(d, 'results.json')}")


# ---------------------------------------------------------------- table


def _med(xs):
    xs = [x for x in xs if x is not None]
    return statistics.median(xs) if xs else None


def _f(x, fmt="{:,.0f}", none="–"):
    return none if x is None else fmt.format(x)


def _ms_fmt(x):
    if x is None:
        return "–"
    return f"{x:.3f}" if x < 1 else f"{x:.2f}" if x < 100 else f"{x:.0f}"


LABEL = {
    "direct": "nginx direct",
    "chp1": "CHP 5.3, 1 route",
    "chp10k": "CHP 5.3, {n} routes",
    "wh1": "wasmhub proxy, 1 route",
    "wh10k": "wasmhub proxy, {n} routes",
}


def summarize(res):
    by = {s["name"]: s for s in res["setups"]}
    cells = {}
    for s in res["setups"]:
        for c in (64, 1):
            runs = [r for r in res["runs"] if r["setup"] == s["name"] and r["conns"] == c and "rps" in r]
            if not runs:
                continue
            cells[(s["name"], c)] = {
                "n": len(runs),
                "failed": len([r for r in res["runs"] if r["setup"] == s["name"] and r["conns"] == c and "error" in r]),
                "rps": _med([r["rps"] for r in runs]),
                "rps_min": min(r["rps"] for r in runs),
                "rps_max": max(r["rps"] for r in runs),
                "p50": _med([r["p50_ms"] for r in runs]),
                "p99": _med([r["p99_ms"] for r in runs]),
                "cpu": _med([r.get("proxy_cpu_pct") for r in runs]),
                "rpc": _med([r.get("req_per_cpu_s") for r in runs]),
                "errors": sum(r["non2xx"] + r["socket_errors"] for r in runs),
            }
    return by, cells


def render(res):
    n = res["n_routes"]
    by, cells = summarize(res)
    # every usual setup gets rows, "not measured" if it never started
    have = {s["name"]: s for s in res["setups"]}
    res["setups"] = [have.get(k) or {"name": k, "kind": "direct" if k == "direct" else "proxy"} for k in LABEL] + [
        s for s in res["setups"] if s["name"] not in LABEL
    ]
    label = lambda name: LABEL.get(name, name).format(n=f"{n:,}")  # noqa: E731
    out = []
    out.append(
        f"Median of {res['rounds']} interleaved round(s) × {res['dur']} s per cell (range in brackets); "
        f"backend nginx returning a 19-byte 200; route shape `/user/uN` → nginx. "
        f"Proxy CPU % is of one core; \"req per CPU-s\" = requests served / proxy CPU seconds. "
        f"Load average {res['loadavg_start']} at start, {res['loadavg_end']} at end."
    )
    out.append("")
    out.append("| wrk | setup | req/s (min–max) | p50 ms | p99 ms | proxy CPU % | req per proxy CPU-s | non-2xx + socket errors |")
    out.append("|---|---|---|---|---|---|---|---|")
    for c, wrk in ((64, "-t2 -c64"), (1, "-t1 -c1")):
        for s in res["setups"]:
            x = cells.get((s["name"], c))
            if not x:
                out.append(f"| {wrk} | {label(s['name'])} | not measured | | | | | |")
                continue
            rng = f"{x['rps']:,.0f} ({x['rps_min']:,.0f}–{x['rps_max']:,.0f})" if x["n"] > 1 else f"{x['rps']:,.0f}"
            err = str(x["errors"]) + (f" ({x['failed']} wrk runs failed)" if x["failed"] else "")
            out.append(
                f"| {wrk} | {label(s['name'])} | {rng} | {_ms_fmt(x['p50'])} | {_ms_fmt(x['p99'])} | "
                f"{_f(x['cpu'])} | {_f(x['rpc'])} | {err} |"
            )
    out.append("")
    out.append(
        f"Routes registered with `POST /api/routes/user/uN` from {res['reg_conc']} concurrent keep-alive clients "
        f"(Python `http.client`; the client may be the bottleneck, so proxy CPU is shown too). "
        f"RSS = VmRSS, peak = VmHWM, from /proc/PID/status."
    )
    out.append("")
    out.append(
        "| setup | register routes: wall s (routes/s) | proxy CPU-s for it | GET /api/routes median (max) ms, size | "
        "RSS at start MB | RSS after registering MB | RSS after load MB | peak RSS MB |"
    )
    out.append("|---|---|---|---|---|---|---|---|")
    for s in res["setups"]:
        if s["kind"] == "direct":
            continue
        if "register_s" not in s:
            out.append(f"| {label(s['name'])} | not measured | | | | | | |")
            continue
        g = s.get("get_routes") or {}
        size = g.get("bytes", 0)
        size_s = f"{size / 1e6:.2f} MB" if size >= 1e6 else f"{size / 1e3:.1f} kB"
        out.append(
            f"| {label(s['name'])} | {s['register_s']:.2f} ({s['routes'] / s['register_s']:,.0f}/s) | "
            f"{s['register_cpu_s']:.2f} | {_ms_fmt(g.get('median_ms'))} ({_ms_fmt(g.get('max_ms'))}), {size_s} | "
            f"{_f(s.get('rss_start_mb'), '{:.1f}')} | {_f(s.get('rss_reg_mb'), '{:.1f}')} | "
            f"{_f(s.get('rss_end_mb'), '{:.1f}')} | {_f(s.get('hwm_end_mb') or s.get('hwm_reg_mb'), '{:.1f}')} |"
        )
    out.append("")

    # wasmhub / CHP ratios and the targets
    def cell(name, c, key):
        x = cells.get((name, c))
        return x[key] if x else None

    def mem(name, key):
        s = by.get(name)
        return s.get(key) if s else None

    def reg(name):
        s = by.get(name)
        return s.get("register_s") if s else None

    def getr(name):
        s = by.get(name)
        return (s.get("get_routes") or {}).get("median_ms") if s else None

    rows = [
        ("req/s, -c64", "10k", cell("chp10k", 64, "rps"), cell("wh10k", 64, "rps"), ">=", 3.0, "{:,.0f}"),
        ("req/s, -c64", "1", cell("chp1", 64, "rps"), cell("wh1", 64, "rps"), ">=", 3.0, "{:,.0f}"),
        ("p99 ms, -c64", "10k", cell("chp10k", 64, "p99"), cell("wh10k", 64, "p99"), "<=", 0.5, None),
        ("p99 ms, -c64", "1", cell("chp1", 64, "p99"), cell("wh1", 64, "p99"), "<=", 0.5, None),
        ("peak RSS MB", "10k", mem("chp10k", "hwm_end_mb"), mem("wh10k", "hwm_end_mb"), "<=", 1 / 3, "{:.1f}"),
        ("RSS after registering MB", "10k", mem("chp10k", "rss_reg_mb"), mem("wh10k", "rss_reg_mb"), "<=", 1 / 3, "{:.1f}"),
        ("req/s, -c1", "10k", cell("chp10k", 1, "rps"), cell("wh10k", 1, "rps"), None, None, "{:,.0f}"),
        ("p50 ms, -c1", "10k", cell("chp10k", 1, "p50"), cell("wh10k", 1, "p50"), None, None, None),
        ("p99 ms, -c1", "10k", cell("chp10k", 1, "p99"), cell("wh10k", 1, "p99"), None, None, None),
        ("req per proxy CPU-s, -c64", "10k", cell("chp10k", 64, "rpc"), cell("wh10k", 64, "rpc"), None, None, "{:,.0f}"),
        ("register routes, s", "10k", reg("chp10k"), reg("wh10k"), None, None, "{:.2f}"),
        ("GET /api/routes median ms", "10k", getr("chp10k"), getr("wh10k"), None, None, None),
    ]
    out.append("| metric | routes | CHP 5.3 | wasmhub | wasmhub / CHP | target | met |")
    out.append("|---|---|---|---|---|---|---|")
    for metric, routes, chp, wh, op, tgt, fmt in rows:
        routes = f"{n:,}" if routes == "10k" else routes
        fm = (lambda v: _f(v, fmt)) if fmt else _ms_fmt
        ratio = wh / chp if (wh is not None and chp) else None
        target = "–" if op is None else f"{'≥' if op == '>=' else '≤'} {tgt:g}×".replace("0.333333×", "1/3")
        if ratio is None:
            met = "not measured" if op else "–"
        elif op == ">=":
            met = "yes" if ratio >= tgt else "**no**"
        elif op == "<=":
            met = "yes" if ratio <= tgt else "**no**"
        else:
            met = "–"
        out.append(f"| {metric} | {routes} | {fm(chp)} | {fm(wh)} | {_f(ratio, '{:.2f}×')} | {target} | {met} |")
    notes = [f"- {label(s['name'])}: {s['note']}" for s in res["setups"] if s.get("note")]
    notes += [f"- {m}" for m in res.get("missing", [])]
    if notes:
        out.append("")
        out.append("Not measured / problems:")
        out.append("")
        out.extend(notes)
    return "\n".join(out) + "\n"


def cmd_table(a):
    with open(os.path.join(a.results, "results.json")) as f:
        res = json.load(f)
    missing = os.path.join(a.results, "missing.txt")
    if os.path.exists(missing):
        with open(missing) as f:
            res["missing"] = [line.strip() for line in f if line.strip()]
    table = render(res)
    with open(os.path.join(a.results, "table.md"), "w") as f:
        f.write(table)
    print(table, end="")
    if a.docs:
        meta = {}
        mp = os.path.join(a.results, "meta.txt")
        if os.path.exists(mp):
            with open(mp) as f:
                for line in f:
                    if "=" in line:
                        k, v = line.rstrip("\n").split("=", 1)
                        meta[k] = v
        os.makedirs(os.path.dirname(os.path.abspath(a.docs)), exist_ok=True)
        with open(a.docs, "w") as f:
            f.write("# `wasmhub proxy` vs configurable-http-proxy: HTTP benchmark\n\n")
            f.write(
                "<!-- Generated by tests/bench/proxy/run.sh --write-docs; rerun it rather than editing by hand. -->\n\n"
            )
            if not any(r["setup"].startswith("wh") and "rps" in r for r in res["runs"]):
                f.write("**`wasmhub proxy` was not measured in this run** (see the notes under the tables).\n\n")
            when = lambda t: t.replace("T", " ").replace("+00:00", "")  # noqa: E731
            f.write(f"Run {when(res['started'])} – {when(res['finished'])} UTC with:\n\n")
            f.write(f"```bash\n{a.command}\n```\n\n")
            f.write("Machine and versions:\n\n")
            for k in ("machine", "kernel", "wasmhub", "chp", "node", "nginx", "wrk", "extra_args"):
                if meta.get(k):
                    f.write(f"- {k}: {meta[k]}\n")
            f.write(
                "\nMethod: nginx (1 worker, `return 200`) on loopback is the backend. Each proxy is started with the "
                "same CHP flags (`--ip 127.0.0.1 --port P --api-ip 127.0.0.1 --api-port A --error-target "
                "http://127.0.0.1:NGINX/hub/error --log-level info`; wasmhub also gets `--routes-file` in a scratch "
                "dir), one instance with 1 route and one with 10,000 routes `/user/uN` → nginx. wrk hits "
                "`/user/u0/api/status` (1 route) or `/user/u<N/2>/api/status` (10,000 routes) after a warm-up; in each "
                "round every setup runs once at `-t2 -c64` and once at `-t1 -c1`, the order rotated per round. "
                "Proxy CPU comes from /proc/PID/stat around each wrk run, memory from /proc/PID/status. wrk, nginx "
                "and the proxies share the machine's cores, so absolute numbers depend on its load; compare rows "
                "from the same run, and prefer req per proxy CPU-s across runs.\n\n"
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
    deadline = time.monotonic() + a.timeout
    last = None
    while time.monotonic() < deadline:
        if a.pid and not alive(a.pid):
            sys.exit(f"process {a.pid} exited before {a.url} answered")
        try:
            req = urllib.request.Request(a.url)
            if a.token:
                req.add_header("Authorization", f"token {a.token}")
            status, _ = http_get(req, timeout=2)
            if status == a.status:
                return
            last = f"status {status}"
        except OSError as e:
            last = repr(e)
        time.sleep(0.2)
    sys.exit(f"{a.url} did not answer {a.status} within {a.timeout} s (last: {last})")


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)
    p = sub.add_parser("ports")
    p.add_argument("n", type=int)
    p.add_argument("--base", type=int, default=23900)
    p.set_defaults(fn=cmd_ports)
    p = sub.add_parser("wait-http")
    p.add_argument("url")
    p.add_argument("--token")
    p.add_argument("--pid", type=int)
    p.add_argument("--status", type=int, default=200)
    p.add_argument("--timeout", type=float, default=30)
    p.set_defaults(fn=cmd_wait_http)
    p = sub.add_parser("measure")
    p.add_argument("results")
    p.add_argument("--token", required=True)
    p.add_argument("--target", required=True, help="route target, the nginx URL")
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--dur", type=int, default=15)
    p.add_argument("--warmup", type=int, default=3)
    p.add_argument("--n-routes", type=int, default=10000)
    p.add_argument("--reg-conc", type=int, default=10)
    p.add_argument("--get-repeat", type=int, default=20)
    p.set_defaults(fn=cmd_measure)
    p = sub.add_parser("table")
    p.add_argument("results")
    p.add_argument("--docs", help="also write the docs page here")
    p.add_argument("--command", default="tests/bench/proxy/run.sh", help="command line recorded in the docs page")
    p.set_defaults(fn=cmd_table)
    a = ap.parse_args()
    a.fn(a)


if __name__ == "__main__":
    main()
