#!/usr/bin/env bash
# The on-sale benchmark, one command: builds boxoffice optimised, starts the
# local stack and two instances of each role on their own topics and
# database, measures the broker's own ceiling with the pipeline's client
# settings, runs the open-loop spike (10,000 seats, 100,000 buyers by
# default), and writes bench/results/<date>-<commit>.md with the machine, the
# commands, the broker's state and every figure.
#
# Settings (environment): BENCH_RATE arrivals/s (5000), BENCH_RAMP_SECS (5),
# BENCH_REQUESTS (100000), BENCH_CONCURRENCY most in flight (4000),
# BENCH_SECTIONS x BENCH_ROWS x BENCH_SEATS_PER_ROW (4 x 25 x 100),
# BENCH_PARTITIONS (6), BENCH_PARTS parts of the event, each on its own
# partition (1; docs/event-partitioning.md), BENCH_SEAT_PROCESSORS (2),
# BENCH_FETCH_WAIT_MS (the roles' default when unset), BENCH_PROFILE (release),
# BENCH_TAG (a suffix of the report's name, for variants of one commit),
# BENCH_HOT_SEATS (0: explicit picks aim at the first N seats of one row),
# BENCH_READERS and BENCH_SUBSCRIBERS (0: seat-map readers and live
# subscribers browsing beside the spike),
# BENCH_PERF=1 profiles the whole machine during the spike (perf, call
# graphs from DWARF at BENCH_PERF_HZ samples/s, 99) and adds each process's
# hottest frames to the report, with flamegraphs beside it
# (bench/results/flamegraphs/<report name>/). BENCH_CAPTURE=1 captures
# what the clients send the broker during the spike (tcpdump) and adds the
# requests per decision, by client and API, to the report
# (bench/kafka-requests.py).
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/boxoffice/target}"
STACK="${BOXOFFICE_STACK_DIR:-$ROOT/.stack}"
# BENCH_PROFILE=debug measures the build the tests use instead (no second
# RocksDB build); the report says which.
PROFILE="${BENCH_PROFILE:-release}"
BIN="$CARGO_TARGET_DIR/$PROFILE/boxoffice"
RATE="${BENCH_RATE:-5000}"
RAMP="${BENCH_RAMP_SECS:-5}"
REQUESTS="${BENCH_REQUESTS:-100000}"
CONCURRENCY="${BENCH_CONCURRENCY:-4000}"
SECTIONS="${BENCH_SECTIONS:-4}" ROWS="${BENCH_ROWS:-25}" SEATS="${BENCH_SEATS_PER_ROW:-100}"
PARTITIONS="${BENCH_PARTITIONS:-6}"
PARTS="${BENCH_PARTS:-1}"
SEAT_PROCESSORS="${BENCH_SEAT_PROCESSORS:-2}"

say() { printf '\033[1m[bench]\033[0m %s\n' "$*" >&2; }
die() { printf '\033[31m[bench] error:\033[0m %s\n' "$*" >&2; exit 1; }
[[ "$SEAT_PROCESSORS" == 1 || "$SEAT_PROCESSORS" == 2 ]] || die "BENCH_SEAT_PROCESSORS must be 1 or 2"

scripts/stack.sh install >&2
scripts/stack.sh up >&2
TOOLS="${BOXOFFICE_TOOLS_DIR:-$HOME/.cache/boxoffice/tools}"
if [[ "${BENCH_PERF:-0}" == 1 ]]; then
  command -v perf >/dev/null || { say "installing perf (Debian linux-perf)"; apt-get install -y -q linux-perf >&2; }
  if [[ ! -x "$TOOLS/bin/inferno-flamegraph" ]]; then
    say "installing inferno (flamegraphs from perf's stacks; about a minute)"
    cargo install --locked -q --root "$TOOLS" inferno --version 0.12.8 >&2
  fi
  export PATH="$TOOLS/bin:$PATH"
