#!/usr/bin/env bash
# prometheus_test.sh BUILD_DIR SOURCE_DIR: a real Prometheus (the Debian package's binary, which
# scripts/install-deps installs) scrapes a running `blockcoord host --metrics-port P` every
# second, with deploy/prometheus/alerts.yml loaded: the target comes up, a query returns the
# coordinator count the host was given, and every alert rule evaluates without error against
# the real series. Both servers run on free ports in a temp dir and are stopped on exit.
set -uo pipefail
build=$1
src=$2
bc="$build/blockcoord"
command -v prometheus >/dev/null ||
    { echo "FAIL: prometheus not found: scripts/install-deps installs it (Debian package prometheus)"; exit 1; }
command -v python3 >/dev/null || { echo "FAIL: python3 not found (reads the Prometheus HTTP API)"; exit 1; }
BINS=("$bc")
# shellcheck source=tests/coord_lib.sh
source "$src/tests/coord_lib.sh"
count=7

# api PATH [QUERY]: GET the Prometheus API; prints the value of a one-series instant query
# result ("none" when empty), or for /api/v1/rules one line "health name" per rule.
api() {
    python3 - "$pport" "$@" <<'EOF'
import json, sys, urllib.parse, urllib.request
port, path = sys.argv[1], sys.argv[2]
url = "http://127.0.0.1:%s%s" % (port, path)
if len(sys.argv) > 3:
    url += "?" + urllib.parse.urlencode({"query": sys.argv[3]})
try:
    doc = json.load(urllib.request.urlopen(url, timeout=5))
except Exception as e:
    print("error: %s" % e)
    sys.exit(1)
if doc.get("status") != "success":
    print("error: %s" % doc)
    sys.exit(1)
data = doc["data"]
if "groups" in data:
    for g in data["groups"]:
        for r in g["rules"]:
            print(r.get("health"), r.get("name"), r.get("lastError", ""))
elif not data["result"]:
    print("none")
else:
    print(" ".join(r["value"][1] for r in data["result"]))
EOF
}
wait_for() { # wait_for SECONDS WANT CMD...: until CMD prints WANT; the last output in $got
    local end=$((SECONDS + $1)) want=$2; shift 2
    while :; do
        got=$("$@" 2>&1)
        [ "$got" = "$want" ] && return 0
        [ "$SECONDS" -ge "$end" ] && return 1
        sleep 0.25
    done
}

# ---------------------------------------------------------------- the host
hpid=""
for _ in 1 2 3; do # a free port can be taken between free_port and the bind: retry
    hport=$(free_port)
    "$bc" host --count "$count" --swarm prom-test --metrics-port "$hport" >"$dir/host.out" 2>"$dir/host.err" &
    hpid=$!
    for _ in $(seq 100); do
        grep -qF "hosting $count coordinators" "$dir/host.out" 2>/dev/null && break
        kill -0 "$hpid" 2>/dev/null || break
        sleep 0.05
    done
    grep -qF "Metrics server listening on :$hport" "$dir/host.out" && break
    kill "$hpid" 2>/dev/null; wait "$hpid" 2>/dev/null; hpid=""
done
[ -n "$hpid" ] || { bad "blockcoord host --metrics-port did not start" "$dir/host.out" "$dir/host.err"; exit 1; }
PIDS[host]=$hpid

# ---------------------------------------------------------------- Prometheus
# The rules as shipped, but evaluated every second instead of every 30 s.
sed 's/^\(    interval:\) 30s$/\1 1s/' "$src/deploy/prometheus/alerts.yml" >"$dir/alerts.yml"
grep -q '^    interval: 1s$' "$dir/alerts.yml" || { echo "FAIL: alerts.yml has no group 'interval: 30s' line to shorten"; exit 1; }
cat >"$dir/prometheus.yml" <<EOF
global:
  scrape_interval: 1s
  scrape_timeout: 1s
  evaluation_interval: 1s
rule_files:
  - alerts.yml
scrape_configs:
  - job_name: blockcoord
    metrics_path: /metrics
    static_configs:
      - targets: ['127.0.0.1:$hport']
EOF
ppid_=""
for _ in 1 2 3; do
    pport=$(free_port)
    rm -rf "$dir/tsdb"
    prometheus --config.file="$dir/prometheus.yml" --storage.tsdb.path="$dir/tsdb" \
        --web.listen-address="127.0.0.1:$pport" >"$dir/prom.log" 2>&1 &
    ppid_=$!
    wait_for 20 "Prometheus Server is Ready." \
        python3 -c 'import sys, urllib.request; sys.stdout.write(urllib.request.urlopen(sys.argv[1], timeout=2).read().decode().strip())' \
        "http://127.0.0.1:$pport/-/ready" && break
    kill "$ppid_" 2>/dev/null; wait "$ppid_" 2>/dev/null; ppid_=""
done
[ -n "$ppid_" ] || { bad "prometheus did not become ready" "$dir/prom.log"; exit 1; }
EXTRA_PIDS="$ppid_" # cleanup stops it with SIGTERM and waits
ok "prometheus ready on 127.0.0.1:$pport"

if wait_for 60 1 api /api/v1/query 'up{job="blockcoord"}'; then
    ok "up{job=\"blockcoord\"} is 1"
else
    echo "FAIL up{job=\"blockcoord\"}: got '$got' after 60 s"; bad "target never up" "$dir/prom.log" "$dir/host.err"
fi
if wait_for 10 "$count" api /api/v1/query 'active_coordinators{job="blockcoord"}'; then
    ok "active_coordinators{job=\"blockcoord\"} is $count"
else
    echo "FAIL active_coordinators: got '$got', want $count"; fail=1
fi
if wait_for 10 "$count" api /api/v1/query 'sum(blocking_coordinators_total{job="blockcoord",status="waiting"})'; then
    ok "sum(blocking_coordinators_total{status=\"waiting\"}) is $count"
else
    echo "FAIL blocking_coordinators_total: got '$got', want $count"; fail=1
fi

# Every rule evaluated at least once, without an error, against the real series.
rules_ok() { api /api/v1/rules | awk '$1 != "ok" { bad = 1 } END { print (NR == 10 && !bad) ? "ok" : "not yet" }'; }
if wait_for 20 ok rules_ok; then
    ok "the 10 alert rules of alerts.yml evaluate with health ok"
else
    echo "FAIL alert rules:"; api /api/v1/rules | sed 's/^/    /'; fail=1
fi
# With coordinators hosted and Redis up, none of the alerts is even pending.
if wait_for 5 none api /api/v1/query 'ALERTS'; then ok "no alert pending or firing"; else
    echo "FAIL ALERTS: got '$got'"; api /api/v1/query 'ALERTS' | sed 's/^/    /'; fail=1
fi

kill -TERM "$hpid"
for _ in $(seq 100); do kill -0 "$hpid" 2>/dev/null || break; sleep 0.05; done
if kill -0 "$hpid" 2>/dev/null; then bad "blockcoord host did not stop on SIGTERM" "$dir/host.out"; else
    wait "$hpid"; hrc=$?
    unset "PIDS[host]"
    [ "$hrc" = 0 ] || bad "blockcoord host exit $hrc after SIGTERM" "$dir/host.out" "$dir/host.err"
fi
exit $fail
