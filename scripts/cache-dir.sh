#!/usr/bin/env bash
# Prints the build directory CI keeps between runs on one machine (as Rust projects' CI keeps
# target/): outside the clone, so a fresh clone on the same machine compiles only what changed
# since the last run (dependencies are reused; the workspace's crates are rebuilt, incrementally).
# One directory per toolchain (a new rustc cannot reuse the old one's artifacts). Cargo takes
# care of lockfile and profile changes within it; past GRADSIFT_CACHE_MAX_GB (default 40) the
# directory is emptied first, so it cannot fill the disk. Clear it by hand with
#   rm -rf "$(scripts/cache-dir.sh)"
# Set GRADSIFT_CACHE to put it elsewhere.
set -euo pipefail
key=$(rustc -vV | sha256sum | cut -c1-12)
dir="${GRADSIFT_CACHE:-$HOME/.cache/gradsift}/target-$key"
mkdir -p "$dir"
gb=$(( $(du -sk "$dir" | cut -f1) / 1024 / 1024 ))
if [ "$gb" -gt "${GRADSIFT_CACHE_MAX_GB:-40}" ]; then
  echo "cache-dir: $dir holds ${gb} GB, over the limit: emptied" >&2
  rm -rf "$dir"
  mkdir -p "$dir"
fi
echo "$dir"