fi
if [[ "${BENCH_CAPTURE:-0}" == 1 ]] && ! command -v tcpdump >/dev/null; then
  say "installing tcpdump (Debian)"; apt-get install -y -q tcpdump >&2
fi
if [[ "$PROFILE" == release ]]; then
  say "building boxoffice optimised (release profile; the first time compiles RocksDB again, ~30 min on 2 cores)"
  cargo build --release -p boxoffice --bin boxoffice >&2
else
  say "building boxoffice as the tests do (debug profile)"
  cargo build --workspace --all-targets >&2
fi

RUN_ID="$(date -u +%Y%m%d%H%M%S)"
COMMIT="$(git rev-parse --short HEAD)$(git diff --quiet HEAD -- . ':!bench/results' || echo '+changes')"
OUT_DIR="$STACK/bench/$RUN_ID"
mkdir -p "$OUT_DIR/logs" "$ROOT/bench/results"
# BENCH_TAG names a variant of the same commit's run (e.g. parts-2).
REPORT="$ROOT/bench/results/$(date -u +%Y-%m-%d)-$(git rev-parse --short HEAD)${BENCH_TAG:+-$BENCH_TAG}.md"
export KAFKA_BOOTSTRAP_SERVERS=127.0.0.1:9092
export BOXOFFICE_TOPIC_PREFIX="bench-$RUN_ID-" BOXOFFICE_REDIS_PREFIX="bench-$RUN_ID:"
export BOXOFFICE_PARTITIONS="$PARTITIONS" DATABASE_URL="postgres://postgres@127.0.0.1:5432/bx_bench_$RUN_ID"
export RUST_LOG="${RUST_LOG:-info,rdkafka=warn}"
# The load generator plays a proxy in front of the API, each buyer from an
# address of its own: the rate limits stay at their defaults and count
# buyers apart (docs/front-door.md).
export BOXOFFICE_ENV=local BOXOFFICE_TRUSTED_PROXIES=127.0.0.1/32
# The per-event limit protects a deployment's pipeline at the rate it was
# sized for; the benchmark measures that rate, so it must not cap it.
export BOXOFFICE_LIMIT_EVENT=off
[[ -n "${BENCH_FETCH_WAIT_MS:-}" ]] && export BOXOFFICE_KAFKA_FETCH_WAIT_MS="$BENCH_FETCH_WAIT_MS"

# CPU time (utime + stime, in clock ticks) of a process.
ticks() { awk '{print $14 + $15}' "/proc/$1/stat" 2>/dev/null || echo 0; }
broker_pid="$(cat "$STACK/broker/pid")"
# The local broker sweeps its storage (retention, compaction, vacuum) at
# start and every 10 minutes, and stalls for seconds while it does on a big
# file: the report says how long it had been up.
broker_up_secs=$(( $(date +%s) - $(stat -c %Y "$STACK/broker/pid") ))
hz="$(getconf CLK_TCK)"

pids=() names=() ports=()
cleanup() {
  # perf and tcpdump write a readable file only when stopped by SIGINT.
  for p in "${perf_pid:-}" "${capture_pid:-}"; do
    if [[ -n "$p" ]]; then kill -INT "$p" 2>/dev/null || true; fi
  done
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
}
trap cleanup EXIT
start_role() {
  local role="$1" instance="$2" port="$3"; shift 3
  say "starting $instance on :$port"
  (exec env BOXOFFICE_INSTANCE="$instance" BOXOFFICE_PORT="$port" BOXOFFICE_STATE_DIR="$OUT_DIR/state" "$@" \
    "$BIN" "$role" >>"$OUT_DIR/logs/$instance.log" 2>&1 </dev/null) &
  pids+=("$!") names+=("${instance#bench-}") ports+=("$port")
  local waited=0
  until curl -sf "http://127.0.0.1:$port/health/ready" -o /dev/null; do
    (( waited >= 120 )) && { tail -20 "$OUT_DIR/logs/$instance.log"; die "$instance not ready"; }
    sleep 1; waited=$((waited + 1))
  done
}

