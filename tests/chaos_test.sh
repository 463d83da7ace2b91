#!/usr/bin/env bash
# chaos_test.sh BUILD_DIR SOURCE_DIR: short runs of both chaos tests (`make chaos` runs them at
# full length), asserting status "passed" and the members of results.json.
#  - process-kill: 3 hosts x 5 coordinators, 40 s, a SIGKILL every ~8 s, 200 work items, --fast.
#    With 3 hosts each kill takes down a third of the coordinators for ~1.5 s every ~8 s, so
#    about 93-95 % uptime is what this setting allows: the test asks for the seeds' 90 %; the
#    --fast P95 target (2 s) and "no work lost or done twice" are asserted as they are.
#  - redis-restart: 30 s, Redis SIGKILLed and restarted every 8 s (its own redis-server).
# Plus the usage errors of `blockcoord chaos`.
set -uo pipefail
build=$1
bc="$build/blockcoord"
NEEDS=python3 BINS=("$bc")
# shellcheck source=tests/coord_lib.sh
source "$2/tests/coord_lib.sh"
unset HEARTBEAT_TTL_S REAPER_STALE_MS REAPER_SCAN_MS REAPER_WARNINGS METRICS_PORT BC_LOG_LEVEL

# verify RESULTS EXPECTED_KEYS PYTHON_CONDITIONS...: every condition is a Python expression
# over r (the parsed results.json); prints the ones that do not hold.
verify() {
    python3 - "$@" <<'EOF'
import json, sys
path, keys = sys.argv[1], sys.argv[2].split(",")
r = json.load(open(path))
bad = []
if list(r.keys()) != keys:
    bad.append("members %s, want %s" % (",".join(r.keys()), ",".join(keys)))
for cond in sys.argv[3:]:
    try:
        if not eval(cond, {}, {"r": r}):
            bad.append("not true: " + cond)
    except Exception as e:
        bad.append("%s: %s" % (cond, e))
for b in bad:
    print(b)
sys.exit(1 if bad else 0)
EOF
}

# ---------------------------------------------------------------- usage
check "chaos without a test"        2 "usage: blockcoord chaos"  "$bc" chaos
check "chaos --help"                0 "process-kill"             "$bc" chaos --help
check "unknown chaos test"          2 'unknown test "nope"'      "$bc" chaos nope
check "process-kill --help"         0 "--kill-interval S"        "$bc" chaos process-kill --help
check "process-kill without --out"  2 "--out is required"        "$bc" chaos process-kill --hosts 2 --per-host 2 --duration 5 --kill-interval 2 --work-items 5
check "process-kill --hosts 0"      2 '--hosts "0"'              "$bc" chaos process-kill --hosts 0 --per-host 2 --duration 5 --kill-interval 2 --work-items 5 --out "$dir/x"
check "process-kill --min-uptime"   2 '--min-uptime "101"'       "$bc" chaos process-kill --hosts 2 --per-host 2 --duration 5 --kill-interval 2 --work-items 5 --out "$dir/x" --min-uptime 101
check "process-kill --work-ms"      2 '--work-ms "9-1"'          "$bc" chaos process-kill --hosts 2 --per-host 2 --duration 5 --kill-interval 2 --work-items 5 --out "$dir/x" --work-ms 9-1
check "redis-restart --interval 0"  2 '--interval "0"'           "$bc" chaos redis-restart --duration 5 --interval 0 --out "$dir/x"
check "redis-restart without --duration" 2 "--duration is required" "$bc" chaos redis-restart --interval 2 --out "$dir/x"
check "process-kill: no room for a kill" 2 "is too short for --kill-interval 4 s" "$bc" chaos process-kill --hosts 2 --per-host 2 --duration 5 --kill-interval 4 --work-items 5 --out "$dir/x"
check "redis-restart: no room for a restart" 2 "leaves no room for a restart" "$bc" chaos redis-restart --duration 6 --interval 2 --out "$dir/x"

# ---------------------------------------------------------------- process-kill
pk="$dir/pk"
timeout 150 "$bc" chaos process-kill --hosts 3 --per-host 5 --duration 40 --kill-interval 8 \
    --work-items 200 --fast --min-uptime 90 --out "$pk" >"$dir/pk.out" 2>"$dir/pk.err"
