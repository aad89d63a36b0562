#!/usr/bin/env bash
# Runs every test of boxoffice: formatting and lints, unit and property tests,
# and the integration tests against the real broker, PostgreSQL and Redis
# (started here if they are not running).
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
# One build folder outside the clone, kept between runs: builds are slow.
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/boxoffice/target}"
export CARGO_TERM_COLOR="${CARGO_TERM_COLOR:-never}"

step() { printf '\n\033[1m== %s ==\033[0m\n' "$*"; }

step "install what is missing"
scripts/stack.sh install

step "format"
cargo fmt --all --check
step "grafana files match grafana/generate.py"
python3 grafana/generate.py >/dev/null
git diff --exit-code --stat -- grafana || { echo "grafana/ is stale: run python3 grafana/generate.py and commit"; exit 1; }
step "deployment: Helm chart, kustomize overlays, NetworkPolicies, checkov, compose.yaml, CI workflow"
"${BOXOFFICE_TOOLS_DIR:-$HOME/.cache/boxoffice/tools}/venv/bin/python" scripts/check-deploy.py
"${BOXOFFICE_TOOLS_DIR:-$HOME/.cache/boxoffice/tools}/venv/bin/python" scripts/check-deploy.py --self-test
step "lints"
cargo clippy --workspace --all-targets -- -D warnings
step "build"
cargo build --workspace --all-targets
step "web client (wasm)"
scripts/build-web.sh
# On a new machine the broker has been building beside the steps above; `up` waits for it.
step "start the local stack"
scripts/stack.sh up
# Test databases are per test; drop the ones earlier runs left behind.
psql -h 127.0.0.1 -U postgres -Atc "SELECT datname FROM pg_database WHERE datname LIKE 'bx_test_%'" |
  while read -r db; do psql -h 127.0.0.1 -U postgres -qc "DROP DATABASE IF EXISTS \"$db\"" || true; done
step "tests"
cargo nextest run --workspace --no-fail-fast
