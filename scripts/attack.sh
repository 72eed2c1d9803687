#!/usr/bin/env bash
# Hostile-peer floods against lockerd (test/erlang/lockerd_hostile_SUITE)
# with an honest BEAM caller timed throughout, then a table: attack,
# the honest caller's slowest answer and its errors, lockerd's RSS before /
# at peak / after, and the log lines the attack caused.
#
# Environment: ATTACK_SECONDS (default 10) is how long each timed flood
# lasts; `make attack-smoke` (CI) runs them for 1 s. LOCKERD_BIN as for
# test/erlang/run.sh. Exits non-zero when a case fails (its row is still
# printed when it got that far).
set -uo pipefail
here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/.." && pwd)
table="$repo/build/attack.tsv"
mkdir -p "$repo/build"
rm -f "$table"
export ATTACK_SECONDS="${ATTACK_SECONDS:-10}"
LOCKERD_ATTACK_TABLE="$table" SUITES=hostile "$repo/test/erlang/run.sh" > "$repo/build/attack.log" 2>&1
rc=$?
grep -E '^(Failed|Passed|All) |FAILED' "$repo/build/attack.log" || true
echo
echo "attack table (ATTACK_SECONDS=$ATTACK_SECONDS; full output: build/attack.log)"
{
    printf 'attack\thonest max ms\terrors\thonest calls\tRSS before MB\tpeak MB\tafter MB\tlog lines\n'
    [ -f "$table" ] && cat "$table"
} | awk -F'\t' '{ printf "%-56s %8s %6s %7s %7s %7s %7s %6s\n", $1, $2, $3, $4, $5, $6, $7, $8 }'
exit $rc
