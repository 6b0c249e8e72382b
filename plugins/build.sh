#!/usr/bin/env bash
# Builds every plugin for wasm32-wasip2, one cargo invocation per hook (the SDK embeds one WIT world per hook
# feature, so plugins of different hooks cannot share a build), and copies the components into the folder given
# as the first argument, if any. The test build does the same from host/policy/test-plugins/build.rs.
set -euo pipefail
cd "$(dirname "$0")"
groups=(
  "wasmhub-default-auth example-keycloak-groups hostile-auth"
  "wasmhub-default-profiles example-profiles-by-group hostile-profiles"
  "wasmhub-default-pods example-gpu-pod hostile-pods"
  "wasmhub-default-cull example-gpu-cull hostile-cull wrong-version future-minor"
)
for group in "${groups[@]}"; do
  packages=()
  for package in $group; do packages+=(-p "$package"); done
  cargo build --release --target wasm32-wasip2 "${packages[@]}"
done
if [[ $# -gt 0 ]]; then
  mkdir -p "$1"
  cp target/wasm32-wasip2/release/*.wasm "$1"/
  echo "components copied to $1"
fi
