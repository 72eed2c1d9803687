#!/usr/bin/env bash
# Install what is missing, build, and run every test: C unit tests, Common
# Test suites and ExUnit against bin/lockerd, the threaded node-local lock
# tests under ThreadSanitizer, then everything again against an
# address/undefined-behaviour sanitized build (make asan), and a short
# run of every fuzz target over its seeds and regression inputs.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
if ! epmd -names >/dev/null 2>&1; then
  epmd -daemon
  for _ in $(seq 50); do epmd -names >/dev/null 2>&1 && break; sleep 0.1; done
fi
make -j"$(nproc)" all
make test
make test-tsan
make asan
make fuzz-smoke
echo "all tests passed"
