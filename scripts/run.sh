#!/usr/bin/env bash
# Installs what is missing, starts the local stack (broker, PostgreSQL, Redis,
# Prometheus) and every boxoffice role, creates a demo event and prints the
# URLs. Idempotent: running it again keeps what already runs.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/boxoffice/target}"
STACK="${BOXOFFICE_STACK_DIR:-$ROOT/.stack}"
BIN="$CARGO_TARGET_DIR/debug/boxoffice"

say() { printf '\033[1m[run]\033[0m %s\n' "$*"; }
die() { printf '\033[31m[run] error:\033[0m %s\n' "$*" >&2; exit 1; }
port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

# On a new machine the install leaves the broker building in the background:
# boxoffice's own build runs beside it, and `up` waits for it.
scripts/stack.sh install
say "building boxoffice (the first build takes a while: RocksDB and librdkafka are C/C++; on a new 2-core machine about 41 min beside the broker's build)"
# The same build as scripts/test.sh (tests included), so that one never
# rebuilds what the other built with other dependency features.
cargo build --workspace --all-targets
scripts/build-web.sh
scripts/stack.sh up

mkdir -p "$STACK/roles" "$STACK/logs" "$STACK/prometheus/targets"
start_role() {
  local role="$1" instance="$2" port="$3"
  local pidfile="$STACK/roles/$instance.pid"
  if [[ -f "$pidfile" ]] && kill -0 "$(cat "$pidfile")" 2>/dev/null; then
    say "$instance already running (pid $(cat "$pidfile"))"
    return
  fi
  port_open "$port" && die "port $port (for $instance) is taken by another process"
  say "starting $instance on :$port (log: $STACK/logs/$instance.log)"
  (BOXOFFICE_INSTANCE="$instance" BOXOFFICE_PORT="$port" BOXOFFICE_STATE_DIR="$STACK/state" \
    exec setsid "$BIN" "$role" >>"$STACK/logs/$instance.log" 2>&1 </dev/null) &
  echo $! >"$pidfile"
  local waited=0
  until curl -sf "http://127.0.0.1:$port/health/ready" -o /dev/null; do
    kill -0 "$(cat "$pidfile")" 2>/dev/null || { tail -20 "$STACK/logs/$instance.log"; die "$instance exited"; }
    (( waited >= 90 )) && { tail -20 "$STACK/logs/$instance.log"; die "$instance not ready after 90s"; }
    (( waited % 5 == 0 )) && say "waiting for $instance to be ready (${waited}s)"
    sleep 1; waited=$((waited + 1))
  done
}

# The local stack may use the built-in secrets; the web app's server on this
# machine forwards each visitor's address, so the API's rate limits count
# visitors, not the web app (docs/front-door.md).
export BOXOFFICE_ENV=local BOXOFFICE_TRUSTED_PROXIES=127.0.0.1/32,::1/128
start_role reservation-processor reservation-processor-1 8180
start_role seat-processor seat-processor-1 8280
start_role api api-1 8080
# Nothing stands in front of the web app here: it believes no visitor's
# X-Forwarded-For, and resolves each visitor for the API itself.
export BOXOFFICE_TRUSTED_PROXIES=
# The web app reads per-pod figures from the local Prometheus.
export BOXOFFICE_API_URL=http://127.0.0.1:8080 BOXOFFICE_SITE_DIR="$CARGO_TARGET_DIR/site" \
  BOXOFFICE_PROMETHEUS_URL=http://127.0.0.1:9090
start_role dashboard dashboard-1 8380

# Every metric carries its own role and pod labels; the targets add none.
cat >"$STACK/prometheus/targets/boxoffice.json" <<JSON
[{"targets": ["127.0.0.1:8080", "127.0.0.1:8180", "127.0.0.1:8280", "127.0.0.1:8380"]}]
JSON

say "creating the demo event"
"$BIN" demo --api http://127.0.0.1:8080 | tee "$STACK/demo.txt"

cat <<TXT

boxoffice is running:
  web app          http://127.0.0.1:8380  (buyers; organizers at /organizer: create an organizer
                   account there, or leave the email empty and use the house password "organizer",
                   which owns the demo event; operations at /organizer/operations)
  API              http://127.0.0.1:8080/api/events  (contract: /api/openapi.json)
  metrics          http://127.0.0.1:8080/metrics  (:8180 reservation-processor, :8280 seat-processor, :8380 web app)
  Prometheus       http://127.0.0.1:9090
  logs             $STACK/logs/
  accounts         POST /api/accounts, POST /api/sessions (docs/accounts.md); house organizer:
                   password "organizer" (POST /api/auth/organizer)
Stop everything:   scripts/stack.sh down
TXT
