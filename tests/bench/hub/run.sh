#!/usr/bin/env bash
# Side-by-side hub benchmark (not part of the test suite): Python JupyterHub 5 (PyPI, with its default
# configurable-http-proxy) and `wasmhub serve`, in the same run on the same machine, each on a fresh SQLite file
# and each with a no-op spawner pointing every server at one shared nginx. Per hub: create 10,000 users, list them
# paginated, GET one user at concurrency 1 and 32, spawn 1,000 servers at concurrency 50, activity POSTs at
# concurrency 32, resident memory; with the hub's CPU and the machine's load. Prints a markdown table, and with
# --write-docs also writes it (with this command and the date) to docs/bench/hub.md.
#
# Usage: tests/bench/hub/run.sh [--write-docs] [--no-build] [--help]
# Environment (defaults in brackets):
#   ROUNDS [1] rounds; each runs both hubs one after the other, the order alternating per round
#   USERS [10000]  BATCH [100] names per POST /users  PAGE [200]  SPAWNS [1000]  SPAWN_CONC [50]
#   DUR [10] seconds per wrk phase (GET c=1, GET c=32, activity c=32)
#   HUBS ["jupyterhub wasmhub"] subset to run
#   WASMHUB_BIN  use this binary instead of building target/release/wasmhub (cargo build --release -p wasmhub-cli)
#   WASMHUB_PEERS [~/.cache/wasmhub/peers]  where tests/peers/install.sh put venv-jh5 and chp
#   BENCH_DIR   scratch/results dir [a new mktemp -d under /tmp]
# Everything listens on 127.0.0.1 only, and every process started here is stopped on exit, also on failure or
# Ctrl-C.
set -euo pipefail
exec </dev/null

here="$(cd "$(dirname "$0")" && pwd)"
repo="$(cd "$here/../../.." && pwd)"
helper="$here/bench.py"

write_docs=0 build=1
for arg in "$@"; do
  case "$arg" in
    --write-docs) write_docs=1 ;;
    --no-build) build=0 ;;
    -h|--help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
    *) echo "unknown argument: $arg (try --help)" >&2; exit 2 ;;
  esac
done

ROUNDS="${ROUNDS:-1}" USERS="${USERS:-10000}" BATCH="${BATCH:-100}" PAGE="${PAGE:-200}" SPAWNS="${SPAWNS:-1000}"
SPAWN_CONC="${SPAWN_CONC:-50}" DUR="${DUR:-10}" HUBS="${HUBS:-jupyterhub wasmhub}"
for v in ROUNDS USERS BATCH PAGE SPAWNS SPAWN_CONC DUR; do
  [[ "${!v}" =~ ^[1-9][0-9]*$ ]] || { echo "$v must be a positive integer" >&2; exit 2; }
done
[ "$SPAWNS" -le "$USERS" ] || { echo "SPAWNS must not exceed USERS" >&2; exit 2; }
cmdline="ROUNDS=$ROUNDS USERS=$USERS BATCH=$BATCH PAGE=$PAGE SPAWNS=$SPAWNS SPAWN_CONC=$SPAWN_CONC DUR=$DUR"
if [ "$HUBS" != "jupyterhub wasmhub" ]; then cmdline+=" HUBS=\"$HUBS\""; fi
if [ -n "${WASMHUB_BIN:-}" ]; then cmdline+=" WASMHUB_BIN=$WASMHUB_BIN"; fi
cmdline+=" tests/bench/hub/run.sh$(printf ' %s' "$@")"
cmdline="${cmdline% }"

say() { echo "[run $(date +%H:%M:%S)] $*" >&2; }
SCRATCH="${BENCH_DIR:-$(mktemp -d /tmp/wasmhub-hub-bench.XXXXXX)}"
mkdir -p "$SCRATCH"

