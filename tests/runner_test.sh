#!/usr/bin/env bash
# runner_test.sh BUILD_DIR SOURCE_DIR: the tutorial's exercise 1 end to end with
# build/coordinator-runner against a private redis-server (unix socket, no TCP port):
# the signal written by hand with redis-cli + openssl exactly as the tutorial does, the ACKs,
# the heartbeats, a bad signature, the timeout, usage errors, --clock-skew and SIGTERM.
set -uo pipefail
build=$1
runner="$build/coordinator-runner"
NEEDS=openssl BINS=("$runner")
# shellcheck source=tests/coord_lib.sh
source "$2/tests/coord_lib.sh"
json_get() { # json_get FIELD < JSON
    if command -v jq >/dev/null; then jq -r ".$1"; else
        python3 -c "import json,sys; v=json.load(sys.stdin).get('$1'); print('null' if v is None else v)"
    fi
}

# start NAME ARGS...: the runner in the background; NAME.out (stdout), NAME.err (stderr).
start() { # overrides coord_lib.sh's start
    local name=$1; shift
    "$runner" "$@" >"$dir/$name.out" 2>"$dir/$name.err" &
    PIDS[$name]=$!
}
# finish NAME [SECONDS]: wait for the runner to exit; its exit status in rc (124: still running).
finish() {
    local p=${PIDS[$1]} i lim=$(( ${2:-10} * 20 ))
    for ((i = 0; i < lim; i++)); do kill -0 "$p" 2>/dev/null || break; sleep 0.05; done
    if kill -0 "$p" 2>/dev/null; then rc=124; return; fi
    wait "$p"; rc=$?
    unset "PIDS[$1]"
}
# Line numbers of each text in FILE must increase.
in_order() {
    local f=$1 last=0 n; shift
    for t in "$@"; do
        n=$(grep -nF -- "$t" "$f" | head -1 | cut -d: -f1)
        [ -n "$n" ] && [ "$n" -gt "$last" ] || return 1
        last=$n
    done
}
all_stamped() { ! grep -vqE '^\[[0-9]{2}:[0-9]{2}:[0-9]{2}\] ' "$1"; }
# tutorial_signal SENDER RECEIVER SECRET: the tutorial's Step 3, verbatim in shape.
tutorial_signal() {
    local SENDER_ID=$1 RECEIVER_ID=$2 SIGN_SECRET=$3 TYPE=wake
    TIMESTAMP=$(date +%s)000
    PAYLOAD="${SENDER_ID}:${RECEIVER_ID}:${TYPE}:${TIMESTAMP}"
    SIGNATURE=$(echo -n "$PAYLOAD" | openssl dgst -sha256 -hmac "$SIGN_SECRET" -hex | awk '{print $2}')
    SIGNAL=$(cat <<EOF
{
  "senderId": "$SENDER_ID",
  "receiverId": "$RECEIVER_ID",
  "type": "$TYPE",
  "timestamp": $TIMESTAMP,
  "signature": "$SIGNATURE"
}
EOF
)
    R SETEX "blocking:signal:${RECEIVER_ID}" 86400 "$SIGNAL" >/dev/null
}
redis_ms() { R TIME | { read -r s; read -r us; echo $(( s * 1000 + us / 1000 )); }; }

# ---------------------------------------------------------------- exercise 1
start a --id coord-a --timeout 600000
start b --id coord-b --timeout 600000
if wait_text "$dir/a.out" "Waiting for signal..." && wait_text "$dir/b.out" "Waiting for signal..."; then
    ok "both runners wait"
else
    bad "runners did not reach 'Waiting for signal...'" "$dir/a.out" "$dir/a.err" "$dir/b.out" "$dir/b.err"
fi
if in_order "$dir/b.out" "Coordinator coord-b started" "Heartbeat started (5s interval)" "Waiting for signal..."; then
    ok "start-up lines"
else
    bad "start-up lines" "$dir/b.out"
fi

tutorial_signal coord-a coord-b "$SECRET"
MID="coord-a:coord-b:wake:0:$TIMESTAMP"
finish b 10
if [ "$rc" = 0 ]; then ok "coord-b exits 0 after the signal"; else bad "coord-b exit status $rc (want 0)" "$dir/b.out" "$dir/b.err"; fi
if in_order "$dir/b.out" "Signal received: wake (latency:" "Signature verified: true" \
    "Sending ACK to coord-a" "Blocking operation resumed"; then
    ok "coord-b prints the tutorial's lines in order"
else
    bad "coord-b lines" "$dir/b.out"
