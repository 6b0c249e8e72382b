#!/usr/bin/env bash
# Hub restart side by side (not part of the test suite): Python JupyterHub 5 behind configurable-http-proxy and
# `wasmhub serve` behind `wasmhub proxy`, each proxy in its own process. A client loop makes logins, API calls and
# page loads through the proxy; the hub is killed (SIGKILL) and started again a second later. Prints, per hub, the
# requests made after the kill, how many failed, the longest wait and the time until a login works again; with
# --write-docs also writes the table (with this command and the date) to docs/bench/restart.md.
#
# Usage: tests/bench/restart/run.sh [--write-docs]
# Environment: WASMHUB_PEERS (where tests/peers/install.sh put venv-jh5 and chp) [~/.cache/wasmhub/peers];
#   WASMHUB_BIN [$CARGO_TARGET_DIR/release/wasmhub if built, else .../debug/wasmhub]
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
repo="$(cd "$here/../../.." && pwd)"
export WASMHUB_PEERS="${WASMHUB_PEERS:-$HOME/.cache/wasmhub/peers}"
target="${CARGO_TARGET_DIR:-$repo/target}"
if [[ -z "${WASMHUB_BIN:-}" ]]; then
  if [[ -x "$target/release/wasmhub" ]]; then WASMHUB_BIN="$target/release/wasmhub"; else WASMHUB_BIN="$target/debug/wasmhub"; fi
fi
export WASMHUB_BIN
[[ -x "$WASMHUB_BIN" ]] || { echo "no wasmhub binary at $WASMHUB_BIN: cargo build -p wasmhub-cli" >&2; exit 2; }
json="$("$WASMHUB_PEERS/venv-jh5/bin/python" "$here/restart.py")"
table="$(python3 - "$json" <<'PY'
import json, sys
rows = json.loads(sys.argv[1])
print("| hub | requests after the kill | failed | longest wait (s) | logins work again after (s) |")
print("|---|---|---|---|---|")
for row in rows:
    print(f"| {row['hub']} | {row['requests']} | {row['failed']} | {row['longest_wait_s']} | {row['logins_back_s']} |")
PY
)"
echo "$table"
if [[ "${1:-}" == "--write-docs" ]]; then
  binary_kind="$(basename "$(dirname "$WASMHUB_BIN")")"
  cat > "$repo/docs/bench/restart.md" <<DOC
# Hub restart, side by side

\`tests/bench/restart/run.sh --write-docs\`, $(date -u +%Y-%m-%d) on this machine ($(nproc) cores), wasmhub's $binary_kind build.
Each proxy runs in its own process (\`ConfigurableHTTPProxy.should_start = False\`, as z2jh runs them). A client loop
makes logins, API calls and page loads through the proxy, one after another; two seconds in, the hub gets SIGKILL and
is started again one second later with the same config. Counted from the kill: requests, failures (errors and 5xx),
the longest wait for one answer, and the time until a login works again. \`wasmhub proxy\` holds requests for the hub
while nothing accepts connections there (\`--default-target-hold\`, 30 s); CHP answers 503 at once.

$table

The same scenario with JupyterLab, a kernel WebSocket and a spawn in flight is a test:
\`tests/tests/hub_restart.rs\` (200 requests, no failure, the WebSocket survives, the spawn completes).
DOC
  echo "wrote docs/bench/restart.md" >&2
fi