# ---------------------------------------------------------------- process bookkeeping and cleanup
PIDS=()
ours() { [ "$(ps -o ppid= -p "$1" 2>/dev/null | tr -d ' ')" = "$$" ]; }
forget() { local p keep=(); for p in "${PIDS[@]}"; do [ "$p" = "$1" ] || keep+=("$p"); done; PIDS=("${keep[@]}"); }
# Stops the given PIDs (children of this script): TERM, up to 30 s (JupyterHub stops its servers and CHP), then
# KILL for them and whatever children they still have.
stop() {
  local pid mine=() kids=() i any
  for pid in "$@"; do ours "$pid" && mine+=("$pid"); done
  [ "${#mine[@]}" = 0 ] && return 0
  for pid in "${mine[@]}"; do kids+=($(pgrep -P "$pid" 2>/dev/null || true)); done
  for pid in "${mine[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
  for i in $(seq 300); do
    any=0
    for pid in "${mine[@]}"; do kill -0 "$pid" 2>/dev/null && any=1; done
    [ "$any" = 0 ] && break
    sleep 0.1
  done
  for pid in "${mine[@]}" "${kids[@]}"; do kill -KILL "$pid" 2>/dev/null || true; done
  for pid in "${mine[@]}"; do wait "$pid" 2>/dev/null || true; done
}
cleanup() { stop "${PIDS[@]}"; }
run_waited() {
  local pid rc=0
  "$@" &
  pid=$!
  PIDS+=("$pid")
  wait "$pid" || rc=$?
  forget "$pid"
  return "$rc"
}
trap cleanup EXIT
trap 'say "interrupted"; exit 130' INT TERM

# ---------------------------------------------------------------- tools and peers
if [ "$(id -u)" = 0 ]; then SUDO=""; else SUDO="sudo"; fi
nginx_bin="$(command -v nginx || true)"; [ -z "$nginx_bin" ] && [ -x /usr/sbin/nginx ] && nginx_bin=/usr/sbin/nginx
if [ -z "$nginx_bin" ] || ! command -v wrk >/dev/null; then
  say "installing nginx and wrk with apt-get"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq nginx-light wrk >/dev/null \
    || DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq nginx wrk >/dev/null
  nginx_bin="$(command -v nginx || echo /usr/sbin/nginx)"
fi
command -v python3 >/dev/null || { echo "python3 is required" >&2; exit 1; }

want() { [[ " $HUBS " == *" $1 "* ]]; }
peers="${WASMHUB_PEERS:-$HOME/.cache/wasmhub/peers}"
venv="$peers/venv-jh5"
chp_js="$peers/chp/node_modules/configurable-http-proxy/bin/configurable-http-proxy"
if want jupyterhub && { [ ! -x "$venv/bin/jupyterhub" ] || [ ! -f "$chp_js" ]; }; then
  say "installing the peers (tests/peers/install.sh; log in $SCRATCH/peers-install.log)"
  bash "$repo/tests/peers/install.sh" >"$SCRATCH/peers-install.log" 2>&1 || true
  [ -x "$venv/bin/jupyterhub" ] && [ -f "$chp_js" ] && command -v node >/dev/null \
    || { echo "JupyterHub or CHP missing ($venv, $chp_js); see $SCRATCH/peers-install.log" >&2; exit 1; }
fi

wasmhub_bin="${WASMHUB_BIN:-$repo/target/release/wasmhub}"
if want wasmhub; then
  if [ -z "${WASMHUB_BIN:-}" ] && [ "$build" = 1 ]; then
    say "building wasmhub (cargo build --release -p wasmhub-cli; log in $SCRATCH/build.log)"
    run_waited cargo build --manifest-path "$repo/Cargo.toml" --release -p wasmhub-cli >"$SCRATCH/build.log" 2>&1 \
      || { echo "cargo build failed, see $SCRATCH/build.log" >&2; exit 1; }
  fi
  [ -x "$wasmhub_bin" ] || { echo "wasmhub binary $wasmhub_bin not found" >&2; exit 1; }
fi