fi
if grep -qE 'Signal received: wake \(latency: [0-9]+\.[0-9]{6}s\)$' "$dir/b.out"; then
    ok "latency printed with 6 decimals"
else
    bad "latency format" "$dir/b.out"
fi
if all_stamped "$dir/b.out" && all_stamped "$dir/a.out"; then ok "every stdout line starts with [HH:MM:SS]"; else bad "unstamped line" "$dir/a.out" "$dir/b.out"; fi

slot=$(R GET blocking:ack:coord-a)
ttl=$(R TTL blocking:ack:coord-a)
if [ "$(json_get receiverId <<<"$slot")" = coord-a ] && [[ "$(json_get timestamp <<<"$slot")" =~ ^[0-9]{13}$ ]] &&
    [ "$ttl" -gt 3500 ] && [ "$ttl" -le 3600 ]; then
    ok "blocking:ack:coord-a has receiverId and timestamp, TTL $ttl"
else
    bad "ACK slot: $slot (TTL $ttl)"
fi
ack=$(R GET "blocking:ack:coord-b:$MID")
ttl=$(R TTL "blocking:ack:coord-b:$MID")
signed="$(json_get coordinatorId <<<"$ack"):$(json_get signalId <<<"$ack"):$(json_get timestamp <<<"$ack"):$(json_get iteration <<<"$ack")"
if [ -n "$ack" ] && [ "$ttl" -gt 3500 ] && [ "$ttl" -le 3600 ] &&
    [ "$(json_get signalId <<<"$ack")" = "$MID" ] && [ "$(json_get status <<<"$ack")" = received ] &&
    [ "$(hmac "$SECRET" "$signed")" = "$(json_get signature <<<"$ack")" ]; then
    ok "per-signal ACK blocking:ack:coord-b:$MID verifies with openssl (TTL $ttl)"
else
    bad "per-signal ACK: '$ack' (TTL $ttl, signed '$signed')"
fi
if wait_text "$dir/a.out" "ACK received from coord-b" 5 && wait_text "$dir/a.out" "Signal delivery confirmed" 5 &&
    in_order "$dir/a.out" "ACK received from coord-b" "Signal delivery confirmed"; then
    ok "coord-a: ACK received from coord-b, Signal delivery confirmed"
else
    bad "coord-a did not confirm the ACK" "$dir/a.out" "$dir/a.err"
fi
if [ "$(R EXISTS blocking:signal:coord-b)" = 0 ]; then ok "signal slot consumed"; else bad "signal slot still there"; fi
hb=$(R GET blocking:heartbeat:coord-b)
ttl=$(R TTL blocking:heartbeat:coord-b)
# H6: a runner-compatible wake leaves signalsReceived >= 1 and a terminal state readable for a
# grace TTL instead of vanishing.
if [ "$(json_get state <<<"$hb")" = completed ] && [ "$ttl" -gt 0 ] && [ "$ttl" -le 60 ] &&
    [ "$(json_get signalsReceived <<<"$hb")" -ge 1 ]; then
    ok "coord-b's last heartbeat: state completed, signalsReceived >= 1, TTL $ttl"
else
    bad "coord-b heartbeat: $hb (TTL $ttl)"
fi

# ---------------------------------------------------------------- SIGTERM
kill -TERM "${PIDS[a]}"
finish a 10
hb=$(R GET blocking:heartbeat:coord-a)
if [ "$rc" = 0 ] && grep -qF "SIGTERM received, stopping" "$dir/a.out" &&
    [ "$(json_get state <<<"$hb")" = stopping ]; then
    ok "SIGTERM: exit 0, last heartbeat state stopping"
else
    bad "SIGTERM: rc $rc, heartbeat $hb" "$dir/a.out" "$dir/a.err"
fi

# ---------------------------------------------------------------- bad signature, then a good one
start c --id coord-c
wait_text "$dir/c.out" "Waiting for signal..." || bad "coord-c did not start" "$dir/c.out" "$dir/c.err"
tutorial_signal coord-a coord-c other-secret
if wait_text "$dir/c.out" "Signal rejected: invalid signature" 5; then
    ok "bad signature: Signal rejected: invalid signature"
else
    bad "bad signature not rejected" "$dir/c.out" "$dir/c.err"
fi
sleep 1
if kill -0 "${PIDS[c]}" 2>/dev/null && ! grep -qF "Blocking operation resumed" "$dir/c.out"; then
    ok "coord-c keeps waiting after the rejection"
else
    bad "coord-c stopped after a bad signature" "$dir/c.out"