rc=$?
keys="test,duration_seconds,coordinators_spawned,kills,recoveries,uptime_percentage,max_recovery_time_ms,p95_recovery_time_ms,p50_recovery_time_ms,work_items,work_completed,work_lost,work_duplicated,failures,status"
if [ "$rc" = 0 ] && why=$(verify "$pk/results.json" "$keys" \
    "r['test'] == 'process-kill'" "r['status'] == 'passed'" "r['failures'] == []" \
    "39 <= r['duration_seconds'] <= 41" "r['kills'] >= 2" "r['recoveries'] >= 5 * r['kills']" \
    "r['coordinators_spawned'] >= 15 + r['recoveries']" \
    "90 <= r['uptime_percentage'] < 100" \
    "0 < r['p50_recovery_time_ms'] <= r['p95_recovery_time_ms'] <= r['max_recovery_time_ms']" \
    "r['p95_recovery_time_ms'] <= 2000" \
    "r['work_items'] == 200" "r['work_completed'] == 200" \
    "r['work_lost'] == 0" "r['work_duplicated'] == 0"); then
    ok "process-kill: passed, $(python3 -c "import json;r=json.load(open('$pk/results.json'));print('%d kills, %d recoveries, uptime %s %%, P95 %d ms, %d/%d work items' % (r['kills'],r['recoveries'],r['uptime_percentage'],r['p95_recovery_time_ms'],r['work_completed'],r['work_items']))")"
else
    echo "${why:-}" >"$dir/pk.why"
    bad "process-kill: rc $rc" "$dir/pk.why" "$pk/results.json" "$dir/pk.out" "$dir/pk.err"
fi
# Every kill is in the timeline, and each slot has its bar.
if grep -q '<svg' "$pk/timeline.html" && ! grep -q 'https\?://[a-z]' <(grep -v 'xmlns=' "$pk/timeline.html") &&
    [ "$(grep -c '<title>[0-9.]* s: kill ' "$pk/timeline.html")" = "$(python3 -c "import json;print(json.load(open('$pk/results.json'))['kills'])")" ] &&
    [ "$(grep -c 'class="row"' "$pk/timeline.html")" -ge 15 ]; then
    ok "process-kill: timeline.html is self-contained, one mark per kill, a bar per slot"
else
    bad "process-kill: timeline.html" "$pk/timeline.html"
fi
if grep -qE '^\[00:00:[0-9]{2}\] killed [0-9a-f]{4}-h[0-2]g0 \(pid [0-9]+\): [0-9]+ coordinators, [0-9]+ work items held$' "$dir/pk.out" &&
    grep -qE 'coordinators replaced, their work moved' "$dir/pk.out" &&
    grep -qF "  - Status: passed" "$dir/pk.out"; then
    ok "process-kill: event lines and summary"
else
    bad "process-kill: output" "$dir/pk.out"
fi
if [ -z "$(R --scan --pattern 'coordinator:work:chaos-*' | grep -v ':done:')" ]; then
    ok "process-kill: no work item left in Redis"
else
    bad "process-kill: items left: $(R --scan --pattern 'coordinator:work:chaos-*' | grep -v ':done:' | head -5 | tr '\n' ' ')"
fi

# ---------------------------------------------------------------- redis-restart
rr="$dir/rr"
timeout 120 "$bc" chaos redis-restart --duration 30 --interval 8 --out "$rr" >"$dir/rr.out" 2>"$dir/rr.err"
rc=$?
keys="test,duration_seconds,restarts,coordinators,signals_sent,signals_delivered,signals_lost,signals_duplicated,send_failures,signals_out_of_order,max_heartbeat_resume_ms,max_redis_down_ms,failures,status"
if [ "$rc" = 0 ] && why=$(verify "$rr/results.json" "$keys" \
    "r['test'] == 'redis-restart'" "r['status'] == 'passed'" "r['failures'] == []" \
    "r['restarts'] >= 3" "r['coordinators'] == 18" \
    "r['signals_sent'] >= 8 * 20 * 20" \
    "r['signals_delivered'] + r['send_failures'] >= r['signals_sent']" \
    "r['signals_lost'] == 0" "r['signals_duplicated'] == 0" \
    "0 < r['max_heartbeat_resume_ms'] <= 8000" "r['max_redis_down_ms'] >= 1000"); then
    ok "redis-restart: passed, $(python3 -c "import json;r=json.load(open('$rr/results.json'));print('%d restarts, %d signals, 0 lost, 0 duplicated, heartbeats back within %d ms' % (r['restarts'],r['signals_sent'],r['max_heartbeat_resume_ms']))")"
else
    echo "${why:-}" >"$dir/rr.why"
    bad "redis-restart: rc $rc" "$dir/rr.why" "$rr/results.json" "$dir/rr.out" "$dir/rr.err"
fi
if grep -q '<svg' "$rr/timeline.html" && [ "$(grep -c 'class="row"' "$rr/timeline.html")" = 19 ] &&
    grep -qF "redis-server" "$rr/timeline.html"; then
    ok "redis-restart: timeline.html has Redis and the 18 coordinators"
else
    bad "redis-restart: timeline.html" "$rr/timeline.html"
fi
if [ -z "$(ls "$rr/redis"/*.sock 2>/dev/null)" ] && ! pgrep -f "unixsocket $rr/redis" >/dev/null; then
    ok "redis-restart: its redis-server is gone"
else
    bad "redis-restart: redis-server of the run still running"
fi

exit $fail
