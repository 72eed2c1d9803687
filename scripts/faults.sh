#!/usr/bin/env bash
# Fault-injection runs (README "Fault-injection runs"): locker masters
# (lockerd, or lockerd and the BEAM test server) under kill -9 / restart,
# SIGSTOP / SIGCONT and network partitions, clients taking, extending and
# releasing a few hot keys, every operation recorded, and a checker that
# proves from the history that no key had two holders at once and no
# acknowledged release or extend was lost.
#
#   scripts/faults.sh            full: 3 and 5 masters, all-lockerd and mixed
#   scripts/faults.sh --smoke    bounded (about two minutes; CI runs it)
#   scripts/faults.sh --check    only the checker's and lkr_server's unit tests
#   scripts/faults.sh --control-exit  lockerd masters without --release-on-exit:
#                                succeeds only when the checker finds dead
#                                holders whose leases were kept
#   scripts/faults.sh --control  restarts without quiet period (lockerd masters
#                                also lose their state files): succeeds only
#                                when the checker finds, in every run, each
#                                violation those restarts make possible
#                                (mutual_exclusion; stale_token where the C
#                                clients lock with fencing tokens)
#
# Each node (every master, and the client node) gets a network namespace of
# its own with an address on a bridge and its own epmd; partitions are
# blackhole routes inside those namespaces. Where namespaces cannot be
# created (not root, a container without the privilege; or FAULTS_NETNS=0)
# every node runs on 127.0.0.1 with the host's epmd and partitions are
# skipped (the output says so). Namespaces, their processes and everything
# else this script starts are removed on exit, also after a failure.
#
# Environment: FAULTS_RUNS ("3:lockerd,3:mixed,5:lockerd,5:mixed" full,
# "3:lockerd,5:mixed" smoke), FAULTS_SECONDS per run (180 full, 25 smoke),
# FAULTS_UNSAFE=1 (restarted masters without quiet period: the checker must
# then report violations), FAULTS_RELEASE_ON_EXIT=0 (lockerd masters without
# --release-on-exit), FAULTS_MORTALS (2 holder-killing clients), FAULTS_NETNS=0, FAULTS_SEED, FAULTS_CLIENTS (6
# Erlang clients), FAULTS_C_THREADS (3 C client threads; 0: no C client),
# FAULTS_KEYS (4), FAULTS_LEASE_MIN/MAX (600/1500 ms), FAULTS_TIMEOUT
# (400 ms per call phase), FAULTS_TICKTIME (6 s), FAULTS_OUT (build/faults),
# LOCKERD_BIN.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/.." && pwd)
cd "$repo"
. scripts/lib.sh

what=full
case "${1:-}" in
    "") ;;
    --smoke) what=smoke ;;
    --check) what=check ;;
    --control) what=control ;;
    --control-exit) what=control_exit ;;
    *) echo "usage: scripts/faults.sh [--smoke | --check | --control | --control-exit]" >&2; exit 2 ;;
esac

out="${FAULTS_OUT:-$repo/build/faults}"
ebin="$out/ebin"
mkdir -p "$ebin"
rm -rf "$out/logs" "$out/state" "$out"/run*.history
mkdir -p "$out/logs" "$out/state"