fi
if [ "$(R EXISTS blocking:signal:coord-c)" = 0 ]; then ok "rejected value removed"; else bad "rejected value still in the slot"; fi
tutorial_signal coord-a coord-c "$SECRET"
finish c 10
if [ "$rc" = 0 ] && grep -qF "Signature verified: true" "$dir/c.out"; then
    ok "coord-c accepts the valid signal and exits 0"
else
    bad "coord-c after the valid signal: rc $rc" "$dir/c.out" "$dir/c.err"
fi

# ---------------------------------------------------------------- timeout
start t --id coord-t --timeout 1000
finish t 10
hb=$(R GET blocking:heartbeat:coord-t)
if [ "$rc" = 1 ] && grep -qF "Error: Timeout waiting for signal after 1000ms" "$dir/t.out" &&
    [ "$(json_get state <<<"$hb")" = timeout ]; then
    ok "--timeout 1000: exit 1, Timeout line, heartbeat state timeout"
else
    bad "--timeout 1000: rc $rc, heartbeat $hb" "$dir/t.out" "$dir/t.err"
fi
BLOCKING_TIMEOUT_MS=700 start t2 --id coord-t2
finish t2 10
if [ "$rc" = 1 ] && grep -qF "after 700ms" "$dir/t2.out"; then ok "BLOCKING_TIMEOUT_MS"; else bad "BLOCKING_TIMEOUT_MS: rc $rc" "$dir/t2.out"; fi

# ---------------------------------------------------------------- usage errors
usage() { # usage NAME WANT_RC WANT_TEXT ARGS... (env assignments via `env` inside ARGS)
    local name=$1 want=$2 text=$3 out rc; shift 3
    out=$(timeout 10 "$@" 2>&1); rc=$?
    if [ "$rc" = "$want" ] && grep -qF -- "$text" <<<"$out"; then ok "$name"; else
        echo "FAIL $name: rc $rc (want $want), output:"; sed 's/^/    /' <<<"$out" | head -5; fail=1
    fi
}
id65=$(printf 'a%.0s' $(seq 65))
before=$(R DBSIZE)
usage "unknown flag"        2 '"--bogus"'                     "$runner" --id coord-u --bogus
usage "id with a space"     2 '"coord a": invalid character'  "$runner" --id 'coord a'
usage "id of 65 chars"      2 "65 characters (max 64)"        "$runner" --id "$id65"
usage "missing --id"        2 "--id is required"              "$runner" --timeout 1000
usage "bad clock skew"      2 'Invalid clock skew format: "5x"' "$runner" --id coord-u --clock-skew 5x
usage "bad timeout"         2 '--timeout "soon"'              "$runner" --id coord-u --timeout soon
usage "bad redis port"      2 '--redis-port "0"'              "$runner" --id coord-u --redis-port 0
usage "missing secret"      2 "BLOCKING_COORDINATION_SECRET is not set" env -u BLOCKING_COORDINATION_SECRET "$runner" --id coord-u
usage "bad BLOCKING_TIMEOUT_MS" 2 'BLOCKING_TIMEOUT_MS "soon"'   env BLOCKING_TIMEOUT_MS=soon "$runner" --id coord-u
usage "bad HEARTBEAT_INTERVAL_MS" 2 'HEARTBEAT_INTERVAL_MS: "5s"' env HEARTBEAT_INTERVAL_MS=5s "$runner" --id coord-u
usage "bad REDIS_URL"       2 'port "99999" is out of range'  env REDIS_URL=redis://localhost:99999 "$runner" --id coord-u
usage "bad METRICS_PORT"    2 'METRICS_PORT "99999"'          env METRICS_PORT=99999 "$runner" --id coord-u --enable-metrics
usage "--help"              0 "usage: coordinator-runner"     "$runner" --help
if [ "$(R DBSIZE)" = "$before" ]; then ok "usage errors write nothing to Redis"; else bad "usage errors wrote keys"; fi

