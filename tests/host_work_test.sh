#!/usr/bin/env bash
# host_work_test.sh BUILD_DIR SOURCE_DIR: `blockcoord host` liveness and work flags against a
# private redis-server: every bad flag value is refused with exit 2 and a message naming the
# flag; a host with --work completes the items assigned to its coordinators (PROTOCOL §4.5 item
# keys written with redis-cli), before it starts and after a `work` signal; and a second host's
# reaper replaces the coordinators of a host killed with SIGKILL, moves their items and the
# replacement completes them (epoch 2, done record naming it, one work-log line each).
set -uo pipefail
build=$1
bc="$build/blockcoord"
NEEDS=python3 BINS=("$bc")
# shellcheck source=tests/coord_lib.sh
source "$2/tests/coord_lib.sh"
unset HEARTBEAT_TTL_S REAPER_STALE_MS REAPER_SCAN_MS REAPER_WARNINGS METRICS_PORT

json_get() { # json_get FIELD < JSON
    python3 -c "import json,sys; v=json.load(sys.stdin).get('$1'); print('null' if v is None else v)"
}
until_true() { # until_true SECONDS CMD...: run CMD every 0.1 s until it succeeds
    local lim=$(( $1 * 10 )) i; shift
    for ((i = 0; i < lim; i++)); do "$@" && return 0; sleep 0.1; done
    return 1
}
item() { # item SWARM OWNER WORKID: write a work item as PROTOCOL §4.5 describes it
    local now; now=$(date +%s%3N)
    R SET "coordinator:work:$1:$2:$3" \
        "{\"workId\":\"$3\",\"assignedTo\":\"$2\",\"status\":\"in-progress\",\"data\":{\"n\":1},\"startedAt\":$now,\"epoch\":1}" \
        EX 3600 >/dev/null
}
all_done() { # all_done SWARM WORKID...
    local s=$1 w; shift
    for w in "$@"; do [ "$(R EXISTS "coordinator:work:done:$s:$w")" = 1 ] || return 1; done
}

# ---------------------------------------------------------------- flag validation
h=(host --count 2 --prefix v --swarm sv)
check "--help lists the liveness and work flags" 0 "--work-ms A-B" "$bc" host --help
check "--heartbeat-ms 0"        2 '--heartbeat-ms "0"'      "$bc" "${h[@]}" --heartbeat-ms 0
check "--heartbeat-ms abc"      2 '--heartbeat-ms "abc"'    "$bc" "${h[@]}" --heartbeat-ms abc
check "--heartbeat-ms too big"  2 '--heartbeat-ms "3600001"' "$bc" "${h[@]}" --heartbeat-ms 3600001
check "--heartbeat-ttl-s 0"     2 '--heartbeat-ttl-s "0"'   "$bc" "${h[@]}" --heartbeat-ttl-s 0
check "--heartbeat-ttl-s big"   2 '--heartbeat-ttl-s "86401"' "$bc" "${h[@]}" --heartbeat-ttl-s 86401
check "--stale-ms 0"            2 '--stale-ms "0"'          "$bc" "${h[@]}" --stale-ms 0
check "--stale-ms -5"           2 '--stale-ms "-5"'         "$bc" "${h[@]}" --stale-ms -5
check "--scan-ms x"             2 '--scan-ms "x"'           "$bc" "${h[@]}" --scan-ms x
check "--scan-ms 0"             2 '--scan-ms "0"'           "$bc" "${h[@]}" --scan-ms 0
check "--warnings 0"            2 '--warnings "0"'          "$bc" "${h[@]}" --warnings 0
check "--warnings 101"          2 '--warnings "101"'        "$bc" "${h[@]}" --warnings 101
check "--work-ms MIN > MAX"     2 '--work-ms "500-50"'      "$bc" "${h[@]}" --work --work-ms 500-50
check "--work-ms abc"           2 '--work-ms "abc"'         "$bc" "${h[@]}" --work --work-ms abc
check "--work-ms 10-"           2 '--work-ms "10-"'         "$bc" "${h[@]}" --work --work-ms 10-
check "--work-ms too big"       2 '--work-ms "3600001"'     "$bc" "${h[@]}" --work --work-ms 3600001
check "--work needs --swarm"    2 "--work needs --swarm"    "$bc" host --count 2 --work
check "--work-ms needs --work"  2 "--work-ms works only with --work" "$bc" "${h[@]}" --work-ms 10-20
check "--work-log needs --work" 2 "--work-log works only with --work" "$bc" "${h[@]}" --work-log "$dir/x"
check "--work-log unwritable"   2 '--work-log "/nonexistent/dir/w.log"' "$bc" "${h[@]}" --work --work-log /nonexistent/dir/w.log
check "HEARTBEAT_INTERVAL_MS=abc" 2 "HEARTBEAT_INTERVAL_MS" env HEARTBEAT_INTERVAL_MS=abc "$bc" "${h[@]}"
check "REAPER_STALE_MS=0"       2 "REAPER_STALE_MS"         env REAPER_STALE_MS=0 "$bc" "${h[@]}"
if [ -z "$(R --scan --pattern 'blocking:*')" ]; then ok "refused hosts wrote nothing to Redis"; else
    bad "refused hosts wrote to Redis: $(R --scan --pattern 'blocking:*' | head -3 | tr '\n' ' ')"
