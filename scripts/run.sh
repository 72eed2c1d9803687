#!/usr/bin/env bash
# Install what is missing, build, and run lockerd in the foreground on a
# sensible default: epmd started if it is not running, node
# locker@<short host> as its own single master (w=1), cookie from
# ~/.erlang.cookie (created like erl does if missing). Extra arguments are
# passed to lockerd and override these defaults (e.g. -sname other).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
make -s -j"$(nproc)" all   # lockerd, lockerctl, the client library and its tools
host=$(hostname -s)
. scripts/lib.sh
ensure_epmd
# The node is its own master under whatever name it is given (-sname X
# makes X@host the master), unless --masters says otherwise; lockerd warns
# when a master is missing from its own list.
name=locker masters=
args=("$@")
for ((i = 0; i < ${#args[@]}; i++)); do
    case "${args[$i]}" in
        -sname) name=${args[$((i + 1))]:-locker} ;;
        --masters) masters=set ;;
    esac
done
if [ -n "$masters" ]; then
    exec bin/lockerd -sname "$name" "$@"
fi
exec bin/lockerd -sname "$name" --masters "$name@$host" "$@"