# ---------------------------------------------------------------- --clock-skew
start s1 --id coord-s1 --clock-skew -5m
start s2 --id coord-s2 --clock-skew=-5m --coordinator-id=coord-s2
for s in s1 s2; do
    id=coord-$s
    if ! wait_text "$dir/$s.out" "Waiting for signal..."; then bad "--clock-skew ($s) did not start" "$dir/$s.out" "$dir/$s.err"; continue; fi
    for _ in $(seq 40); do [ "$(R EXISTS "blocking:heartbeat:$id")" = 1 ] && break; sleep 0.05; done
    hbts=$(R GET "blocking:heartbeat:$id" | json_get timestamp)
    delta=$(( hbts - $(redis_ms) ))
    if [ "$delta" -gt -307000 ] && [ "$delta" -lt -293000 ]; then
        ok "--clock-skew ($s): heartbeat timestamp ${delta} ms from Redis TIME"
    else
        bad "--clock-skew ($s): heartbeat $hbts is ${delta} ms from Redis TIME (want about -300000)"
    fi
    kill -TERM "${PIDS[$s]}"
    finish "$s" 10
    [ "$rc" = 0 ] || bad "--clock-skew ($s) runner exit $rc after SIGTERM" "$dir/$s.out" "$dir/$s.err"
done

# ---------------------------------------------------------------- --log-heartbeat, SIGINT
free_port=$(free_port)
HEARTBEAT_INTERVAL_MS=300 METRICS_PORT=$free_port start h --id coord-h --log-heartbeat --enable-metrics
mport=""
if wait_text "$dir/h.out" "Metrics server listening on :" 5; then
    mport=$(sed -n 's/.*Metrics server listening on :\([0-9]*\).*/\1/p' "$dir/h.out" | head -1)
fi
# The tutorial's line, once per heartbeat written: two of them within a few 0.3 s intervals.
hb_lines() { grep -cE '^\[[0-9]{2}:[0-9]{2}:[0-9]{2}\] Heartbeat sent \(TTL: 90s\)$' "$dir/h.out"; }
for _ in $(seq 100); do [ "$(hb_lines)" -ge 2 ] && break; sleep 0.05; done
if [ "$(hb_lines)" -ge 2 ] && ! grep -q 'Heartbeat #' "$dir/h.out" &&
    grep -qF "Heartbeat started (0.3s interval)" "$dir/h.out" &&
    [ -n "$mport" ] &&
    { ! command -v curl >/dev/null ||
        [[ $'\n'"$(curl -sf "http://127.0.0.1:$mport/metrics")"$'\n' == *$'\nactive_coordinators 1\n'* ]]; }; then
    ok "--log-heartbeat, --enable-metrics, HEARTBEAT_INTERVAL_MS"
else
    bad "--log-heartbeat" "$dir/h.out" "$dir/h.err"
fi
kill -INT "${PIDS[h]}"
finish h 10
if [ "$rc" = 0 ] && grep -qF "SIGINT received, stopping" "$dir/h.out"; then ok "SIGINT: exit 0"; else bad "SIGINT: rc $rc" "$dir/h.out"; fi

# METRICS_PORT=0 turns the server off (said once); an operator's force-unblock ends the wait:
# exit 1 with a message, heartbeat state timeout.
METRICS_PORT=$free_port start fu --id coord-fu --enable-metrics
METRICS_PORT=0 start off --id coord-off --enable-metrics --timeout 2000
if wait_text "$dir/off.out" "Metrics server disabled (METRICS_PORT=0)" 5 &&
    ! grep -q "Metrics server listening" "$dir/off.out"; then
    ok "METRICS_PORT=0: metrics off"
else
    bad "METRICS_PORT=0" "$dir/off.out" "$dir/off.err"
fi
if wait_text "$dir/fu.out" "Waiting for signal" 5 &&
    [ "$(curl -s -X POST "http://127.0.0.1:$free_port/api/timeouts/force-unblock-all")" = '{"unblocked":1}' ]; then
    finish fu 10
    if [ "$rc" = 1 ] && grep -qF "Wait ended by an operator (force-unblock)" "$dir/fu.out" &&
        [ "$(R GET blocking:heartbeat:coord-fu | json_get state)" = timeout ]; then
        ok "force-unblock-all: runner exits 1, says so, last heartbeat state timeout"
    else
        bad "force-unblock-all: rc $rc" "$dir/fu.out" "$dir/fu.err"
    fi
else
    bad "force-unblock-all request" "$dir/fu.out" "$dir/fu.err"
fi
# Truthful: no more lines than heartbeats written before the last one (its sequence).
lines=$(hb_lines)
seq=$(R GET blocking:heartbeat:coord-h | json_get sequence)
if [ "$lines" -ge 2 ] && [ "$lines" -lt "$seq" ]; then
    ok "--log-heartbeat: $lines 'Heartbeat sent (TTL: 90s)' lines, last heartbeat sequence $seq"
else
    bad "--log-heartbeat: $lines lines, last heartbeat sequence $seq" "$dir/h.out"
fi

exit $fail
