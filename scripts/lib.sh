# Shell helpers shared by the test and benchmark drivers (sourced, not run).

# Start epmd unless one answers already, and wait until it does. With
# "loopback" it listens on 127.0.0.1 only (tests and benchmarks), else on
# every address as erl starts it (nodes on other hosts must reach it).
ensure_epmd() {
    if ! epmd -names >/dev/null 2>&1; then
        if [ "${1:-}" = loopback ]; then
            ERL_EPMD_ADDRESS=127.0.0.1 epmd -daemon
        else
            epmd -daemon
        fi
        for _ in $(seq 50); do epmd -names >/dev/null 2>&1 && return 0; sleep 0.1; done
        echo "epmd did not start" >&2
        return 1
    fi
}

# Record the lockerd (and tool) OS pids a run starts in FILE (the Erlang
# harness appends "PID BINARY" lines to $LOCKERD_PIDFILE) so that
# kill_tracked can end them if a test VM crashes. Only a pid whose command
# line still names the recorded binary is killed: never a reused pid.
track_pids() {
    LOCKERD_PIDFILE=$1
    export LOCKERD_PIDFILE
    mkdir -p "$(dirname "$LOCKERD_PIDFILE")"
    : > "$LOCKERD_PIDFILE"
}

kill_tracked() {
    [ -n "${LOCKERD_PIDFILE:-}" ] && [ -r "$LOCKERD_PIDFILE" ] || return 0
    while read -r pid bin; do
        if [ -r "/proc/$pid/cmdline" ] && tr '\0' '\n' < "/proc/$pid/cmdline" | head -n 1 | grep -qxF "$bin"; then
            kill -KILL "$pid" 2>/dev/null || true
        fi
    done < "$LOCKERD_PIDFILE"
}
