#!/usr/bin/env bash
# Brings wasmhub up on this machine with the embedded defaults: creates the Python environment with
# jupyterhub-singleuser and JupyterLab (once, in .wasmhub/ under the current directory), makes up the shared
# passwords unless they are set, builds wasmhub and runs `wasmhub serve` with deploy/local/wasmhub.yaml.
# Open http://127.0.0.1:8000/ and log in with any name and the printed password.
set -euo pipefail
repository="$(cd "$(dirname "$0")/../.." && pwd)"
state=".wasmhub"
mkdir -p "$state/logs"
if [[ ! -x "$state/singleuser-venv/bin/jupyterhub-singleuser" ]]; then
  echo "creating $state/singleuser-venv with jupyterhub and jupyterlab (once)"
  python3 -m venv "$state/singleuser-venv"
  "$state/singleuser-venv/bin/pip" install --quiet --disable-pip-version-check "jupyterhub==5.5.4" "jupyterlab==4.6.6"
fi
random() { python3 -c "import secrets; print(secrets.token_urlsafe($1))"; }
if [[ -z "${WASMHUB_USER_PASSWORD:-}" ]]; then
  WASMHUB_USER_PASSWORD="$(random 12)"
  echo "user password (any user name): $WASMHUB_USER_PASSWORD"
fi
if [[ -z "${WASMHUB_ADMIN_PASSWORD:-}" ]]; then
  WASMHUB_ADMIN_PASSWORD="$(random 32)"
  echo "admin password (user name 'admin'): $WASMHUB_ADMIN_PASSWORD"
fi
export WASMHUB_USER_PASSWORD WASMHUB_ADMIN_PASSWORD
cargo build --release --manifest-path "$repository/Cargo.toml" -p wasmhub-cli
exec "${CARGO_TARGET_DIR:-$repository/target}/release/wasmhub" serve --config "$repository/deploy/local/wasmhub.yaml" "$@"
