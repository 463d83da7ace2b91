#!/usr/bin/env bash
# liveness_cli_test.sh BUILD_DIR SOURCE_DIR: the tutorial's exercise 2 against our runtime.
# A runner logs its heartbeats, is SIGKILLed, its heartbeat expires, `blockcoord reap --once`
# prints the tutorial's lines and removes every blocking:*coord-crash* key; `blockcoord status`
# shows the coordinator alive, then expired, in text and JSON; bad flags exit 2.
set -uo pipefail
build=$1
bc="$build/blockcoord"
runner="$build/coordinator-runner"
NEEDS=python3 NEEDS_FAIL=1 BINS=("$bc" "$runner")
# shellcheck source=tests/coord_lib.sh
source "$2/tests/coord_lib.sh"

# Step 1: a coordinator with heartbeat logging (fast interval, short TTL so the test is short).
HEARTBEAT_INTERVAL_MS=200 HEARTBEAT_TTL_S=2 \
    "$runner" --id coord-crash --timeout 600000 --log-heartbeat >"$dir/runner.out" 2>&1 &
PIDS[runner]=$!
if wait_text "$dir/runner.out" "Coordinator coord-crash started" &&
   wait_text "$dir/runner.out" "Heartbeat sent (TTL: 2s)"; then
    ok "runner logs 'Heartbeat sent (TTL: 2s)'"
else
    bad "runner heartbeat line" "$dir/runner.out"
fi

# Step 2: status sees it alive.
"$bc" status coord-crash >"$dir/st1.out" 2>&1; rc=$?
if [ $rc -eq 0 ] && grep -q "^coord-crash .* alive .* waiting" "$dir/st1.out"; then
    ok "status: coord-crash alive and waiting"
else
    bad "status alive (rc $rc)" "$dir/st1.out"
fi
"$bc" status --json >"$dir/st1.json" 2>&1
if python3 - "$dir/st1.json" <<'EOF'
import json, sys
d = json.load(open(sys.argv[1]))
c = [x for x in d["coordinators"] if x["coordinatorId"] == "coord-crash"]
assert len(c) == 1, c
c = c[0]
assert c["status"] == "alive" and c["state"] == "waiting" and c["registered"], c
assert 0 <= c["heartbeatAgeMs"] < 5000, c
assert isinstance(c["pid"], int) and c["hostname"], c
EOF
then ok "status --json: one live, registered coordinator with age, pid and host"
else bad "status --json" "$dir/st1.json"; fi

# Step 3: kill -9. Step 4: the heartbeat expires (TTL 2 s).
kill -KILL "${PIDS[runner]}"; wait "${PIDS[runner]}" 2>/dev/null; unset 'PIDS[runner]'
for _ in $(seq 100); do [ "$(R EXISTS blocking:heartbeat:coord-crash)" = 0 ] && break; sleep 0.05; done
if [ "$(R EXISTS blocking:heartbeat:coord-crash)" = 0 ]; then ok "heartbeat expired after the kill"
else bad "heartbeat did not expire"; fi
"$bc" status coord-crash >"$dir/st2.out" 2>&1; rc=$?
if [ $rc -eq 0 ] && grep -q "^coord-crash .* expired" "$dir/st2.out"; then
    ok "status: coord-crash expired (still registered)"
else
    bad "status expired (rc $rc)" "$dir/st2.out"
fi

# Leftovers a crashed coordinator has: a signal for it and an ACK of it.
R SET blocking:signal:coord-crash '{"x":1}' >/dev/null
R SET blocking:ack:coord-crash:coord-a:completion:1:1 x >/dev/null
R SET blocking:idempotency:coord-crash-other:coord-z:completion:1:2 1 >/dev/null

# Step 5: the reaper, once.
"$bc" reap --once --stale-ms 1000 >"$dir/reap.out" 2>"$dir/reap.err"; rc=$?
expect=("Scanning for stale coordinators..." "Found heartbeat: coord-crash (expired)"
        "Dead coordinator detected: coord-crash" "Escalating to dead coordinator handler"
        "Cleaning up coordinator state" "Dead coordinator keys removed: ")
order_ok=1; last=0
for line in "${expect[@]}"; do
    n=$(grep -nF -- "$line" "$dir/reap.out" | head -1 | cut -d: -f1)
    if [ -z "$n" ] || [ "$n" -le "$last" ]; then order_ok=0; echo "missing or out of order: $line"; fi
    last=${n:-$last}
done
if [ $rc -eq 0 ] && [ $order_ok = 1 ] && grep -q '^\[00:00:0[0-9]\] Scanning' "$dir/reap.out"; then
    ok "reap --once prints the tutorial's six lines in order"
else
    bad "reap --once (rc $rc)" "$dir/reap.out" "$dir/reap.err"
fi

# Step 6: every blocking:*coord-crash* key of the dead coordinator is gone; the bystander whose
# id merely starts with coord-crash stays; cleanup:stats names it.
left=$(R --scan --pattern 'blocking:*coord-crash*' | grep -v '^blocking:idempotency:coord-crash-other:' | sort)
if [ -z "$left" ] && [ "$(R EXISTS blocking:idempotency:coord-crash-other:coord-z:completion:1:2)" = 1 ]; then
    ok "KEYS blocking:*coord-crash* is empty; coord-crash-other's marker kept"
else
    bad "keys left: $left"
fi
stats=$(R GET cleanup:stats)
if printf '%s' "$stats" | python3 -c '
import json, sys
d = json.load(sys.stdin)
assert d["cleanedCoordinators"] == ["coord-crash"], d
assert d["keysRemoved"] >= 3 and d["lastRun"] > 0, d'; then
    ok "cleanup:stats: $stats"
else
    bad "cleanup:stats: $stats"
fi

# Bad input: each names what was wrong and exits 2; an unknown id exits 1.
check_usage() { # check_usage TEXT ARGS...
    local text=$1; shift
    "$bc" "$@" >"$dir/u.out" 2>&1; local rc=$?
    if [ $rc -eq 2 ] && grep -qF -- "$text" "$dir/u.out"; then ok "blockcoord $* -> 2 ($text)"
    else bad "blockcoord $* (rc $rc)" "$dir/u.out"; fi
}
check_usage "stale-ms" reap --stale-ms abc
check_usage "scan-ms" reap --scan-ms 0
check_usage "warnings" reap --warnings 1000
check_usage "unexpected argument" reap extra
check_usage "coordinator id" status 'bad:id'
REAPER_STALE_MS=soon "$bc" reap --once >"$dir/u.out" 2>&1; rc=$?
if [ $rc -eq 2 ] && grep -q "REAPER_STALE_MS" "$dir/u.out"; then ok "REAPER_STALE_MS=soon -> 2"
else bad "REAPER_STALE_MS=soon (rc $rc)" "$dir/u.out"; fi
R SET blocking:heartbeat:junk-1 'not json' >/dev/null
"$bc" status junk-1 >"$dir/u.out" 2>&1; rc=$?
if [ $rc -eq 0 ] && grep -q "^junk-1 .* unreadable" "$dir/u.out"; then
    ok "status lists a heartbeat it cannot read as unreadable"
else
    bad "status junk-1 (rc $rc)" "$dir/u.out"
fi
"$bc" status nobody-here >"$dir/u.out" 2>&1; rc=$?
if [ $rc -eq 1 ] && grep -q "nobody-here: no heartbeat and not registered" "$dir/u.out"; then
    ok "status of an unknown id exits 1 and says why"
else
    bad "status unknown id (rc $rc)" "$dir/u.out"
fi

exit $fail