say "broker state before the run: $(du -h "$STACK/broker/broker.db" | cut -f1) of data"
b0="$(ticks "$broker_pid")"; sleep 5; b1="$(ticks "$broker_pid")"
broker_idle_empty=$(( (b1 - b0) * 100 / (5 * hz) ))

start_role reservation-processor bench-reservation-1 18180
start_role reservation-processor bench-reservation-2 18181
start_role seat-processor bench-seat-1 18280
if [[ "$SEAT_PROCESSORS" == 2 ]]; then start_role seat-processor bench-seat-2 18281; fi
start_role api bench-api-1 18080 BOXOFFICE_RESERVATION_URL=http://127.0.0.1:18180
start_role api bench-api-2 18081 BOXOFFICE_RESERVATION_URL=http://127.0.0.1:18181
sleep 5
b0="$(ticks "$broker_pid")"; sleep 5; b1="$(ticks "$broker_pid")"
broker_idle_roles=$(( (b1 - b0) * 100 / (5 * hz) ))
say "broker CPU at rest: ${broker_idle_empty}% of a core before the roles, ${broker_idle_roles}% with them connected"
roles_started="${#pids[@]}"

say "measuring the broker's own ceiling"
"$BIN" broker-bench --messages 100000 --size 200 >"$OUT_DIR/ceiling.json"
say "ceiling: $(cat "$OUT_DIR/ceiling.json")"

say "the spike: $REQUESTS buyers at up to $RATE/s (ramp ${RAMP}s) for ${SECTIONS}x${ROWS}x${SEATS} seats in $PARTS part(s), $SEAT_PROCESSORS seat-processor(s)"
"$BIN" loadgen --api http://127.0.0.1:18080,http://127.0.0.1:18081 \
  --sections "$SECTIONS" --rows "$ROWS" --seats-per-row "$SEATS" --parts "$PARTS" \
  --requests "$REQUESTS" --concurrency "$CONCURRENCY" --rate "$RATE" --ramp-secs "$RAMP" \
  --max-quantity 4 --explicit-share 0.5 --confirm-share 0.5 --cancel-share 0.2 --seed 7 \
  --hot-seats "${BENCH_HOT_SEATS:-0}" --readers "${BENCH_READERS:-0}" --subscribers "${BENCH_SUBSCRIBERS:-0}" \
  >"$OUT_DIR/loadgen.json" 2> >(tee "$OUT_DIR/loadgen.log" >&2) &
loadgen_pid=$!
# Every figure below covers the spike alone: the buyers sign in first.
until grep -qF '[loadgen] the spike begins' "$OUT_DIR/loadgen.log" 2>/dev/null; do
  kill -0 "$loadgen_pid" 2>/dev/null || { wait "$loadgen_pid" || true; die "the load generator stopped before the spike"; }
  sleep 0.2
done
declare -A before
for p in "$broker_pid" "${pids[@]}"; do before[$p]="$(ticks "$p")"; done
pg_before="$(ps -C postgres -o times= | awk '{s+=$1} END {print s+0}')"
redis_before="$(ps -C redis-server -o times= | awk '{s+=$1} END {print s+0}')"
started="$(date +%s%N)"
if [[ "${BENCH_PERF:-0}" == 1 ]]; then
  perf record -q -a -F "${BENCH_PERF_HZ:-99}" --call-graph dwarf,16384 -o "$OUT_DIR/perf.data" 2>"$OUT_DIR/perf.log" &
  perf_pid=$!
fi
if [[ "${BENCH_CAPTURE:-0}" == 1 ]]; then
  # The client-to-broker direction only: requests, not the records fetched.
  tcpdump -i lo -s 0 -B 65536 -w "$OUT_DIR/broker.pcap" 'tcp dst port 9092' 2>"$OUT_DIR/tcpdump.log" &
  capture_pid=$!
