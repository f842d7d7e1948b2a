#!/usr/bin/env bash
# Builds the browser page into web/dist/: gradsift compiled to wasm (the web/ crate) with the
# `web` profile, its JS glue from wasm-bindgen-cli at exactly the version of the wasm-bindgen
# crate in Cargo.lock, and the static files of web/www/. Serve web/dist/ with any static file
# server, e.g. scripts/serve-web.sh. It installs nothing: the wasm32 target and wasm-bindgen-cli
# must be there (docs/development.md, Set-up, says how).
set -euo pipefail
cd "$(dirname "$0")/.."
version=$(awk '/^name = "wasm-bindgen"$/ { getline; gsub(/version = |"/, ""); print }' Cargo.lock)
if [ ! -d "$(rustc --print sysroot)/lib/rustlib/wasm32-unknown-unknown" ]; then
  echo "build-web: the toolchain has no wasm32-unknown-unknown target (docs/development.md, Set-up)" >&2
  exit 1
fi
if [ "$(wasm-bindgen --version 2>/dev/null)" != "wasm-bindgen $version" ]; then
  echo "build-web: wasm-bindgen $version is needed, found $(wasm-bindgen --version 2>/dev/null || echo none) (docs/development.md, Set-up)" >&2
  exit 1
fi
cargo build -p gradsift-web --target wasm32-unknown-unknown --profile web
target=$(cargo metadata --no-deps --format-version 1 | grep -o '"target_directory":"[^"]*"' | cut -d'"' -f4)
out=web/dist
rm -rf "$out.tmp"
mkdir -p "$out.tmp/pkg"
wasm-bindgen --target web --no-typescript --remove-name-section --remove-producers-section --out-dir "$out.tmp/pkg" \
  "$target/wasm32-unknown-unknown/web/gradsift_web.wasm"
cp web/www/* "$out.tmp/"
rm -rf "$out"
mv "$out.tmp" "$out"
echo "build-web: $out/ ($(du -sh "$out/pkg/gradsift_web_bg.wasm" | cut -f1) of wasm, model and data included)"