fi

# ---------------------------------------------------------------- a host works its items
for w in a1 a2 a3; do item sw1 hw-0 "$w"; done
item sw1 hw-1 a4
start hw "$bc" host --count 3 --prefix hw --swarm sw1 --work --work-ms 20-80 \
    --work-log "$dir/hw.log" --heartbeat-ms 200
if until_true 20 all_done sw1 a1 a2 a3 a4; then ok "items assigned before the start are completed"; else
    bad "items a1..a4 not completed" "$dir/hw.out" "$dir/hw.err"
fi
rec=$(R GET coordinator:work:done:sw1:a4)
if [ "$(json_get completedBy <<<"$rec")" = hw-1 ] && [ "$(json_get epoch <<<"$rec")" = 1 ] &&
    [ "$(json_get workId <<<"$rec")" = a4 ] && [ -z "$(R --scan --pattern 'coordinator:work:sw1:*')" ]; then
    ok "done record names the owner and epoch 1; no item key left"
else
    bad "done record of a4: $rec; items left: $(R --scan --pattern 'coordinator:work:sw1:*' | tr '\n' ' ')"
fi
# Assigned while it runs: nothing happens until the owner is told, with a `work` signal.
item sw1 hw-2 b1
item sw1 hw-2 b2
out=$(timeout 20 "$bc" signal --from tester --to hw-2 --type work --wait-ack 5000 2>&1)
if [ $? = 0 ] && until_true 20 all_done sw1 b1 b2; then ok "a work signal makes hw-2 list and complete b1, b2"; else
    echo "$out" >"$dir/sig.out"; bad "b1/b2 not completed after a work signal" "$dir/sig.out" "$dir/hw.err"
fi
if [ "$(json_get completedBy <<<"$(R GET coordinator:work:done:sw1:b2)")" = hw-2 ]; then ok "b2 completed by hw-2"; else
    bad "b2: $(R GET coordinator:work:done:sw1:b2)"
fi
lines=$(awk '{print $2, $3, $4}' "$dir/hw.log" | sort | tr '\n' ',')
if [ "$lines" = "hw-0 a1 1,hw-0 a2 1,hw-0 a3 1,hw-1 a4 1,hw-2 b1 1,hw-2 b2 1," ]; then
    ok "work log: one line per accepted completion"
else
    bad "work log: $lines" "$dir/hw.log"
fi
kill -TERM "${PIDS[hw]}"
wait "${PIDS[hw]}"; rc=$?
unset "PIDS[hw]"
if [ "$rc" = 0 ] && grep -qE '\| work done 6 refused 0$' "$dir/hw.out"; then ok "status line: work done 6, SIGTERM exits 0"; else
    bad "host hw: rc $rc" "$dir/hw.out" "$dir/hw.err"
fi

