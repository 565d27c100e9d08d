#!/usr/bin/env bash
# The whole test suite, on a fresh machine: installs what the tests need, checks
# formatting and lints, then runs every test (starting Redis and an S3 server for them). Used by CI (.ci/run) and by developers.
set -euo pipefail
cd "$(dirname "$0")/.."
# One build from scratch gains nothing from incremental caches, which would add gigabytes
# to the disk this suite needs (see [profile.dev] in Cargo.toml). A caller may override.
export CARGO_INCREMENTAL="${CARGO_INCREMENTAL:-0}"

# Real services for the worker tests: a Redis server (Debian's package) and an S3 server
# (moto, from PyPI, in a venv under target/), each on a free loopback port, stopped at exit.
# The tests read EASEL_TEST_REDIS_URL and EASEL_TEST_S3_ENDPOINT; in CI a missing one fails.
SERVICES="$PWD/target/test-services"
mkdir -p "$SERVICES"
as_root() { if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi; }
free_port() { python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
wait_port() { # port name log
  for _ in $(seq 1 150); do (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0; sleep 0.2; done
  echo "$2 did not start; its log:" >&2; cat "$3" >&2; return 1
}
if ! command -v redis-server >/dev/null; then
  echo "== installing redis-server"
  as_root apt-get update -qq
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq redis-server >/dev/null
fi
# The console's browser tests: Debian's Chromium, driven through its ChromeDriver.
if ! command -v chromium >/dev/null || ! command -v chromedriver >/dev/null; then
  echo "== installing chromium and chromium-driver (browser tests)"
  as_root apt-get update -qq
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium chromium-driver >/dev/null
fi
if [ ! -x "$SERVICES/venv/bin/moto_server" ]; then
  echo "== installing moto (S3 server)"
  python3 -m venv "$SERVICES/venv"
  "$SERVICES/venv/bin/pip" install -q 'moto[server]>=5,<6'
fi
REDIS_PORT=$(free_port)
S3_PORT=$(free_port)
redis-server --port "$REDIS_PORT" --bind 127.0.0.1 --save '' --appendonly no >"$SERVICES/redis.log" 2>&1 &
REDIS_PID=$!
"$SERVICES/venv/bin/moto_server" -H 127.0.0.1 -p "$S3_PORT" >"$SERVICES/moto.log" 2>&1 &
MOTO_PID=$!
trap 'kill "$REDIS_PID" "$MOTO_PID" 2>/dev/null || true' EXIT
wait_port "$REDIS_PORT" redis-server "$SERVICES/redis.log"
wait_port "$S3_PORT" moto_server "$SERVICES/moto.log"
export EASEL_TEST_REDIS_URL="redis://127.0.0.1:$REDIS_PORT"
export EASEL_TEST_S3_ENDPOINT="http://127.0.0.1:$S3_PORT"

echo "== formatting"
cargo fmt --all -- --check

echo "== lints"
cargo clippy --workspace --all-targets --locked -- -D warnings

echo "== the job store, the settings, the console and the orchestrator link no engine"
for crate in easel-config easel-jobs easel-console easel-orchestrator; do
  if cargo tree --locked -p "$crate" -e normal,build | grep -E 'candle|easel-sdxl'; then
    echo "$crate depends on the engine (see above)" >&2; exit 1
  fi
done

echo "== deployment files (Dockerfiles, Kubernetes and KEDA manifests, RunPod template, entry point)"
scripts/check-deploy.sh

echo "== tests"
cargo test --workspace --locked

echo "== deployment files against the easel binary the tests built"
scripts/check-deploy.sh --live-only target/debug/easel
