#!/usr/bin/env bash
# Side-by-side HTTP benchmark (not part of the test suite): wrk against an nginx backend directly, through
# configurable-http-proxy 5.3 and through `wasmhub proxy`, each proxy with 1 route and with 10,000 routes,
# at -c64 and -c1. Reports req/s, p50/p99, proxy CPU, RSS and the time to register the routes; prints a
# markdown table, and with --write-docs also writes it (with this command and the date) to docs/bench/proxy.md.
#
# Usage: tests/bench/proxy/run.sh [--write-docs] [--no-build] [--help]
# Environment (defaults in brackets):
#   ROUNDS [3]  DUR [15] seconds per wrk run  WARMUP [3] seconds per setup  N_ROUTES [10000]  REG_CONC [10]
#   WASMHUB_BIN  use this binary instead of building target/release/wasmhub (cargo build --release -p wasmhub-cli)
#   SETUPS ["direct chp1 chp10k wh1 wh10k"]  subset to run
#   PROXY_EXTRA_ARGS  extra flags given to both proxies (word-split)
#   BENCH_DIR   scratch/results dir [a new mktemp -d under /tmp]
# Setups that cannot run (wasmhub binary missing, fails to build, to start or to route) are skipped and
# listed under the table; the other setups still run. Everything listens on 127.0.0.1 only, and every
# process started here is stopped on exit, also on failure or Ctrl-C.
set -euo pipefail
# Nothing here reads input. Keep the children (node, nginx, wrk) off the caller's stdin: without this, a
# run stopped with SIGTERM left the calling shell unable to read its own (piped) stdin.
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

ROUNDS="${ROUNDS:-3}" DUR="${DUR:-15}" WARMUP="${WARMUP:-3}" N_ROUTES="${N_ROUTES:-10000}" REG_CONC="${REG_CONC:-10}"
SETUPS="${SETUPS:-direct chp1 chp10k wh1 wh10k}"
PROXY_EXTRA_ARGS="${PROXY_EXTRA_ARGS:-}"
for v in ROUNDS DUR WARMUP N_ROUTES REG_CONC; do
  [[ "${!v}" =~ ^[1-9][0-9]*$ ]] || { echo "$v must be a positive integer" >&2; exit 2; }
done
# The exact command, with the effective settings, for the docs page.
cmdline="ROUNDS=$ROUNDS DUR=$DUR WARMUP=$WARMUP N_ROUTES=$N_ROUTES REG_CONC=$REG_CONC"
if [ "$SETUPS" != "direct chp1 chp10k wh1 wh10k" ]; then cmdline+=" SETUPS=\"$SETUPS\""; fi
if [ -n "$PROXY_EXTRA_ARGS" ]; then cmdline+=" PROXY_EXTRA_ARGS=\"$PROXY_EXTRA_ARGS\""; fi
if [ -n "${WASMHUB_BIN:-}" ]; then cmdline+=" WASMHUB_BIN=$WASMHUB_BIN"; fi
cmdline+=" tests/bench/proxy/run.sh$(printf ' %s' "$@")"
cmdline="${cmdline% }"

want() { [[ " $SETUPS " == *" $1 "* ]]; }
drop() { local w keep=(); for w in $SETUPS; do [[ " $* " == *" $w "* ]] || keep+=("$w"); done; SETUPS="${keep[*]}"; }
say() { echo "[run $(date +%H:%M:%S)] $*" >&2; }

SCRATCH="${BENCH_DIR:-$(mktemp -d /tmp/wasmhub-proxy-bench.XXXXXX)}"
mkdir -p "$SCRATCH"
: > "$SCRATCH/missing.txt"
missing() { say "SKIP: $*"; echo "$*" >> "$SCRATCH/missing.txt"; }