# ---------------------------------------------------------------- the shared backend: nginx
read -r P_NGINX P_JH P_JH_API P_JH_HUB P_WH P_WH_API P_WH_HUB < <(python3 "$helper" ports 7)
TOKEN="$(od -An -N16 -tx1 /dev/urandom | tr -d ' \n')"
BACKEND="http://127.0.0.1:$P_NGINX"
jh_version="$("$venv/bin/python" -c 'import jupyterhub; print(jupyterhub.__version__)' 2>/dev/null || echo 5)"
ngx="$SCRATCH/nginx"
mkdir -p "$ngx/tmp"
cat > "$ngx/nginx.conf" <<EOF
# Generated by tests/bench/hub/run.sh: every no-op server is this nginx.
daemon off;
worker_processes 1;
pid $ngx/nginx.pid;
error_log $ngx/error.log warn;
events { worker_connections 4096; }
http {
  access_log off;
  keepalive_requests 1000000;
  client_body_temp_path $ngx/tmp/body;
  proxy_temp_path $ngx/tmp/proxy;
  fastcgi_temp_path $ngx/tmp/fastcgi;
  uwsgi_temp_path $ngx/tmp/uwsgi;
  scgi_temp_path $ngx/tmp/scgi;
  server {
    listen 127.0.0.1:$P_NGINX;
    location / {
      default_type application/json;
      add_header X-JupyterHub-Version $jh_version always;
      return 200 "{}";
    }
  }
}
EOF
"$nginx_bin" -p "$ngx/" -e "$ngx/error.log" -c "$ngx/nginx.conf" >"$ngx/stdout.log" 2>&1 &
NGINX_PID=$!
PIDS+=("$NGINX_PID")
python3 "$helper" wait-http "$BACKEND/" --pid "$NGINX_PID" --timeout 15 >/dev/null

# ---------------------------------------------------------------- facts for the docs page
{
  echo "machine=$(nproc) CPUs, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ *//'), $(awk '/MemTotal/{printf "%.0f GB RAM", $2/1048576}' /proc/meminfo)"
  echo "kernel=$(uname -sr)"
  echo "loadavg_before=$(cut -d' ' -f1-3 /proc/loadavg) (1, 5, 15 min)"
  echo "started=$(date -u '+%Y-%m-%d %H:%M:%S')"
  echo "users=$USERS"; echo "batch=$BATCH"; echo "page=$PAGE"; echo "spawns=$SPAWNS"; echo "spawn_conc=$SPAWN_CONC"
  if want jupyterhub; then
    echo "jupyterhub=$jh_version ($("$venv/bin/python" -c 'import sqlalchemy, tornado; print(f"SQLAlchemy {sqlalchemy.__version__}, tornado {tornado.version}")'))"
    echo "python=$("$venv/bin/python" -V 2>&1)"
    echo "sqlite=$("$venv/bin/python" -c 'import sqlite3; print(sqlite3.sqlite_version)') (Python's)"
    echo "chp=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["version"])' "$(dirname "$chp_js")/../package.json")"
    echo "node=$(node -v)"
  fi
  if want wasmhub; then
    rev="$(git -C "$repo" rev-parse --short HEAD 2>/dev/null || echo 'no commit')"
    dirty="$(git -C "$repo" status --porcelain 2>/dev/null | head -1)"
    echo "wasmhub=$wasmhub_bin (repo at $rev${dirty:+, uncommitted changes}; release build)"
  fi
  echo "nginx=$("$nginx_bin" -v 2>&1 | sed 's/.*version: //')"
  echo "wrk=$(wrk -v 2>&1 | head -1 | awk '{print $2}')"
} > "$SCRATCH/meta.txt"

# ---------------------------------------------------------------- one hub, one round
measure_args=(--token "$TOKEN" --backend-pid "$NGINX_PID" --users "$USERS" --batch "$BATCH" --page "$PAGE"
              --spawns "$SPAWNS" --spawn-conc "$SPAWN_CONC" --dur "$DUR")