erlc -o "$ebin" test/erlang/lkr.erl test/erlang/lkr_server.erl test/erlang/locker.erl test/faults/*.erl

echo "== unit tests: faults_check (hand-made histories), lkr_server safe restarts"
erl -noshell -pa "$ebin" -kernel logger_level emergency -eval '
    R = eunit:test([faults_check_tests, lkr_server_recovery_tests], []),
    halt(case R of ok -> 0; _ -> 1 end).'
[ "$what" = check ] && exit 0

make -s all build/faults/faults_cclient
export LOCKERD_BIN="${LOCKERD_BIN:-$repo/bin/lockerd}"
if [ "${FAULTS_C_THREADS:-3}" != 0 ]; then
    export FAULTS_CCLIENT="$repo/build/faults/faults_cclient"
fi
if [ "$what" = smoke ]; then
    export FAULTS_RUNS="${FAULTS_RUNS:-3:lockerd,5:mixed}" FAULTS_SECONDS="${FAULTS_SECONDS:-25}"
elif [ "$what" = control ]; then
    export FAULTS_RUNS="${FAULTS_RUNS:-3:lockerd,3:mixed}" FAULTS_SECONDS="${FAULTS_SECONDS:-20}"
    export FAULTS_UNSAFE=1
elif [ "$what" = control_exit ]; then
    export FAULTS_RUNS="${FAULTS_RUNS:-3:lockerd}" FAULTS_SECONDS="${FAULTS_SECONDS:-20}"
    export FAULTS_RELEASE_ON_EXIT=0
else
    export FAULTS_RUNS="${FAULTS_RUNS:-3:lockerd,3:mixed,5:lockerd,5:mixed}"
    export FAULTS_SECONDS="${FAULTS_SECONDS:-180}"
fi
export FAULTS_OUT="$out"
cookie="faults_$(od -An -N8 -tx1 /dev/urandom | tr -d ' \n')"

# ---- processes and namespaces, always cleaned up

bg_pids=()
namespaces=()
track_pids "$out/logs/pids"
cleanup() {
    set +e
    kill_tracked
    for pid in "${bg_pids[@]}"; do kill -KILL "$pid" 2>/dev/null; done
    for ns in "${namespaces[@]}"; do
        # only this run ever starts processes in its namespaces
        for pid in $(ip netns pids "$ns" 2>/dev/null); do kill -KILL "$pid" 2>/dev/null; done
        ip netns del "$ns" 2>/dev/null
    done
}
trap cleanup EXIT
trap 'exit 130' INT TERM

prefix="lkf$$"
# Addresses inside the run's own namespaces: they never reach the host's
# network, so they cannot clash with it or with another run.
subnet=10.213.7
client_ip=$subnet.100
master_ips=$subnet.11,$subnet.12,$subnet.13,$subnet.14,$subnet.15

# A bridge in a hub namespace; per node a namespace with a veth into it,
# lo up, an address and its own epmd. Any step failing: non-zero (the
# caller removes what was made and falls back to loopback).
add_node_ns() {
    local name=$1 addr=$2 ns="$prefix-$1"
    ip netns add "$ns" || return 1
    namespaces+=("$ns")
    ip -n "$ns" link set lo up &&
        ip link add eth0 netns "$ns" type veth peer name "v-$name" netns "$prefix-hub" &&
        ip -n "$prefix-hub" link set "v-$name" master br0 up &&
        ip -n "$ns" addr add "$addr/24" dev eth0 &&
        ip -n "$ns" link set eth0 up &&
        ip -n "$ns" route add blackhole 192.0.2.1/32 &&
        ip -n "$ns" route flush type blackhole || return 1
    ip netns exec "$ns" epmd &
    bg_pids+=($!)
    disown $!
}

wait_epmd() {
    local ns=$1
    for _ in $(seq 100); do
        ip netns exec "$ns" epmd -names >/dev/null 2>&1 && return 0
        sleep 0.1
    done
    echo "faults: epmd did not start in namespace $ns" >&2
    return 1
}

setup_netns() {
    [ "${FAULTS_NETNS:-1}" != 0 ] && [ "$(id -u)" -eq 0 ] || return 1
    ip netns add "$prefix-hub" 2>/dev/null || return 1
    namespaces+=("$prefix-hub")
    ip -n "$prefix-hub" link add br0 type bridge && ip -n "$prefix-hub" link set br0 up ||
        return 1
    add_node_ns c "$client_ip" || return 1
    local i=1 mip
    for mip in ${master_ips//,/ }; do
        add_node_ns "m$i" "$mip" || return 1
        i=$((i + 1))
    done
    wait_epmd "$prefix-c" || return 1
    for i in 1 2 3 4 5; do wait_epmd "$prefix-m$i" || return 1; done
}

dist_args=(+c false -noshell -setcookie "$cookie" -kernel net_ticktime "${FAULTS_TICKTIME:-6}"
           -kernel prevent_overlapping_partitions false -kernel logger_level notice
           -connect_all false -pa "$ebin" -eval 'faults_run:main()')

if setup_netns 2>"$out/logs/netns.err"; then
    export FAULTS_MODE=netns FAULTS_NS_PREFIX="$prefix" FAULTS_CLIENT_IP="$client_ip"
    export FAULTS_MASTER_IPS="$master_ips"
    driver=(ip netns exec "$prefix-c" erl -name "faults@$client_ip" "${dist_args[@]}")
else
    cleanup
    set -e
    bg_pids=() namespaces=()
    echo "faults: no network namespaces (FAULTS_NETNS=0, not root, or no privilege):"
    [ -s "$out/logs/netns.err" ] && sed 's/^/faults:   /' "$out/logs/netns.err" | head -n 5
    echo "faults: every node on 127.0.0.1 with the host's epmd; partitions skipped"
    if [ "${FAULTS_NETNS:-1}" != 0 ]; then
        echo "faults: ********************************************************************"
        echo "faults: WARNING: NO PARTITIONS WILL BE INJECTED: this run cannot pass as a full"
        echo "faults: fault run; it fails at the end (FAULTS_NETNS=0 asks for loopback on purpose)"
        echo "faults: ********************************************************************"
        no_netns=1
    fi
    export FAULTS_MODE=loopback
    ensure_epmd loopback
    driver=(erl -name "faults_$$@127.0.0.1" -kernel inet_dist_use_interface '{127,0,0,1}'
            "${dist_args[@]}")
fi

set +e
"${driver[@]}" 2>&1 | tee "$out/logs/faults.log"
rc=${PIPESTATUS[0]}
set -e
# The driver exits 0 (no violation), 1 (violations) or 2 (a run broke).
if [ "$what" = control ] || [ "$what" = control_exit ]; then
    case $rc in
        1) echo "faults: control OK: every run showed the violations its setup makes possible, and the checker found them"
           exit 0 ;;
        0|3) echo "faults: control FAILED: a run did not show the violations its unsafe restarts make possible"
           exit 1 ;;
    esac
fi
if [ "$rc" -ne 0 ]; then
    echo "faults: FAILED (exit $rc); logs in $out/logs, histories in $out/run*.history"
fi
if [ "$rc" -eq 0 ] && [ "${no_netns:-0}" = 1 ]; then
    echo "faults: FAILED: no violation, but no partition was injected (no network namespaces)"
    exit 4
fi
exit "$rc"
