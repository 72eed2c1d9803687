#!/usr/bin/env bash
# What the default eager push costs writes (make bench-eager): three
# lockerd masters and one lockerd replica on loopback, the C client's
# lock+release pairs (64 in flight, distinct keys) for EAGER_SECONDS (8),
# once with the default (each write's entry leaves for the replica before
# its commit reply) and once with --no-eager-push (interval push only),
# EAGER_RUNS (2) times, alternating. Prints lkc_bench's JSON line per pass.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/.." && pwd)
cd "$repo"
. scripts/lib.sh
ensure_epmd loopback
make -s all
mkdir -p build/bench
cc -std=c11 -D_GNU_SOURCE -O2 -g -I. bench/lkc_bench.c bin/liblocker.a -lssl -lcrypto -lpthread \
    -o build/bench/lkc_bench
out=$(mktemp -d)
track_pids "$out/pids"
trap 'kill_tracked; rm -rf "$out"' EXIT
host=$(hostname -s)
cookie="eager_$$"
tag="ec$$"
masters="${tag}m1@$host,${tag}m2@$host,${tag}m3@$host"
pass() {
    local label=$1; shift
    local pids=()
    for n in m1 m2 m3 r; do
        "$repo/bin/lockerd" -sname "$tag$n" -setcookie "$cookie" --masters "$masters" \
            --replicas "${tag}r@$host" -w 2 --state-file none "$@" >"$out/$n.log" 2>&1 &
        pids+=($!)
        echo "$! $repo/bin/lockerd" >>"$out/pids"
    done
    sleep 1
    printf '%-16s ' "$label"
    build/bench/lkc_bench --masters "$masters" -setcookie "$cookie" -sname "${tag}c" \
        --inflight 64 --seconds "${EAGER_SECONDS:-8}" | tail -n 1
    kill "${pids[@]}"
    wait "${pids[@]}" 2>/dev/null || true
}
for r in $(seq "${EAGER_RUNS:-2}"); do
    pass "eager (default)"
    pass "--no-eager-push" --no-eager-push
done
