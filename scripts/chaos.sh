#!/usr/bin/env bash
# The reliability suite at full scale, against the release binary, inside a private network
# namespace (only its own loopback exists there), bounded in time. Prints the table of figures
# and writes it to target/chaos-report.md. The reduced scale runs in `cargo test` (CI).
#
#   ./scripts/chaos.sh            # about 10-15 minutes on 2 cores
set -euo pipefail
cd "$(dirname "$0")/.."
as_root() { if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi; }
if ! command -v redis-server >/dev/null; then
  as_root apt-get update -qq
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq redis-server >/dev/null
fi
command -v ip >/dev/null || as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq iproute2 >/dev/null

echo "== building the release binary and the suite"
cargo build --release --locked -p easel
cargo test --release --locked -p easel --test chaos --no-run

export EASEL_CHAOS_BIN="$PWD/target/release/easel"
export EASEL_CHAOS_REPORT="$PWD/target/chaos-report.md"
# Root makes a network namespace directly; anyone else through a user namespace.
if [ "$(id -u)" = 0 ]; then NS=(unshare --net); else NS=(unshare --map-root-user --net); fi
echo "== running the full suite in a private network namespace (CPU: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs))"
timeout 2400 "${NS[@]}" bash -c 'ip link set lo up &&
  exec cargo test --offline --release --locked -p easel --test chaos -- --ignored --nocapture full_reliability_suite'
echo "== table written to $EASEL_CHAOS_REPORT"
