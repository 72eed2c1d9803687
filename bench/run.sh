#!/usr/bin/env bash
# `make bench`: lockerd vs the BEAM locker server, side by side.
# Builds what it needs (bin/lockerd, bin/liblocker.a, the C generator
# build/bench/lkc_bench, the Erlang modules into build/bench/ebin), starts
# epmd if needed (loopback) and runs bench/lockerd_bench.erl, which starts
# and stops every node itself. Figures: stdout, bench/results/latest.json,
# bench/results/latest.txt, bench/results/lock_latency_c64.svg (gnuplot).
#
# Environment: BENCH_RUNS (3), BENCH_SECONDS (10), BENCH_QUICK=1 (tiny),
# BENCH_LEASES (1000000), BENCH_CONC (1,16,64,256), BENCH_SCENARIOS
# (1,2,3,4,5,6), BENCH_OUT (bench/results), BENCH_LOCKERD_ARGS (extra
# lockerd options, e.g. "--no-eager-push"), BENCH_COALESCE_US (unset: none;
# else scenario 1 again on lockerd with that coalescing, 0 is off),
# BENCH_SPLIT (1), BENCH_PACED_RATE (2000), BENCH_CLIENT_ARGS (extra erl
# flags of the BEAM client node, both clusters, e.g. "+sbwt none"),
# BENCH_PERF_DIR and BENCH_PERF_EVENTS (perf of the client node per phase),
# BENCH_CAP_WINDOW (256), BENCH_INSERT_WINDOW (1000), LOCKERD_BIN.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/.." && pwd)
cd "$repo"
export LOCKERD_REPO="$repo"
out="${BENCH_OUT:-$repo/bench/results}"
mkdir -p "$out/logs" build/bench/ebin

make -s all
# A private copy: a rebuild of bin/lockerd during the run (other work on
# this tree) then neither changes the binary under test nor hides its
# symbols from perf.
if [ -z "${LOCKERD_BIN:-}" ]; then
    cp bin/lockerd build/bench/lockerd
    export LOCKERD_BIN="$repo/build/bench/lockerd"
fi
EI_INC=$(erl -noshell -eval 'io:format("~s", [code:lib_dir(erl_interface, include)]), halt().')
cc -std=c11 -D_GNU_SOURCE -Wall -Wextra -Werror -O2 -g -I. -I"$EI_INC" \
    bench/lkc_bench.c bin/liblocker.a -lssl -lcrypto -lpthread -o build/bench/lkc_bench
export LKC_BENCH_BIN="$repo/build/bench/lkc_bench"
erlc -o build/bench/ebin test/erlang/lockerd_ct.erl test/erlang/lkr.erl \
    test/erlang/lkr_server.erl test/erlang/locker.erl bench/bench_load.erl bench/lockerd_bench.erl

. "$repo/scripts/lib.sh"
ensure_epmd loopback
# lockerd and generator pids, for cleanup after a crashed driver VM
track_pids "$out/logs/pids"
trap kill_tracked EXIT

erl -noshell -sname "lockerd_bench_$$" -setcookie lockerd_bench \
    -kernel inet_dist_use_interface '{127,0,0,1}' -kernel logger_level warning -kernel prevent_overlapping_partitions false \
    -pa "$repo/build/bench/ebin" -eval 'lockerd_bench:main()' 2>&1 | tee "$out/logs/bench.log"
exit "${PIPESTATUS[0]}"
