#!/usr/bin/env bash
# Brings wasmhub up on this machine with the embedded defaults: creates the Python environment with
# jupyterhub-singleuser and JupyterLab (once, in .wasmhub/ under the current directory), makes up the shared
# passwords unless they are set, builds wasmhub and runs `wasmhub serve` with deploy/local/wasmhub.yaml.
# Open http://127.0.0.1:8000/ and log in with any name and the printed password.
#
# Without root every server runs as your user (`shareHubUser` in the config). As root, each server runs as a system
# user of its own, created at first login: the Python environment then goes to /opt/wasmhub, where those users can
# run it, and the config is written to .wasmhub/wasmhub.yaml with `createSystemUsers` in place of `shareHubUser`.
set -euo pipefail
repository="$(cd "$(dirname "$0")/../.." && pwd)"
state=".wasmhub"
config="$repository/deploy/local/wasmhub.yaml"
venv="$state/singleuser-venv"
python="python3"
mkdir -p "$state/logs"
if [[ "$(id -u)" == 0 ]]; then
  venv="/opt/wasmhub/singleuser-venv"
  # An interpreter every user can run (pyenv's lives under root's home).
  [[ -x /usr/bin/python3 ]] && python="/usr/bin/python3"
  sed -e "s#^    shareHubUser: true#    createSystemUsers: true#" -e "s#pythonEnv: .*#pythonEnv: $venv#" "$config" \
    > "$state/wasmhub.yaml"
  config="$state/wasmhub.yaml"
fi
if [[ ! -x "$venv/bin/jupyterhub-singleuser" ]]; then
  echo "creating $venv with jupyterhub and jupyterlab (once)"
  mkdir -p "$(dirname "$venv")"
  "$python" -m venv "$venv"
  "$venv/bin/pip" install --quiet --disable-pip-version-check "jupyterhub==5.5.4" "jupyterlab==4.6.6"
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
exec "${CARGO_TARGET_DIR:-$repository/target}/release/wasmhub" serve --config "$config" "$@"
