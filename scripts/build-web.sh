#!/usr/bin/env bash
# Builds the web app's browser client (wasm) into $CARGO_TARGET_DIR/site/pkg,
# where `boxoffice dashboard` serves it from (BOXOFFICE_SITE_DIR).
#
# rustup here has no wasm32 target, so the client is built with Debian's
# wasm-capable toolchain (rustc-web 1.96, std from source, rust-lld), see
# scripts/stack.sh install; the server keeps rustup's stable.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
TARGET="${CARGO_TARGET_DIR:-$HOME/.cache/boxoffice/target}"
TOOLS="${BOXOFFICE_TOOLS:-$HOME/.cache/boxoffice/tools}"
say() { printf '\033[1m[web]\033[0m %s\n' "$*"; }

say "building the wasm client (first build compiles std for wasm32: ~8 min on 2 cores)"
RUSTC=/usr/bin/rustc RUSTDOC=/usr/bin/rustdoc RUSTC_BOOTSTRAP=1 /usr/bin/cargo build --lib \
  -p boxoffice-dashboard --profile wasm-release --no-default-features --features hydrate \
  --target wasm32-unknown-unknown -Zbuild-std=std,panic_abort --target-dir "$TARGET/front"
mkdir -p "$TARGET/site/pkg"
"$TOOLS/bin/wasm-bindgen" --target web --no-typescript --remove-name-section --remove-producers-section \
  --out-dir "$TARGET/site/pkg" --out-name dashboard \
  "$TARGET/front/wasm32-unknown-unknown/wasm-release/boxoffice_dashboard.wasm"
say "client ready in $TARGET/site/pkg ($(du -h "$TARGET/site/pkg/dashboard_bg.wasm" | cut -f1) wasm)"
