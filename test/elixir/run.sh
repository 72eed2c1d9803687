#!/usr/bin/env bash
# ExUnit tests of LockerTest.Registry / LockerTest.Server against three
# lockerd masters (LOCKERD_BIN, default <repo>/bin/lockerd), or against
# three BEAM lkr_server masters with LOCKERD_SKIP=1; then (lockerd only)
# the example Mix project examples/elixir_registry and the C echo service.
# Exits non-zero on any failure, or when lockerd is missing without
# LOCKERD_SKIP=1.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/../.." && pwd)
export LOCKERD_REPO="$repo"
export LOCKERD_BIN="${LOCKERD_BIN:-$repo/bin/lockerd}"

if [ "${LOCKERD_SKIP:-0}" != 1 ] && [ ! -x "$LOCKERD_BIN" ]; then
    echo "test/elixir/run.sh: lockerd executable not found: $LOCKERD_BIN" >&2
    echo "test/elixir/run.sh: build it (make), or set LOCKERD_SKIP=1 to use BEAM masters" >&2
    exit 2
fi

# REBAR_BASE_DIR: one build tree per OTP release (scripts/test-otp.sh).
build="${REBAR_BASE_DIR:-$repo/_build}/exunit"
ebin="$build/ebin"
export LOCKERD_LOG_DIR="$build/logs"
rm -rf "$ebin"
mkdir -p "$ebin" "$LOCKERD_LOG_DIR"

erlc +debug_info -o "$ebin" "$repo"/test/erlang/lkr.erl "$repo"/test/erlang/lkr_server.erl "$repo"/test/erlang/locker.erl \
    "$repo"/test/erlang/lockerd_ct.erl
elixirc --ignore-module-conflict -pa "$ebin" -o "$ebin" "$here"/locker_test_registry.ex "$here"/locker_test_server.ex

. "$repo/scripts/lib.sh"
ensure_epmd loopback
# lockerd processes this run started and a crashed VM left behind
track_pids "$build/lockerd.pids"
trap kill_tracked EXIT

echo "lockerd logs: $LOCKERD_LOG_DIR"
cd "$repo"
elixir --sname "lkr_ex_$$" --cookie lockerd_test \
    --erl "-kernel inet_dist_use_interface {127,0,0,1}" \
    -pa "$ebin" "$here/registry_test.exs"

# Read your own registration: a replica finds the name it registered at
# once (lockerd masters, default options), and the control against BEAM
# masters pushing every 100 ms misses (LOCKERD_SKIP=1: the control only).
elixir --sname "lkr_exi_$$" --cookie lockerd_test \
    --erl "-kernel inet_dist_use_interface {127,0,0,1}" \
    -pa "$ebin" "$here/immediate_lookup_test.exs"

# The example Mix project (examples/elixir_registry) against three lockerd
# masters: it must run to its end.
if [ "${LOCKERD_SKIP:-0}" != 1 ]; then
    LOCKERD_BIN="$LOCKERD_BIN" "$repo/examples/elixir_registry/run.sh"
fi

# The C client library's example service (bin/locker-echo) called through
# the registry; needs the tools next to LOCKERD_BIN (make all).
if [ "${LOCKERD_SKIP:-0}" != 1 ]; then
    elixir --sname "lkr_exe_$$" --cookie lockerd_test \
        --erl "-kernel inet_dist_use_interface {127,0,0,1}" \
        -pa "$ebin" "$here/echo_test.exs"
fi
