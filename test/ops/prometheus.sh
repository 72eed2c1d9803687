#!/usr/bin/env bash
# Scraped by a real Prometheus: two lockerd masters with --metrics-listen,
# Debian's prometheus server on loopback with a temporary config and data
# directory scraping them every second, and checks through its HTTP query
# API that lockerd_leases follows the locks lockerctl takes and releases;
# promtool check metrics passes on each page, and the health probes answer.
# About 20 s.
set -euo pipefail
cd "$(dirname "$0")/../.."
bin=${LOCKERD_BIN:-bin/lockerd}
ctl=${LOCKERCTL_BIN:-$(dirname "$bin")/lockerctl}
command -v prometheus >/dev/null && command -v promtool >/dev/null ||
    { echo "prometheus: needs Debian's prometheus package (scripts/setup.sh)" >&2; exit 1; }
. scripts/lib.sh
ensure_epmd loopback
tmp=$(mktemp -d /tmp/lockerd-prom-XXXXXX)
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null; rm -rf "$tmp"; }
trap cleanup EXIT
fail() { echo "prometheus: FAIL: $*" >&2; tail -n 20 "$tmp"/*.log >&2 || true; exit 1; }
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
host=$(hostname -s)
a=prma$$ b=prmb$$ ck=promck
masters="$a@$host,$b@$host"

targets=()
for n in $a $b; do
    "$bin" -sname "$n" -setcookie $ck --masters "$masters" --state-file none \
        --metrics-listen 127.0.0.1:0 2> "$tmp/$n.log" & pids+=($!)
done
for n in $a $b; do
    for _ in $(seq 50); do grep -q 'metrics and health on' "$tmp/$n.log" && break; sleep 0.1; done
    t=$(sed -n 's|.*metrics and health on http://\([^/]*\)/metrics.*|\1|p' "$tmp/$n.log")
    [ -n "$t" ] || fail "$n did not report its metrics address"
    targets+=("'$t'")
done

# Health: both serve; ready once they see each other (W=2 of 2; the
# readiness probe dials a master not connected yet).
for t in "${targets[@]}"; do
    t=${t//\'/}
    [ "$(curl -s -o /dev/null -w '%{http_code}' "http://$t/healthz")" = 200 ] || fail "healthz $t"
    ok=
    for _ in $(seq 50); do
        [ "$(curl -s -o /dev/null -w '%{http_code}' "http://$t/readyz")" = 200 ] && { ok=1; break; }
        sleep 0.2
    done
    [ -n "$ok" ] || fail "readyz $t never 200: $(curl -s "http://$t/readyz")"
    [ "$(curl -s -o /dev/null -w '%{http_code}' -X DELETE "http://$t/metrics")" = 405 ] ||
        fail "DELETE not 405"
    curl -s "http://$t/metrics" | promtool check metrics || fail "promtool check metrics on $t"
done

pport=$(free_port)
tlist=$(IFS=,; echo "${targets[*]}")
cat > "$tmp/prometheus.yml" <<YML
global:
  scrape_interval: 1s
  evaluation_interval: 1s
scrape_configs:
  - job_name: lockerd
    static_configs:
      - targets: [$tlist]
YML
promtool check config "$tmp/prometheus.yml" >/dev/null || fail "promtool check config"
prometheus --config.file="$tmp/prometheus.yml" --storage.tsdb.path="$tmp/data" \
    --web.listen-address="127.0.0.1:$pport" --log.level=warn > "$tmp/prometheus.log" 2>&1 &
pids+=($!)
api="http://127.0.0.1:$pport/api/v1"

# The scalar value of an instant query ("" while there is none).
q() {
    curl -s --get "$api/query" --data-urlencode "query=$1" | python3 -c '
import json, sys
r = json.load(sys.stdin)["data"]["result"]
print(r[0]["value"][1] if r else "")' 2>/dev/null || true
}
# Wait until query $1 gives $2 (at most 20 s).
await() {
    local v=
    for _ in $(seq 100); do v=$(q "$1"); [ "$v" = "$2" ] && return 0; sleep 0.2; done
    fail "$1 = '$v', wanted $2"
}

await 'count(up{job="lockerd"} == 1)' 2
await 'sum(lockerd_leases)' 0
for k in 1 2 3; do
    "$ctl" -setcookie $ck --masters "$masters" lock "{prom,$k}" v --lease 60000 >/dev/null ||
        fail "lock {prom,$k}"
done
# Every master holds every lease: 3 keys on 2 masters.
await 'sum(lockerd_leases)' 6
await 'min(lockerd_leases)' 3
"$ctl" -setcookie $ck --masters "$masters" release "{prom,2}" v >/dev/null || fail "release"
await 'max(lockerd_leases)' 2
await 'sum(lockerd_votes_total{result="ok"})' 8  # 3 locks + 1 release, 2 masters
await 'min(lockerd_ready)' 1
echo "prometheus: scraped 2 masters; lockerd_leases 0 -> 3 -> 2 per master through the query API: ok"
echo "1 passed, 0 failed"
