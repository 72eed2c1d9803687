#!/usr/bin/env bash
# Runs the Erlang Common Test suites (test/erlang/*_SUITE.erl) with rebar3,
# offline, against lockerd and BEAM peer nodes on loopback.
#
# Environment:
#   LOCKERD_BIN   lockerd executable (default <repo>/bin/lockerd)
#   SUITES        suites to run, comma or space separated; "calls" stands for
#                 lockerd_calls_SUITE (default: every suite)
#   LOCKERD_SKIP  1: skip the groups that need lockerd (BEAM groups only)
#
# Exits non-zero when a test fails or is auto-skipped, when lockerd is
# missing without LOCKERD_SKIP=1, and when lockerd groups were skipped
# without LOCKERD_SKIP=1.
set -uo pipefail

here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/../.." && pwd)
export LOCKERD_REPO="$repo"
export LOCKERD_BIN="${LOCKERD_BIN:-$repo/bin/lockerd}"
skip="${LOCKERD_SKIP:-0}"
export LOCKERD_SKIP="$skip"

if [ "$skip" != 1 ] && [ ! -x "$LOCKERD_BIN" ]; then
    echo "test/erlang/run.sh: lockerd executable not found: $LOCKERD_BIN" >&2
    echo "test/erlang/run.sh: build it (make), or set LOCKERD_SKIP=1 to run the BEAM groups only" >&2
    exit 2
fi

suites=()
for s in ${SUITES:-$(cd "$here" && ls *_SUITE.erl | sed 's/\.erl$//')}; do
    s=${s//,/ }
    for name in $s; do
        name=${name%.erl}
        if [ -f "$here/lockerd_${name}_SUITE.erl" ]; then
            name="lockerd_${name}_SUITE"
        elif [ -f "$here/${name}_SUITE.erl" ]; then
            name="${name}_SUITE"
        elif [ ! -f "$here/$name.erl" ]; then
            echo "test/erlang/run.sh: no such suite: $name" >&2
            exit 2
        fi
        suites+=("$name")
    done
done
suite_list=$(IFS=,; echo "${suites[*]}")

. "$repo/scripts/lib.sh"
ensure_epmd loopback
# REBAR_BASE_DIR: one build tree per OTP release (scripts/test-otp.sh).
track_pids "${REBAR_BASE_DIR:-$repo/_build}/lockerd_ct.pids"
out=$(mktemp)
cleanup() {
    # lockerd processes this run started and a crashed test VM left behind
    kill_tracked
    rm -f "$out"
}
trap cleanup EXIT

echo "lockerd: $LOCKERD_BIN (LOCKERD_SKIP=$skip); suites: $suite_list"
cd "$repo" || exit 2
REBAR_COLOR=none ERL_FLAGS="-kernel inet_dist_use_interface {127,0,0,1} ${ERL_FLAGS:-}" \
    rebar3 ct --sname "lockerd_ct_$$" --setcookie lockerd_test --suite "$suite_list" 2>&1 | tee "$out"
rc=${PIPESTATUS[0]}

echo
echo "==== Common Test summary ===="
grep -E '^(Failed|Skipped|Passed|All) ' "$out" || echo "(no summary line from rebar3)"
grep -E 'Results written to' "$out" || true
# Failed cases again here, at the end, where a truncated log still shows
# them (rebar3 prints them where they happen, amid the progress dots).
if grep -qE '^%%% .* ==> ' "$out"; then
    echo "---- failed cases ----"
    sed 's/\x1b\[[0-9;]*m//g' "$out" |
        awk '/^%%% .* ==> / { on = 1; print; next } on && /^ / { print; next } { on = 0 }' |
        cut -c1-400 | head -n 60
fi

# "Skipped N (User, Auto) tests"
read -r user_skipped auto_skipped < <(sed -nE 's/.*Skipped [0-9]+ \(([0-9]+), ([0-9]+)\) tests.*/\1 \2/p' "$out" | tail -n 1)
user_skipped=${user_skipped:-0}
auto_skipped=${auto_skipped:-0}

if [ "$rc" -ne 0 ]; then
    echo "FAILED: rebar3 ct exited with status $rc"
    exit 1
fi
if [ "$auto_skipped" -ne 0 ]; then
    echo "FAILED: $auto_skipped test(s) auto-skipped (a setup function failed)"
    exit 1
fi
if [ "$skip" != 1 ] && [ "$user_skipped" -ne 0 ]; then
    echo "FAILED: $user_skipped test(s) skipped although LOCKERD_SKIP is not set"
    exit 1
fi
if ! grep -qE '^(All [0-9]+ tests passed|.*Passed [1-9][0-9]* tests)' "$out"; then
    echo "FAILED: no test passed"
    exit 1
fi
echo "OK"
