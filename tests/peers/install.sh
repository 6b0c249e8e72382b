#!/usr/bin/env bash
#! Installs the real peers the tests talk to into $WASMHUB_PEERS (default ~/.cache/wasmhub/peers).
#! Idempotent: each peer is rebuilt only when its pinned requirement file changes.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
peers="${WASMHUB_PEERS:-$HOME/.cache/wasmhub/peers}"
mkdir -p "$peers"

# The TLS system test makes certificates with openssl and talks HTTPS with curl.
for tool in openssl curl; do
  command -v "$tool" >/dev/null || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$tool"; }
done

stamp_ok() { [ -f "$1/.stamp" ] && [ "$(cat "$1/.stamp")" = "$2" ]; }

# The page tests drive Debian's Chromium with playwright-core (which must never download a browser of its own).
if ! command -v chromium >/dev/null; then
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium
fi
browser_hash="$(cat "$here/../browser/package.json" "$here/../browser/package-lock.json" | sha256sum | cut -c1-16)"
if ! stamp_ok "$peers/browser" "$browser_hash"; then
  rm -rf "$peers/browser" && mkdir -p "$peers/browser"
  cp "$here/../browser/package.json" "$here/../browser/package-lock.json" "$peers/browser/"
  (cd "$peers/browser" && PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1 npm ci --no-audit --no-fund --loglevel=error)
  echo "$browser_hash" > "$peers/browser/.stamp"
fi

# configurable-http-proxy 5.3 from npm, pinned by the committed lockfile.
chp_hash="$(cat "$here/package.json" "$here/package-lock.json" | sha256sum | cut -c1-16)"
if ! stamp_ok "$peers/chp" "$chp_hash"; then
  rm -rf "$peers/chp" && mkdir -p "$peers/chp"
  cp "$here/package.json" "$here/package-lock.json" "$peers/chp/"
  (cd "$peers/chp" && npm ci --no-audit --no-fund --loglevel=error)
  echo "$chp_hash" > "$peers/chp/.stamp"
fi

# Python JupyterHub 5.x (with JupyterLab and the idle culler) and 6.x (with JupyterLab), one venv each.
# Servers run as system users of their own (as root, the tests create them), so the venvs are made from an
# interpreter every user can run: Debian's, not one under root's home such as pyenv's.
python="/usr/bin/python3"
[[ -x "$python" ]] || python="$(command -v python3)"
# Debian splits venv's pip bootstrap into python3-venv.
"$python" -c 'import ensurepip' 2>/dev/null || {
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq python3-venv
}
for req in "$here"/requirements-*.txt; do
  name="venv-$(basename "$req" .txt | sed 's/^requirements-//')"
  hash="$( (cat "$req"; echo "$python") | sha256sum | cut -c1-16)"
  if ! stamp_ok "$peers/$name" "$hash"; then
    rm -rf "$peers/$name"
    "$python" -m venv "$peers/$name"
    "$peers/$name/bin/pip" install --quiet --disable-pip-version-check -r "$req"
    echo "$hash" > "$peers/$name/.stamp"
  fi
done
echo "peers ready in $peers"