# ---------------------------------------------------------------- process bookkeeping and cleanup
PIDS=()
# True if PID $1 is still a child of this script (so never signal a reused PID).
ours() { [ "$(ps -o ppid= -p "$1" 2>/dev/null | tr -d ' ')" = "$$" ]; }
forget() { local p keep=(); for p in "${PIDS[@]}"; do [ "$p" = "$1" ] || keep+=("$p"); done; PIDS=("${keep[@]}"); }
# Stops the given PIDs (children of this script) and their children: TERM, up to 5 s, then KILL.
stop() {
  local pid mine=() kids=() i any
  for pid in "$@"; do ours "$pid" && mine+=("$pid"); done
  [ "${#mine[@]}" = 0 ] && return 0
  for pid in "${mine[@]}"; do kids+=($(pgrep -P "$pid" 2>/dev/null || true)); done
  for pid in "${mine[@]}" "${kids[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
  for i in $(seq 50); do
    any=0
    for pid in "${mine[@]}" "${kids[@]}"; do kill -0 "$pid" 2>/dev/null && any=1; done
    [ "$any" = 0 ] && break
    sleep 0.1
  done
  for pid in "${mine[@]}" "${kids[@]}"; do kill -KILL "$pid" 2>/dev/null || true; done
  for pid in "${mine[@]}"; do wait "$pid" 2>/dev/null || true; done
}
cleanup() { stop "${PIDS[@]}"; }
# Runs a long step in the background and waits, so that a signal to this script is handled at once.
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

# ---------------------------------------------------------------- tools
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

peers="${WASMHUB_PEERS:-$HOME/.cache/wasmhub/peers}"
chp_js="$peers/chp/node_modules/configurable-http-proxy/bin/configurable-http-proxy"
if want chp1 || want chp10k; then
  if ! bash "$repo/tests/peers/install.sh" >"$SCRATCH/peers-install.log" 2>&1; then
    say "tests/peers/install.sh failed (see $SCRATCH/peers-install.log)"
  fi
  if [ ! -f "$chp_js" ] || ! command -v node >/dev/null; then
    missing "CHP: not installed ($chp_js) or node missing; see $SCRATCH/peers-install.log"
    drop chp1 chp10k
  fi
fi

wasmhub_bin="${WASMHUB_BIN:-$repo/target/release/wasmhub}"
if want wh1 || want wh10k; then
  if [ -z "${WASMHUB_BIN:-}" ] && [ "$build" = 1 ]; then
    say "building wasmhub (cargo build --release -p wasmhub-cli; log in $SCRATCH/build.log)"
    if ! run_waited cargo build --manifest-path "$repo/Cargo.toml" --release -p wasmhub-cli >"$SCRATCH/build.log" 2>&1; then
      missing "wasmhub: cargo build --release -p wasmhub-cli failed (see $SCRATCH/build.log)"
      wasmhub_bin=""
    fi
  fi
  if [ -n "$wasmhub_bin" ] && [ ! -x "$wasmhub_bin" ]; then
    missing "wasmhub: binary $wasmhub_bin not found or not executable"
    wasmhub_bin=""
  fi
  [ -z "$wasmhub_bin" ] && drop wh1 wh10k
fi

# ---------------------------------------------------------------- ports, nginx
read -r P_NGINX P_CHP1 A_CHP1 P_CHP10K A_CHP10K P_WH1 A_WH1 P_WH10K A_WH10K < <(python3 "$helper" ports 9)
TOKEN="bench-$(od -An -N8 -tx1 /dev/urandom | tr -d ' \n')"
BACKEND="http://127.0.0.1:$P_NGINX"

ngx="$SCRATCH/nginx"
mkdir -p "$ngx/tmp"
cat > "$ngx/nginx.conf" <<EOF
# Generated by tests/bench/proxy/run.sh: the benchmark backend.
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
    location / { default_type text/plain; return 200 "hello from backend\n"; }
  }
}
EOF
"$nginx_bin" -p "$ngx/" -e "$ngx/error.log" -c "$ngx/nginx.conf" >"$ngx/stdout.log" 2>&1 &
PIDS+=($!)
if ! python3 "$helper" wait-http "$BACKEND/" --pid "$!" --timeout 15; then
  cat "$ngx/error.log" "$ngx/stdout.log" >&2 || true
  exit 1
fi

# ---------------------------------------------------------------- proxies
# setups.tsv: name kind pid proxy_port api_port routes user-in-wrk-url
: > "$SCRATCH/setups.tsv"
if want direct; then echo "direct direct - $P_NGINX - 0 u$((N_ROUTES / 2))" >> "$SCRATCH/setups.tsv"; fi