fi
# A run whose invariants fail still gets its report (and its profile); the
# script fails at the end.
loadgen_status=0
wait "$loadgen_pid" || loadgen_status=$?
[[ "$loadgen_status" == 0 || -s "$OUT_DIR/loadgen.json" ]] || die "the load generator failed (log: $OUT_DIR/loadgen.log)"
ended="$(date +%s%N)"
if [[ -n "${perf_pid:-}" ]]; then kill -INT "$perf_pid"; wait "$perf_pid" || true; fi
if [[ -n "${capture_pid:-}" ]]; then kill -INT "$capture_pid"; wait "$capture_pid" || true; fi
secs="$(awk -v a="$started" -v b="$ended" 'BEGIN {printf "%.3f", (b - a) / 1e9}')"
pg_after="$(ps -C postgres -o times= | awk '{s+=$1} END {print s+0}')"
redis_after="$(ps -C redis-server -o times= | awk '{s+=$1} END {print s+0}')"
# % of one core over the run.
cpu() { awk -v t="$(( $(ticks "$1") - ${before[$1]} ))" -v s="$secs" -v hz="$hz" 'BEGIN {printf "%.0f", t * 100 / (s * hz)}'; }
# `ps -o times=` is whole seconds of CPU.
cpu_secs() { awk -v a="$1" -v b="$2" -v s="$secs" 'BEGIN {printf "%.0f", (b - a) * 100 / s}'; }
"$BIN" broker-bench --watermarks "$BOXOFFICE_TOPIC_PREFIX" >"$OUT_DIR/records.json"
# The processors' own account of their batches: sizes and time per stage.
for i in "${!pids[@]}"; do
  [[ "${names[$i]}" == api-* ]] && continue
  curl -sf "http://127.0.0.1:${ports[$i]}/metrics" >"$OUT_DIR/metrics-${names[$i]}.txt" 2>/dev/null || true
done

role_cpus=()
for i in "${!pids[@]}"; do role_cpus+=("${names[$i]}=$(cpu "${pids[$i]}")"); done
python3 - "$OUT_DIR" "$REPORT" "$COMMIT" "$secs" "$broker_idle_empty" "$broker_idle_roles" \
  "broker=$(cpu "$broker_pid")" "${role_cpus[@]}" \
  "postgres=$(cpu_secs "$pg_before" "$pg_after")" \
  "redis=$(cpu_secs "$redis_before" "$redis_after")" \
  "$(du -h "$STACK/broker/broker.db" | cut -f1) (up ${broker_up_secs} s when the run began)" \
  "$RATE $RAMP $REQUESTS $CONCURRENCY $SECTIONS $ROWS $SEATS $PARTITIONS $PROFILE $PARTS $SEAT_PROCESSORS $roles_started" <<'PY'
