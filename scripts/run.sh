#!/usr/bin/env bash
# Install what is missing, build, and run lockerd in the foreground on a
# sensible default: epmd started if it is not running, node
# locker@<short host> as its own single master (w=1), cookie from
# ~/.erlang.cookie (created like erl does if missing). Extra arguments are
# passed to lockerd and override these defaults (e.g. -sname other).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
make -s -j"$(nproc)" bin/lockerd
host=$(hostname -s)
. scripts/lib.sh
ensure_epmd
exec bin/lockerd -sname locker --masters "locker@$host" "$@"
