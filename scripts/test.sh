#!/usr/bin/env bash
# Install what is missing, build, and run every test: C unit tests, Common
# Test suites and ExUnit against bin/lockerd, the threaded node-local lock
# tests under ThreadSanitizer, the bounded fault-injection run (make
# faults-smoke), then everything again against an address/undefined-
# behaviour sanitized build (make asan), a short run of every fuzz
# target over its seeds and regression inputs, and then the C tests, the
# Common Test suites and ExUnit again with OTP 27's and OTP 29's BEAM,
# erl_interface and Elixir, each in its cached Debian chroot (make
# test-otp: about 11 minutes, plus 3 the first time a machine makes the
# chroots; with the ~15.5 minutes before it, the whole run takes about 27-30
# minutes on the 2-core CI machine).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
. scripts/lib.sh
ensure_epmd loopback
make -j"$(nproc)" all
make test
make test-tsan
make faults-smoke
make asan
make fuzz-smoke
make test-otp
echo "all tests passed"