run_jupyterhub() { # round
  local dir="$SCRATCH/jupyterhub-$1" pid chp t0 cold
  mkdir -p "$dir"
  cat > "$dir/jupyterhub_config.py" <<EOF
# Generated by tests/bench/hub/run.sh.
from jupyterhub.spawner import Spawner


class NoopSpawner(Spawner):
    """For the benchmark: starts nothing; every server is the shared nginx, which answers every path."""

    async def start(self):
        return "$BACKEND"

    async def poll(self):
        return None

    async def stop(self, now=False):
        pass


c = get_config()  # noqa
c.JupyterHub.ip = "127.0.0.1"
c.JupyterHub.port = $P_JH
c.JupyterHub.hub_ip = "127.0.0.1"
c.JupyterHub.hub_port = $P_JH_HUB
c.ConfigurableHTTPProxy.api_url = "http://127.0.0.1:$P_JH_API"
c.ConfigurableHTTPProxy.command = ["node", "$chp_js"]
c.ConfigurableHTTPProxy.pid_file = "$dir/proxy.pid"
c.JupyterHub.db_url = "sqlite:///$dir/jupyterhub.sqlite"
c.JupyterHub.cookie_secret_file = "$dir/cookie_secret"
c.JupyterHub.authenticator_class = "dummy"
c.Authenticator.allow_all = True
c.JupyterHub.services = [{"name": "bench", "api_token": "$TOKEN"}]
c.JupyterHub.load_roles = [{"name": "admin", "services": ["bench"]}]
c.JupyterHub.spawner_class = NoopSpawner
c.JupyterHub.concurrent_spawn_limit = 100
c.JupyterHub.log_level = "INFO"
EOF
  t0="$(date +%s.%N)"
  (cd "$dir" && exec "$venv/bin/jupyterhub" -f "$dir/jupyterhub_config.py") >"$dir/hub.log" 2>&1 &
  pid=$!
  PIDS+=("$pid")
  cold="$(python3 "$helper" wait-http "http://127.0.0.1:$P_JH/hub/api/" --pid "$pid" --since "$t0" --timeout 60)"
  chp="$(pgrep -P "$pid" -f configurable-http-proxy | head -1)"
  say "jupyterhub up in ${cold} s (hub pid $pid, CHP pid $chp)"
  run_waited python3 "$helper" measure "$SCRATCH/result-$1-jupyterhub.json" --hub jupyterhub \
    --label "JupyterHub $jh_version + CHP" --port "$P_JH" --hub-pid "$pid" --proxy-pid "$chp" \
    --scratch "$dir" --cold-start "$cold" "${measure_args[@]}" || say "jupyterhub measure failed"
  stop "$pid"
  forget "$pid"
}

run_wasmhub() { # round
  local dir="$SCRATCH/wasmhub-$1" pid t0 cold
  mkdir -p "$dir"
  cat > "$dir/wasmhub.yaml" <<EOF
# Generated by tests/bench/hub/run.sh.
hub:
  db:
    url: "sqlite://$dir/hub.sqlite"
  concurrentSpawnLimit: 100
  services:
    bench:
      apiToken: "$TOKEN"
      admin: true
  config:
    JupyterHub:
      authenticator_class: dummy
    Authenticator:
      allow_all: true
cull:
  enabled: false
wasmhub:
  spawner: noop
  noop:
    url: "$BACKEND"
  listen:
    proxy: "127.0.0.1:$P_WH"
    proxyApi: "127.0.0.1:$P_WH_API"
    hub: "127.0.0.1:$P_WH_HUB"
EOF
  t0="$(date +%s.%N)"
  (cd "$dir" && exec "$wasmhub_bin" serve --config "$dir/wasmhub.yaml" --log-level info) >"$dir/hub.log" 2>&1 &
  pid=$!
  PIDS+=("$pid")
  cold="$(python3 "$helper" wait-http "http://127.0.0.1:$P_WH/hub/api/" --pid "$pid" --since "$t0" --timeout 60)"
  say "wasmhub up in ${cold} s (pid $pid)"
  run_waited python3 "$helper" measure "$SCRATCH/result-$1-wasmhub.json" --hub wasmhub --label "wasmhub" \
    --port "$P_WH" --hub-pid "$pid" --scratch "$dir" --cold-start "$cold" "${measure_args[@]}" \
    || say "wasmhub measure failed"
  stop "$pid"
  forget "$pid"
}

say "results in $SCRATCH; load average $(cut -d' ' -f1-3 /proc/loadavg)"
order=()
for round in $(seq "$ROUNDS"); do
  if [ $((round % 2)) = 1 ]; then hubs="jupyterhub wasmhub"; else hubs="wasmhub jupyterhub"; fi
  for h in $hubs; do
    want "$h" || continue
    order+=("$h")
    say "round $round: $h"
    "run_$h" "$round"
  done
done
{
  echo "order=${order[*]}"
  echo "finished=$(date -u '+%Y-%m-%d %H:%M:%S')"
  echo "loadavg_after=$(cut -d' ' -f1-3 /proc/loadavg) (1, 5, 15 min)"
} >> "$SCRATCH/meta.txt"

table_args=()
[ "$write_docs" = 1 ] && table_args=(--docs "$repo/docs/bench/hub.md" --command "$cmdline")
python3 "$helper" table "$SCRATCH" "${table_args[@]}"
say "logs, wrk output and result-*.json are in $SCRATCH"
