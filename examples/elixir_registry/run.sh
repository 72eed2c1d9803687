#!/usr/bin/env bash
# Run the example: three lockerd masters on this host, and this Mix project
# on a BEAM node that joins them as a replica.
#
#   examples/elixir_registry/run.sh
#
# LOCKERD_BIN: the lockerd executable (default: bin/lockerd of this
# repository; build it with make). LOCKERD_ARGS: extra lockerd options.
# Logs of the masters go to _build/lockerd/. Exits non-zero if anything
# fails. Only the lockerd processes started here are stopped at the end.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/../.." && pwd)
lockerd=${LOCKERD_BIN:-$repo/bin/lockerd}
cookie=lockerd_example
host=$(hostname -s)
logs=$here/_build/lockerd
locker_src=$here/_build/locker_src

[ -x "$lockerd" ] || { echo "run.sh: no lockerd at $lockerd (run make)" >&2; exit 2; }

# The `locker` API on the app node: the project's Erlang implementation of
# the library (test/erlang: the locker module and the lkr, lkr_server
# modules behind it), copied where mix.exs looks for Erlang sources so
# that Mix compiles it into the app. (A code path given with -pa is not
# enough: Mix 1.15 and later prune it.) An application using the
# wooga/locker library itself has it as a dependency instead.
mkdir -p "$locker_src" "$logs"
cp "$repo"/test/erlang/locker.erl "$repo"/test/erlang/lkr.erl \
    "$repo"/test/erlang/lkr_server.erl "$locker_src/"

cd "$here"
mix compile

# epmd, unless one runs already (started as erl starts it).
if ! epmd -names >/dev/null 2>&1; then
    epmd -daemon
    for _ in $(seq 50); do epmd -names >/dev/null 2>&1 && break; sleep 0.1; done
fi

pids=()
stop_masters() {
    for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
    for p in "${pids[@]}"; do wait "$p" 2>/dev/null || true; done
}
trap stop_masters EXIT

masters=()
for i in 1 2 3; do masters+=("example${i}_$$@$host"); done
list=$(IFS=,; echo "${masters[*]}")
for m in "${masters[@]}"; do
    # shellcheck disable=SC2086  # LOCKERD_ARGS is a list of options
    "$lockerd" -sname "${m%@*}" -setcookie "$cookie" --listen 127.0.0.1 \
        --masters "$list" --state-file none ${LOCKERD_ARGS:-} >"$logs/${m%@*}.log" 2>&1 &
    pids+=($!)
done

# The masters are ready once epmd knows them.
for m in "${masters[@]}"; do
    for _ in $(seq 100); do
        epmd -names | grep -q "^name ${m%@*} " && break
        sleep 0.1
    done
done

elixir --sname "app_$$" --cookie "$cookie" \
    --erl "-kernel inet_dist_use_interface {127,0,0,1}" \
    -S mix run --no-compile -e 'LockerdExample.main(System.argv())' -- "${masters[@]}"
