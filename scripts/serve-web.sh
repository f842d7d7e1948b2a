#!/usr/bin/env bash
# Builds the browser page (scripts/build-web.sh) and serves it on http://127.0.0.1:${PORT:-8000}/
# (any static file server works; Python's maps .wasm to application/wasm, which browsers need).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/build-web.sh
port=${PORT:-8000}
echo "serve-web: open http://127.0.0.1:$port/ in a browser with WebGPU (Ctrl-C stops)"
exec python3 -m http.server --bind 127.0.0.1 --directory web/dist "$port"
