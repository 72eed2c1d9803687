#!/usr/bin/env bash
# Record real distribution traffic and turn it into fuzz seeds under
# test/fuzz/corpus/<target>/ (see fz_capture.erl for what is sent).
#
# Starts, on loopback only: a BEAM replica node, a lockerd master (its
# replica being that node) and a hidden BEAM client, all with epmd module
# fz_capture, whose proxies record each connection's bytes. Needs epmd
# (started as a daemon if absent) and a built lockerd.
#
# The raw seeds are then reduced with libFuzzer's -merge=1 (inputs that add
# no coverage are dropped; every handshake seed is kept), which needs the
# fuzz targets: this script runs `make fuzz-build` first.
#
# usage: test/fuzz/capture.sh [path/to/lockerd]     (default bin/lockerd)
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
lockerd=${1:-$root/bin/lockerd}
host=$(hostname -s)
work=$(mktemp -d /tmp/fz_capture.XXXXXX)
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT

erlc -o "$work" "$here/fz_capture.erl"
pgrep -x epmd >/dev/null || epmd -daemon
export FZ_CAPTURE_DIR=$work/cap
erl_node=(erl -setcookie fuzzcookie -pa "$work" -epmd_module fz_capture -noshell
          -kernel inet_dist_use_interface '{127,0,0,1}')

registered() {
  for _ in $(seq 50); do epmd -names | grep -q "name $1 " && return 0; sleep 0.1; done
  echo "capture: $1 did not register with epmd" >&2
  return 1
}

"${erl_node[@]}" -sname fzcap_rep -s fz_capture replica > "$work/rep.log" 2>&1 &
pids+=($!)
registered fzcap_rep
"$lockerd" -sname fzcap_lk -setcookie fuzzcookie --listen 127.0.0.1 --push-interval 50 \
    --masters "fzcap_lk@$host" --replicas "fzcap_rep@$host" > "$work/lockerd.log" 2>&1 &
pids+=($!)
registered fzcap_lk
"${erl_node[@]}" -sname fzcap_cli -hidden -eval 'fz_capture:client(), halt().'

erl -noshell -pa "$work" \
    -eval "fz_capture:seeds(\"$work/cap\", \"$work/seeds\"), halt()."
make -s -C "$root" fuzz-build
for d in "$work"/seeds/*/; do
  t=$(basename "$d")
  rm -rf "$here/corpus/$t"
  mkdir -p "$here/corpus/$t"
  case $t in
    hs_*) cp "$d"/* "$here/corpus/$t/" ;;
    *) nice -n 19 "$root/build/fuzz/fuzz_$t" -merge=1 "$here/corpus/$t" "$d" \
         > "$work/merge_$t.log" 2>&1 ;;
  esac
  printf '%-14s %4d files %7d bytes (captured %d)\n' "$t" "$(find "$here/corpus/$t" -type f | wc -l)" \
    "$(find "$here/corpus/$t" -type f -printf '%s\n' | awk '{s += $1} END {print s}')" \
    "$(find "$d" -type f | wc -l)"
done
