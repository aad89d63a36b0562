#!/usr/bin/env bash
# Coverage-guided fuzzing (cargo-fuzz, libFuzzer) of the Avro decoders, the
# seat map under hostile commands and the API's request parsers
# (fuzzing/src/lib.rs). Runs every target for SECONDS each (default 60), on
# the stable toolchain without a sanitizer (Rust's own checks, panics and
# the RSS limit are what it catches), keeps each target's corpus between
# runs in the tools folder, and writes bench/results/<date>-fuzz.md.
#   scripts/fuzz.sh [SECONDS] [TARGET...]
# A crash stops it with the input saved under fuzz/artifacts/<target>/; once
# fixed, copy that file into fuzz/regressions/<target>/, which the test
# command replays.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
SECONDS_EACH="${1:-60}"
shift || true
TARGETS=("$@")
[[ ${#TARGETS[@]} -gt 0 ]] || TARGETS=(avro commands requests)
TOOLS="${BOXOFFICE_TOOLS_DIR:-$HOME/.cache/boxoffice/tools}"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/boxoffice/target}"
FUZZ_TARGET_DIR="$HOME/.cache/boxoffice/fuzz-target"
CORPUS="$HOME/.cache/boxoffice/fuzz-corpus"
CARGO_FUZZ_VERSION=0.13.2
say() { printf '\033[1m[fuzz]\033[0m %s\n' "$*"; }

if ! "$TOOLS/cargo-fuzz/bin/cargo-fuzz" --version 2>/dev/null | grep -q "$CARGO_FUZZ_VERSION"; then
  say "installing cargo-fuzz $CARGO_FUZZ_VERSION (once per machine, about 2 min)"
  cargo install --locked -q cargo-fuzz --version "$CARGO_FUZZ_VERSION" --root "$TOOLS/cargo-fuzz"
fi
export PATH="$TOOLS/cargo-fuzz/bin:$PATH"

say "writing the seeds"
cargo run -q -p boxoffice-fuzzing --bin fuzz-seeds -- "$CORPUS"
say "building the targets (the first build compiles every dependency again, librdkafka's C included)"
(cd fuzz && cargo fuzz build -s none -O --target-dir "$FUZZ_TARGET_DIR")

commit="$(git rev-parse --short HEAD 2>/dev/null || echo unknown)"
report="bench/results/$(date -u +%F)-fuzz.md"
rows=()
for t in "${TARGETS[@]}"; do
  say "$t: ${SECONDS_EACH}s"
  log="$(mktemp)"
  set +e
  (cd fuzz && cargo fuzz run -s none -O --target-dir "$FUZZ_TARGET_DIR" "$t" "$CORPUS/$t" -- \
    -max_total_time="$SECONDS_EACH" -rss_limit_mb=2048 -max_len=65536 -print_final_stats=1) 2>&1 | tee "$log" |
    grep --line-buffered -E "pulse|NEW_FUNC|DONE|Done|ERROR|panicked" | grep -v NEW_FUNC | tail -n +1
  rc=${PIPESTATUS[0]}
  set -e
  runs="$(grep -oE 'stat::number_of_executed_units: *[0-9]+' "$log" | grep -oE '[0-9]+$' || echo '?')"
  cov="$(grep -oE 'DONE +cov: [0-9]+' "$log" | grep -oE '[0-9]+$' || echo '?')"
  corpus="$(ls "$CORPUS/$t" | wc -l)"
  if [[ $rc -ne 0 ]]; then
    say "$t CRASHED (exit $rc): see fuzz/artifacts/$t/ and the log $log"
    rows+=("| \`$t\` | $SECONDS_EACH | $runs | $cov | $corpus | **crash** (exit $rc) |")
  else
    rows+=("| \`$t\` | $SECONDS_EACH | $runs | $cov | $corpus | none |")
  fi
done

{
  echo "# Fuzzing, $(date -u +%F)"
  echo
  echo "- Machine: $(nproc) cores, $(awk '/MemTotal/ {printf "%.0f GiB", $2/1048576}' /proc/meminfo), $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs)"
  echo "- Commit: \`$commit\`"
  echo "- Command: \`scripts/fuzz.sh $SECONDS_EACH ${TARGETS[*]}\` (cargo-fuzz $CARGO_FUZZ_VERSION, libFuzzer, no sanitizer, optimised)"
  echo "- Targets: fuzzing/src/lib.rs. The corpus carries over between runs (\`~/.cache/boxoffice/fuzz-corpus\`)."
  echo
  echo "| target | seconds | executions | coverage (edges) | corpus | crashes |"
  echo "|---|---|---|---|---|---|"
  printf '%s\n' "${rows[@]}"
} > "$report"
say "wrote $report"
cat "$report"
grep -q '\*\*crash\*\*' "$report" && exit 1 || true
