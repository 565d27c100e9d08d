#!/usr/bin/env bash
# The whole test suite, on a fresh machine: installs what the tests need, checks
# formatting and lints, then runs every test. Used by CI (.ci/run) and by developers.
set -euo pipefail
cd "$(dirname "$0")/.."

echo "== formatting"
cargo fmt --all -- --check

echo "== lints"
cargo clippy --workspace --all-targets --locked -- -D warnings

echo "== tests"
cargo test --workspace --locked
