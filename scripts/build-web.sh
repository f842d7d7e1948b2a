#!/usr/bin/env bash
# Builds the browser page into web/dist/: gradsift compiled to wasm (the web/ crate), its JS
# glue from wasm-bindgen-cli at exactly the version of the wasm-bindgen crate in Cargo.lock
# (installed from crates.io if missing), and the static files of web/www/. Serve web/dist/ with
# any static file server, e.g. scripts/serve-web.sh.
set -euo pipefail
cd "$(dirname "$0")/.."
version=$(awk '/^name = "wasm-bindgen"$/ { getline; gsub(/version = |"/, ""); print }' Cargo.lock)
if ! rustup target list --installed 2>/dev/null | grep -qx wasm32-unknown-unknown; then
  rustup target add wasm32-unknown-unknown
fi
if [ "$(wasm-bindgen --version 2>/dev/null)" != "wasm-bindgen $version" ]; then
  # Only the wasm-bindgen binary, and without the TLS stack (rustls, ring) that only its headless
  # test runner's web requests use.
  cargo install wasm-bindgen-cli --version "$version" --no-default-features --bin wasm-bindgen
fi
cargo build -p gradsift-web --target wasm32-unknown-unknown --release
out=web/dist
rm -rf "$out.tmp"
mkdir -p "$out.tmp/pkg"
wasm-bindgen --target web --no-typescript --remove-name-section --remove-producers-section --out-dir "$out.tmp/pkg" \
  target/wasm32-unknown-unknown/release/gradsift_web.wasm
cp web/www/* "$out.tmp/"
rm -rf "$out"
mv "$out.tmp" "$out"
echo "build-web: $out/ ($(du -sh "$out/pkg/gradsift_web_bg.wasm" | cut -f1) of wasm, model and data included)"
