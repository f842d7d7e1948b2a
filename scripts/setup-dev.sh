#!/usr/bin/env bash
# Installs what building and testing gradsift needs beyond a Rust toolchain, on Debian or
# Ubuntu as root (CI runs it; a contributor may too). Each step is skipped when already done.
#   - Mesa's software Vulkan driver (lavapipe), so the wgpu backend is tested without a GPU;
#   - Chromium, whose SwiftShader WebGPU runs the browser page's test;
#   - rustfmt and clippy (CI's checks), the wasm32 target and wasm-bindgen-cli at exactly the
#     wasm-bindgen version in Cargo.lock (the page's JS glue must be made by the same version).
set -euo pipefail
cd "$(dirname "$0")/.."
export DEBIAN_FRONTEND=noninteractive
packages=(mesa-vulkan-drivers libvulkan1 chromium)
if ! dpkg -s "${packages[@]}" >/dev/null 2>&1; then
  apt-get update -qq
  apt-get install -y -qq "${packages[@]}"
fi
installed=$(rustup component list --installed 2>/dev/null)
for component in rustfmt clippy; do
  grep -q "^$component" <<<"$installed" || rustup component add "$component"
done
if ! rustup target list --installed 2>/dev/null | grep -qx wasm32-unknown-unknown; then
  rustup target add wasm32-unknown-unknown
fi
version=$(awk '/^name = "wasm-bindgen"$/ { getline; gsub(/version = |"/, ""); print }' Cargo.lock)
if [ "$(wasm-bindgen --version 2>/dev/null)" != "wasm-bindgen $version" ]; then
  # Only the wasm-bindgen binary, and without the TLS stack (rustls, ring) that only its
  # headless test runner's web requests use.
  cargo install wasm-bindgen-cli --version "$version" --no-default-features --bin wasm-bindgen
fi
