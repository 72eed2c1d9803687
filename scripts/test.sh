#!/usr/bin/env bash
# Install what is missing, build, and run every test: C unit tests, Common
# Test suites and ExUnit against bin/lockerd, the threaded node-local lock
# tests under ThreadSanitizer, the operations tests (make test-ops: a
# Prometheus server scraping lockerd, the systemd notify protocol, the
# Debian packages installed into a Debian 12 chroot), the bounded fault-injection run (make
# faults-smoke), then everything again against an address/undefined-
# behaviour sanitized build (make asan), and a short run of every fuzz
# target over its seeds and regression inputs.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
. scripts/lib.sh
ensure_epmd loopback
make -j"$(nproc)" all
make test
make test-tsan
make test-ops
make faults-smoke
make asan
make fuzz-smoke
echo "all tests passed"