import json, sys, datetime, os
out, report, commit, secs, idle_empty, idle_roles = sys.argv[1:7]
cpus = dict(a.split("=", 1) for a in sys.argv[7:-2])
broker_file = sys.argv[-2]
rate, ramp, requests, conc, sections, rows, seats, partitions, profile, parts, seat_processors, roles = sys.argv[-1].split()
lg = json.load(open(f"{out}/loadgen.json"))
ceiling = json.load(open(f"{out}/ceiling.json"))
records = json.load(open(f"{out}/records.json"))
decided = lg["decisions_per_s"] * lg["elapsed_s"]
stored = sum(records.values())
per_decision = stored / decided if decided else 0
bound = ceiling["through_per_s"] / per_decision if per_decision else 0
model = next((l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name")), "?")
cores = os.cpu_count()
lines = [
    f"# On-sale benchmark {datetime.datetime.utcnow():%Y-%m-%d %H:%M} UTC, commit {commit}",
    "",
    f"Machine: {cores} cores ({model}), {round(os.sysconf('SC_PAGE_SIZE') * os.sysconf('SC_PHYS_PAGES') / 2**30)} GiB; "
    f"everything on this host: broker (nisshi, sqlite), PostgreSQL, Redis, 2 API, {seat_processors} seat-processor, "
    f"2 reservation-processor ({profile} build) and the load generator.",
    "",
    f"Command: `bench/run.sh` (BENCH_RATE={rate} BENCH_RAMP_SECS={ramp} BENCH_REQUESTS={requests} "
    f"BENCH_CONCURRENCY={conc} BENCH_PARTS={parts} BENCH_SEAT_PROCESSORS={seat_processors}, "
    f"{sections}x{rows}x{seats} seats, {partitions} partitions)",
    "",
    "## The spike (open loop, latency from each scheduled arrival to its final answer)",
    "",
    "| figure | value |", "|---|---|",
    f"| seats | {lg['capacity']} |",
    f"| buyers (requests) | {lg['requests']} |",
    f"| arrival rate asked / ramp | {rate}/s / {ramp} s |",
    f"| elapsed | {lg['elapsed_s']:.1f} s |",
    f"| decisions/s | {lg['decisions_per_s']:.0f} |",
    f"| requests/s answered | {lg['requests_per_s']:.0f} |",
    f"| latency p50 / p90 / p99 / p99.9 / max (not shed) | {lg['latency_ms_p50']:.1f} / {lg['latency_ms_p90']:.1f} / "
    f"{lg['latency_ms_p99']:.1f} / {lg['latency_ms_p999']:.1f} / {lg['latency_ms_max']:.1f} ms |",
    f"| shed (503 overloaded) / their p99 | {lg['shed']} / {lg['shed_latency_ms_p99']:.1f} ms |",
    f"| held / confirmed bookings, seats taken | {lg['held_bookings']} / {lg['confirmed_bookings']}, {lg['seats_taken']} |",
    f"| answered 202 then resolved / unresolved / 5xx | {lg['deferred_then_resolved']} / {lg['unresolved']} / {lg['server_errors']} |",
    f"| seats given twice / seat map mismatches | {lg['duplicate_seats']} / {lg['seat_map_mismatches']} |",
    f"| invariants hold | {lg['invariants_hold']} |",
    "",
    f"Outcomes: `{json.dumps(lg['outcomes'])}`",
    "",
    "## Against the broker's own ceiling",
    "",
    f"- The broker alone (`boxoffice broker-bench`, {ceiling['messages']} messages of {ceiling['size']} B, "
    f"{ceiling['partitions']} partitions, the pipeline's producer and fetch settings): "
    f"{ceiling['produced_per_s']:.0f} produced/s, {ceiling['consumed_per_s']:.0f} consumed/s, "
    f"{ceiling['through_per_s']:.0f}/s end to end; round trip p50 {ceiling['round_trip_ms_p50']:.1f} ms, "
    f"p99 {ceiling['round_trip_ms_p99']:.1f} ms.",
    f"- Records the run stored: {stored} ({json.dumps(records)}), "
    f"{per_decision:.2f} per decision.",
    f"- Broker-bound ceiling = end-to-end rate / records per decision = {bound:.0f} decisions/s; "
    f"the pipeline reached {lg['decisions_per_s']:.0f} ({(lg['decisions_per_s'] / bound * 100) if bound else 0:.0f}%).",
    "",
    "## CPU during the spike (% of one core, averaged over the run)",
    "",
    "| process | CPU |", "|---|---|",
] + [f"| {k} | {v}% |" for k, v in cpus.items()] + [
    "",
    "## Broker state",
    "",
    f"- Broker at rest before the run: {idle_empty}% of a core with no roles of this run; "
    f"{idle_roles}% with the {roles} roles connected and idle.",
    f"- Its sqlite file after the run: {broker_file}.",
    "",
]
import glob, re, collections
stage = collections.defaultdict(lambda: [0.0, 0.0])
batch = collections.defaultdict(lambda: [0.0, 0.0])
for path in sorted(glob.glob(f"{out}/metrics-*.txt")):
    role = "seat-processor" if os.path.basename(path).startswith("metrics-seat-") else "reservation-processor"
    for line in open(path):
        m = re.match(r'boxoffice_(processing_stage_seconds|seat_batch_size)_(sum|count)\{([^}]*)\} ([0-9.e+-]+)$', line.strip())
        if not m:
            continue
        labels = dict(re.findall(r'(\w+)="([^"]*)"', m[3]))
        target = stage[(role, labels.get("stage", "?"))] if m[1] == "processing_stage_seconds" else batch[role]
        target[0 if m[2] == "sum" else 1] += float(m[4])
if stage:
    lines += ["## The processors' batches (both instances, from their /metrics)", "",
              "| role | stage | batches | mean per batch |", "|---|---|---|---|"]
    for (role, name), (total, count) in sorted(stage.items()):
        if count:
            lines.append(f"| {role} | {name} | {count:.0f} | {total / count * 1000:.1f} ms |")
    for role, (total, count) in sorted(batch.items()):
        if count:
            lines.append(f"| {role} | commands per batch | {count:.0f} | {total / count:.1f} |")
    lines.append("")
if lg.get("browse"):
    b = lg["browse"]
    lines += ["## Browsing beside the spike", "",
              f"- {b['readers']} seat-map readers (compact form, each reading again as soon as answered): "
              f"{b['reads']} reads, {b['reads_per_s']:.0f}/s, p50 {b['read_latency_ms_p50']:.1f} ms, "
              f"p99 {b['read_latency_ms_p99']:.1f} ms, {b['read_errors']} not answered 200.",
              f"- {b['subscribers']} live seat-map subscribers (SSE): {b['subscriber_messages']} messages received.",
              ""]
if lg.get("cpu_percent") is not None:
    at = lines.index("## Broker state")
    lines[at - 1:at - 1] = [f"| load generator | {lg['cpu_percent']:.0f}% |"]
open(report, "w").write("\n".join(lines) + "\n")
print(report)
PY
if [[ -n "${capture_pid:-}" ]]; then
  say "counting the broker requests in the capture"
  decisions="$(python3 -c 'import json,sys; d=json.load(open(sys.argv[1])); print(round(d["decisions_per_s"] * d["elapsed_s"]))' "$OUT_DIR/loadgen.json")"
  {
    printf '\n## Broker requests during the spike (captured on loopback, %s)\n\n' "$(grep -o '[0-9]* packets dropped by kernel' "$OUT_DIR/tcpdump.log" || echo 'drops unknown')"
    python3 bench/kafka-requests.py "$OUT_DIR/broker.pcap" --decisions "$decisions"
  } >>"$REPORT"
  rm -f "$OUT_DIR/broker.pcap"
fi
if [[ -n "${perf_pid:-}" ]]; then
  say "folding the profile into flamegraphs"
  flame_dir="$ROOT/bench/results/flamegraphs/$(basename "$REPORT" .md)"
  perf_names=("--name" "$broker_pid=broker" "--name" "$loadgen_pid=loadgen")
  for i in "${!pids[@]}"; do perf_names+=("--name" "${pids[$i]}=${names[$i]}"); done
  {
    printf '\n## Profile of the spike (perf, %s samples/s per core, whole machine)\n\n' "${BENCH_PERF_HZ:-99}"
    python3 bench/flame.py "$OUT_DIR/perf.data" "$OUT_DIR/flame" "${perf_names[@]}"
    printf '\nFlamegraphs: `bench/results/flamegraphs/%s/` (one SVG per process, `all.svg` for the machine).\n' "$(basename "$flame_dir")"
  } >>"$REPORT"
  mkdir -p "$flame_dir" && cp "$OUT_DIR"/flame/*.svg "$flame_dir"/ 2>/dev/null || say "no SVGs (inferno missing)"
fi
say "report: $REPORT"
if (( loadgen_status != 0 )); then
  die "the load generator reported invariant violations (see the report and $OUT_DIR/loadgen.log)"
fi