start_proxy() { # name kind port api_port routes
  local name=$1 kind=$2 port=$3 api=$4 routes=$5 pid
  local args=(--ip 127.0.0.1 --port "$port" --api-ip 127.0.0.1 --api-port "$api"
              --error-target "$BACKEND/hub/error" --log-level info)
  # shellcheck disable=SC2206
  args+=($PROXY_EXTRA_ARGS)
  if [ "$kind" = chp ]; then
    CONFIGPROXY_AUTH_TOKEN="$TOKEN" node "$chp_js" "${args[@]}" >"$SCRATCH/$name.log" 2>&1 &
  else
    mkdir -p "$SCRATCH/$name"
    CONFIGPROXY_AUTH_TOKEN="$TOKEN" "$wasmhub_bin" proxy "${args[@]}" --routes-file "$SCRATCH/$name/routes.json" \
      >"$SCRATCH/$name.log" 2>&1 &
  fi
  pid=$!
  PIDS+=("$pid")
  if python3 "$helper" wait-http "http://127.0.0.1:$api/api/routes" --token "$TOKEN" --pid "$pid" --timeout 30 \
       2>"$SCRATCH/$name.wait"; then
    local user=u0; [ "$routes" -gt 1 ] && user="u$((routes / 2))"
    echo "$name $kind $pid $port $api $routes $user" >> "$SCRATCH/setups.tsv"
    say "$name started (pid $pid, proxy :$port, api :$api)"
  else
    missing "$name: did not start: $(tail -c 300 "$SCRATCH/$name.wait"); log tail: $(tail -n 3 "$SCRATCH/$name.log" 2>/dev/null | tr '\n' ' ' | cut -c1-400)"
    stop "$pid"
    forget "$pid"
  fi
}
want chp1   && start_proxy chp1   chp "$P_CHP1"   "$A_CHP1"   1
want chp10k && start_proxy chp10k chp "$P_CHP10K" "$A_CHP10K" "$N_ROUTES"
want wh1    && start_proxy wh1    wh  "$P_WH1"    "$A_WH1"    1
want wh10k  && start_proxy wh10k  wh  "$P_WH10K"  "$A_WH10K"  "$N_ROUTES"

# ---------------------------------------------------------------- facts for the docs page
{
  echo "machine=$(nproc) CPUs, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ *//'), $(awk '/MemTotal/{printf "%.0f GB RAM", $2/1048576}' /proc/meminfo)"
  echo "kernel=$(uname -sr)"
  echo "nginx=$("$nginx_bin" -v 2>&1 | sed 's/.*version: //')"
  echo "wrk=$(wrk -v 2>&1 | head -1 | awk '{print $2}')"
  if [ -f "$chp_js" ]; then
    echo "chp=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["version"])' "$(dirname "$chp_js")/../package.json" 2>/dev/null)"
    echo "node=$(node -v 2>/dev/null)"
  fi
  if [ -n "$wasmhub_bin" ]; then
    rev="$(git -C "$repo" rev-parse --short HEAD 2>/dev/null || echo 'no commit')"
    dirty="$(git -C "$repo" status --porcelain 2>/dev/null | head -1)"
    echo "wasmhub=$wasmhub_bin (repo at $rev${dirty:+, uncommitted changes})"
  fi
  if [ -n "$PROXY_EXTRA_ARGS" ]; then echo "extra_args=$PROXY_EXTRA_ARGS"; fi
} > "$SCRATCH/meta.txt"

# ---------------------------------------------------------------- measure and report
say "results in $SCRATCH; $ROUNDS round(s) x $DUR s; setups: $(cut -d' ' -f1 "$SCRATCH/setups.tsv" | tr '\n' ' ')"
run_waited python3 "$helper" measure "$SCRATCH" --token "$TOKEN" --target "$BACKEND" --rounds "$ROUNDS" --dur "$DUR" \
  --warmup "$WARMUP" --n-routes "$N_ROUTES" --reg-conc "$REG_CONC"
table_args=()
[ "$write_docs" = 1 ] && table_args=(--docs "$repo/docs/bench/proxy.md" --command "$cmdline")
python3 "$helper" table "$SCRATCH" "${table_args[@]}"
say "raw wrk output, logs and results.json are in $SCRATCH"
