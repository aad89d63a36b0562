#!/usr/bin/env bash
# The full chaos run (boxoffice/tests/chaos.rs, `chaos_full`): 5,000 seats,
# 20,000 booking attempts, every fault, on a broker and a PostgreSQL of its
# own. Writes bench/results/<date>-chaos.md. Replay a run with its seed:
#   CHAOS_SEED=<seed> scripts/chaos.sh
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/boxoffice/target}"
scripts/stack.sh install
scripts/stack.sh up
out="bench/results/$(date -u +%F)-chaos.md"
body="$(mktemp)"
echo "[chaos] building and running the full scenario (several minutes); report: $out"
# --workspace, like the test command: the same features, so the same build.
CHAOS_REPORT="$body" cargo nextest run --workspace --run-ignored ignored-only --no-capture \
  -E 'binary(chaos) & test(chaos_full)'
{
  echo "# Chaos run $(date -u '+%F %H:%M UTC')"
  echo
  echo "Machine: $(nproc) cores ($(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs)), $(free -g | awk '/Mem:/ {print $2}') GiB, everything on one host."
  echo "Commit: \`$(git rev-parse --short HEAD)\`$(git diff --quiet || echo ' (with uncommitted changes)')."
  echo "Command: \`scripts/chaos.sh\`${CHAOS_SEED:+ with CHAOS_SEED=$CHAOS_SEED}."
  echo
  cat "$body"
} >"$out"
rm -f "$body"
echo "[chaos] report written to $out"
