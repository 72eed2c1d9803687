#!/usr/bin/env bash
# lockerd under a service manager's notify protocol, with a real
# $NOTIFY_SOCKET listener (notify_listener.py): READY=1 (with STATUS and
# MAINPID) once lockerd is listening and registered with epmd, WATCHDOG=1
# pings at half of $WATCHDOG_USEC, STOPPING=1 on SIGTERM; under a
# $JOURNAL_STREAM that is its stderr, log lines carry a syslog priority
# and no timestamp; --log-file is reopened on SIGHUP. About 5 s.
set -euo pipefail
cd "$(dirname "$0")/../.."
bin=${LOCKERD_BIN:-bin/lockerd}
. scripts/lib.sh
ensure_epmd loopback
tmp=$(mktemp -d /tmp/lockerd-notify-XXXXXX)
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; rm -rf "$tmp"; }
trap cleanup EXIT
fail() { echo "notify: FAIL: $*" >&2; for f in "$tmp"/*.log "$tmp"/msgs; do [ -f "$f" ] && { echo "--- $f"; cat "$f"; }; done >&2; exit 1; }
host=$(hostname -s)
node=ntfy$$

python3 test/ops/notify_listener.py "$tmp/notify.sock" "$tmp/msgs" 8 & pids+=($!)
for _ in $(seq 50); do [ -S "$tmp/notify.sock" ] && break; sleep 0.1; done
[ -S "$tmp/notify.sock" ] || fail "listener did not bind"

# stderr is a file whose device:inode goes in JOURNAL_STREAM, as journald
# sets it for the stream it hands a service.
: > "$tmp/journal.log"
js=$(stat -c '%d:%i' "$tmp/journal.log")
NOTIFY_SOCKET="$tmp/notify.sock" WATCHDOG_USEC=400000 JOURNAL_STREAM="$js" \
    "$bin" -sname "$node" -setcookie notifyck --masters "$node@$host" \
    --state-file none 2>> "$tmp/journal.log" & lpid=$!
pids+=($lpid)
for _ in $(seq 50); do grep -q READY=1 "$tmp/msgs" 2>/dev/null && break; sleep 0.1; done
grep -q "^READY=1|STATUS=serving $node@$host on port [0-9]*|MAINPID=$lpid$" "$tmp/msgs" ||
    fail "no READY=1 with STATUS and MAINPID=$lpid"
epmd -names | grep -q "name $node " || fail "READY=1 before the epmd registration"
sleep 1
pings=$(grep -c '^WATCHDOG=1$' "$tmp/msgs" || true)
[ "$pings" -ge 3 ] || fail "$pings watchdog pings in 1 s at a 200 ms interval"
kill -TERM "$lpid"
wait "$lpid" || fail "lockerd exited non-zero on SIGTERM"
grep -q '^STOPPING=1$' "$tmp/msgs" || fail "no STOPPING=1"
grep -q '^<6>\[info\] lockerd .* ready' "$tmp/journal.log" || fail "journal lines lack <6>"
grep -Eq '^[0-9]{2}:[0-9]{2}:' "$tmp/journal.log" && fail "journal lines carry a timestamp"

# --log-file and SIGHUP: after a rotation the new file gets the lines.
"$bin" -sname "${node}b" -setcookie notifyck --state-file none \
    --log-file "$tmp/lockerd.log" 2> "$tmp/stderr.log" & lpid=$!
pids+=($lpid)
for _ in $(seq 50); do grep -q ready "$tmp/lockerd.log" 2>/dev/null && break; sleep 0.1; done
grep -Eq '^[0-9]{2}:[0-9]{2}:[0-9]{2}\.[0-9]{3} \[info\] lockerd .* ready' "$tmp/lockerd.log" ||
    fail "--log-file lacks the start line"
mv "$tmp/lockerd.log" "$tmp/lockerd.log.1"
kill -HUP "$lpid"
for _ in $(seq 50); do grep -q reopened "$tmp/lockerd.log" 2>/dev/null && break; sleep 0.1; done
grep -q 'SIGHUP: log file reopened' "$tmp/lockerd.log" || fail "SIGHUP did not reopen the log"
kill -0 "$lpid" || fail "SIGHUP ended lockerd"
kill -TERM "$lpid"
wait "$lpid" || fail "lockerd exited non-zero"
grep -q stopped "$tmp/lockerd.log" || fail "the reopened log lacks the last lines"
[ -s "$tmp/stderr.log" ] && fail "lines went to stderr despite --log-file"
echo "notify: READY=1, $pings watchdog pings, STOPPING=1, journal priorities, SIGHUP reopen: ok"
echo "1 passed, 0 failed"