# ---------------------------------------------------------------- kill -9, replacement, work moves
fast=(--heartbeat-ms 200 --stale-ms 1000 --scan-ms 200 --warnings 3)
for w in c1 c2 c3; do item sw2 ka-0 "$w"; done
# ka never finishes an item by itself (10 minutes each): only a replacement can complete them.
start ka "$bc" host --count 2 --prefix ka --swarm sw2 --work --work-ms 600000 \
    --work-log "$dir/ka.log" "${fast[@]}"
start kb "$bc" host --count 2 --prefix kb --swarm sw2 --work --work-ms 10-50 \
    --work-log "$dir/kb.log" "${fast[@]}"
registered() { [ "$(R ZCARD blocking:registry)" = "$1" ]; }
if until_true 20 registered 4; then ok "both hosts heartbeat"; else
    bad "registry: $(R ZRANGE blocking:registry 0 -1 | tr '\n' ' ')" "$dir/ka.err" "$dir/kb.err"
fi
disown "${PIDS[ka]}" # no "Killed" notice from bash
kill -KILL "${PIDS[ka]}"
until_true 10 eval '! kill -0 '"${PIDS[ka]}"' 2>/dev/null'
unset "PIDS[ka]"
if until_true 30 all_done sw2 c1 c2 c3; then ok "kb replaced ka's coordinators and completed their items"; else
    bad "c1..c3 not completed; keys: $(R --scan --pattern 'coordinator:*' | tr '\n' ' ')" "$dir/kb.out" "$dir/kb.err"
fi
rec=$(R GET coordinator:work:done:sw2:c2)
if [ "$(json_get completedBy <<<"$rec")" = ka-0-r1 ] && [ "$(json_get epoch <<<"$rec")" = 2 ]; then
    ok "c2 completed by the replacement ka-0-r1 with epoch 2"
else
    bad "done record of c2: $rec"
fi
if grep -qF "Spawning replacement: ka-0-r1 (replaces ka-0)" "$dir/kb.err" &&
    grep -qF "Spawning replacement: ka-1-r1 (replaces ka-1)" "$dir/kb.err"; then
    ok "kb logs both replacements"
else
    bad "replacement log lines" "$dir/kb.err"
fi
if [ "$(grep -c ' ka-0-r1 c[123] 2$' "$dir/kb.log")" = 3 ] && [ ! -s "$dir/ka.log" ]; then
    ok "kb's work log has c1..c3 once each, ka's none"
else
    bad "work logs" "$dir/kb.log" "$dir/ka.log"
fi
if [ -z "$(R --scan --pattern 'coordinator:work:sw2:*')" ]; then ok "no item left under any id"; else
    bad "items left: $(R --scan --pattern 'coordinator:work:sw2:*' | tr '\n' ' ')"
fi
kill -TERM "${PIDS[kb]}"
wait "${PIDS[kb]}"; rc=$?
unset "PIDS[kb]"
if [ "$rc" = 0 ] && grep -qF "replacements 2" "$dir/kb.out"; then ok "kb: status line counts 2 replacements, exits 0"; else
    bad "kb: rc $rc" "$dir/kb.out" "$dir/kb.err"
fi

# --metrics-per-coordinator: refused without a metrics port; with one, the per-coordinator
# series appear (and only then).
check "--metrics-per-coordinator without a port -> 2" 2 "needs --metrics-port" \
    env -u METRICS_PORT "$bc" host --count 2 --metrics-per-coordinator
port=$(free_port)
start pc "$bc" host --count 3 --prefix pc --metrics-port "$port" --metrics-per-coordinator
if until_true 10 curl -sf "http://127.0.0.1:$port/metrics" -o "$dir/pc.metrics" &&
    until_true 10 sh -c "curl -sf http://127.0.0.1:$port/metrics | grep -q 'coordinator_id=\"pc-2\"'"; then
    ok "--metrics-per-coordinator: coordinator_id series for pc-0..pc-2"
else
    bad "per-coordinator series" "$dir/pc.out" "$dir/pc.err"
fi
kill -TERM "${PIDS[pc]}"; wait "${PIDS[pc]}" 2>/dev/null; unset "PIDS[pc]"

exit $fail
