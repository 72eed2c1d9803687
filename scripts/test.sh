#!/usr/bin/env bash
# Install what is missing, build, and run every test: C unit tests, Common
# Test suites and ExUnit (with the example project) against bin/lockerd
# (make test), the threaded node-local lock tests under ThreadSanitizer,
# the operations tests (make test-ops: a Prometheus server scraping
# lockerd, the systemd notify protocol, the Debian packages installed into
# a Debian 12 chroot), the bounded fault-injection run (make faults-smoke)
# and its control (make faults-control: unsafe restarts, the checker must
# find the violations), the hostile-peer floods' table (make
# attack-smoke), make test once more against an address/undefined-
# behaviour sanitized build (make asan), a short run of every fuzz target
# over its seeds and regression inputs, and then the C tests, the Common
# Test suites and ExUnit again with OTP 27's and OTP 29's BEAM,
# erl_interface and Elixir, each in its cached Debian chroot (make
# test-otp). The README's "Two commands" lists the same steps.
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
make faults-control
make attack-smoke
make asan
make fuzz-smoke
make test-otp
echo "all tests passed"
