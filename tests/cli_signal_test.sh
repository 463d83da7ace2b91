#!/usr/bin/env bash
# cli_signal_test.sh BUILD_DIR SOURCE_DIR: `blockcoord signal`, `host` and `verify-setup`
# against a private redis-server (unix socket): a signal acknowledged by a runner, the exact
# slot value a native sender writes for a Node receiver (interop S9), invalid ids refused
# before any Redis traffic (S8), ACK timeouts, the setup check, and a host of 50 coordinators.
set -uo pipefail
build=$1
bc="$build/blockcoord"
runner="$build/coordinator-runner"
NEEDS=openssl BINS=("$bc" "$runner")
# shellcheck source=tests/coord_lib.sh
source "$2/tests/coord_lib.sh"
json_get() { # json_get FIELD < JSON
    if command -v jq >/dev/null; then jq -r ".$1"; else
        python3 -c "import json,sys; v=json.load(sys.stdin).get('$1'); print('null' if v is None else json.dumps(v, separators=(',',':')) if isinstance(v,(dict,list)) else v)"
    fi
}
json_keys() { # member names in document order, comma-separated
    if command -v jq >/dev/null; then jq -r 'keys_unsorted | join(",")'; else
        python3 -c "import json,sys; print(','.join(json.load(sys.stdin).keys()))"
    fi
}
finish() { # finish NAME [SECONDS]: exit status in rc (124: still running)
    local p=${PIDS[$1]} i lim=$(( ${2:-10} * 20 ))
    for ((i = 0; i < lim; i++)); do kill -0 "$p" 2>/dev/null || break; sleep 0.05; done
    if kill -0 "$p" 2>/dev/null; then rc=124; return; fi
    wait "$p"; rc=$?
    unset "PIDS[$1]"
}
scan() { R --scan --pattern 'blocking:*' | sort; }

# ---------------------------------------------------------------- signal + ACK with a runner
start d "$runner" --id coord-d
wait_text "$dir/d.out" "Waiting for signal..." || bad "runner coord-d did not start" "$dir/d.out" "$dir/d.err"
out=$(timeout 20 "$bc" signal --from cli-x --to coord-d --type completion --payload '{"a":1}' --wait-ack 5000 2>"$dir/sig.err")
src=$?
finish d 10
if [ "$src" = 0 ] && grep -qE '^ACK received from coord-d \(round trip [0-9]+\.[0-9]{3} ms\)$' <<<"$out" &&
    grep -qE '^Signal sent: cli-x:coord-d:completion:0:[0-9]{13}$' <<<"$out"; then
    ok "signal --wait-ack: Signal sent, ACK received from coord-d"
else
    echo "$out" >"$dir/sig.out"; bad "signal --wait-ack: rc $src" "$dir/sig.out" "$dir/sig.err"
fi
if [ "$rc" = 0 ] && grep -qF "Signal received: completion" "$dir/d.out" && grep -qF "Sending ACK to cli-x" "$dir/d.out"; then
    ok "runner coord-d got the signal and exits 0"
else
    bad "runner coord-d: rc $rc" "$dir/d.out" "$dir/d.err"
fi

# ---------------------------------------------------------------- the slot a native sender writes (S9)
out=$(timeout 20 "$bc" signal --from cli-x --to coord-d --type completion --payload '{ "a" : 1 }' 2>"$dir/sig2.err")
src=$?
mid=${out#Signal sent: }
val=$(R GET blocking:signal:coord-d)
ttl=$(R TTL blocking:signal:coord-d)
ts=$(json_get timestamp <<<"$val")
if [ "$src" = 0 ] && [ "$(json_keys <<<"$val")" = "timestamp,senderId,receiverId,iteration,type,payload,messageId,signature" ]; then
    ok "slot members in order timestamp,senderId,receiverId,iteration,type,payload,messageId,signature"
else
    bad "slot value (rc $src): $val" "$dir/sig2.err"
fi
compact="{\"timestamp\":$ts,\"senderId\":\"cli-x\",\"receiverId\":\"coord-d\",\"iteration\":0,\"type\":\"completion\",\"payload\":{\"a\":1},\"messageId\":\"cli-x:coord-d:completion:0:$ts\",\"signature\":\"$(hmac "$SECRET" "cli-x:coord-d:completion:$ts")\"}"
if [ "$val" = "$compact" ]; then ok "slot value is compact JSON with a valid signature"; else bad "slot value: $val (want $compact)"; fi
if [ "$mid" = "cli-x:coord-d:completion:0:$ts" ] && [ "$ttl" -gt 86300 ] && [ "$ttl" -le 86400 ]; then
    ok "messageId $mid, TTL $ttl"
else
    bad "messageId '$mid' / TTL $ttl"
fi
if [ "$(R GET "blocking:idempotency:$mid")" = 1 ] && t=$(R TTL "blocking:idempotency:$mid") &&
    [ "$t" -gt 86300 ] && [ "$t" -le 86400 ]; then
    ok "blocking:idempotency:$mid = 1, TTL $t"
else
    bad "idempotency marker of $mid"
fi
# A second native send never overwrites the occupied slot: it goes to the queue.
timeout 20 "$bc" signal --from cli-x --to coord-d --type wake >/dev/null 2>&1
if [ "$(R GET blocking:signal:coord-d)" = "$val" ] && [ "$(R LLEN blocking:signal-queue:coord-d)" = 1 ]; then
    ok "second send queued behind the occupied slot"
else
    bad "second send: slot $(R GET blocking:signal:coord-d), queue length $(R LLEN blocking:signal-queue:coord-d)"
fi

# ---------------------------------------------------------------- invalid input (S8)
before=$(scan)
id65=$(printf 'a%.0s' $(seq 65))
check "--to 'coord a'"     2 '--to "coord a": invalid character'   "$bc" signal --from cli-x --to 'coord a' --type wake
check "--to coord:b"       2 '--to "coord:b": invalid character'   "$bc" signal --from cli-x --to coord:b --type wake
check "--to of 65 chars"   2 "65 characters (max 64)"              "$bc" signal --from cli-x --to "$id65" --type wake
check "--from 'cli x'"     2 '--from "cli x": invalid character'   "$bc" signal --from 'cli x' --to coord-d --type wake
check "bad type"           2 'signal type "Wake"'                  "$bc" signal --from cli-x --to coord-d --type Wake
check "payload not object" 2 "--payload must be a JSON object"     "$bc" signal --from cli-x --to coord-d --type wake --payload '[1]'
check "payload not JSON"   2 "--payload must be a JSON object"     "$bc" signal --from cli-x --to coord-d --type wake --payload '{"a":'
check "missing --type"     2 "--type is required"                  "$bc" signal --from cli-x --to coord-d
check "bad --wait-ack"     2 '--wait-ack "soon"'                   "$bc" signal --from cli-x --to coord-d --type wake --wait-ack soon
check "signal --help"      0 "usage: blockcoord signal"            "$bc" signal --help
if [ "$(scan)" = "$before" ]; then ok "refused sends wrote no blocking:* key"; else bad "refused sends changed the keyspace"; fi
check "no ACK within 500 ms" 1 "Error: no ACK from nobody within 500 ms" "$bc" signal --from cli-x --to nobody --type wake --wait-ack 500

# ---------------------------------------------------------------- verify-setup
check "verify-setup passes" 0 "✅ Clock offset to Redis" "$bc" verify-setup
out=$(timeout 20 "$bc" verify-setup 2>&1)
if ! grep -qF "❌" <<<"$out" && grep -qF "✅ Redis connection successful (unix://$sock" <<<"$out" &&
    grep -qF "✅ Redis version supports GETDEL (>= 6.2)" <<<"$out" &&
    grep -qF "✅ BLOCKING_COORDINATION_SECRET set (64 bytes)" <<<"$out" &&
    grep -qF "✅ Keyspace notifications available" <<<"$out"; then
    ok "verify-setup: every line ✅"
else
    echo "FAIL verify-setup lines:"; sed 's/^/    /' <<<"$out"; fail=1
fi
check "verify-setup, dead socket" 1 "❌ Redis connection failed" env REDIS_URL="unix://$dir/dead.sock" "$bc" verify-setup
check "verify-setup, no secret"   1 "❌ BLOCKING_COORDINATION_SECRET is not set" env -u BLOCKING_COORDINATION_SECRET "$bc" verify-setup
check "verify-setup, short secret" 1 "only 5 bytes" env BLOCKING_COORDINATION_SECRET=short "$bc" verify-setup
redis-server --port 0 --unixsocket "$dir/noconf.sock" --save '' --appendonly no --daemonize no \
    --rename-command CONFIG "" >"$dir/noconf.log" 2>&1 &
noconf_pid=$!
EXTRA_PIDS="$EXTRA_PIDS $noconf_pid"
for _ in $(seq 100); do [ "$(redis-cli -s "$dir/noconf.sock" PING 2>/dev/null)" = PONG ] && break; sleep 0.05; done
check "verify-setup, CONFIG refused is informational" 0 "⚠️  Keyspace notifications unavailable (CONFIG refused" \
    env REDIS_URL="unix://$dir/noconf.sock" "$bc" verify-setup

# ---------------------------------------------------------------- host
check "host --help"          0 "usage: blockcoord host"   "$bc" host --help
check "host prefix invalid"  2 '--prefix "h x"'           "$bc" host --count 5 --prefix 'h x'
check "host prefix too long" 2 "is too long for --count"  "$bc" host --count 100 --prefix "$(printf 'p%.0s' $(seq 62))"
check "host count 0"         2 '--count "0"'              "$bc" host --count 0
start host "$bc" host --count 50 --prefix h
for _ in $(seq 100); do [ "$(R EXISTS blocking:heartbeat:h-49)" = 1 ] && break; sleep 0.05; done
out=$(timeout 20 "$bc" signal --from cli-x --to h-7 --type wake --wait-ack 5000 2>&1)
src=$?
if [ "$src" = 0 ] && grep -qF "ACK received from h-7" <<<"$out"; then
    ok "host: h-7 acknowledges a signal"
else
    echo "$out" >"$dir/hsig.out"; bad "host: signal to h-7 rc $src" "$dir/hsig.out" "$dir/host.out" "$dir/host.err"
fi
out=$(timeout 20 "$bc" signal --from cli-x --to h-7 --type wake --wait-ack 5000 2>&1)
if [ $? = 0 ] && grep -qF "ACK received from h-7" <<<"$out"; then ok "host: h-7 waits again after a signal"; else bad "host: second signal to h-7"; fi
sleep 5.2 # the non-TTY status line comes every 5 s
kill -INT "${PIDS[host]}"
finish host 15
if [ "$rc" = 0 ] && grep -qE '^hosting 50 coordinators \| ready 50 \| waiting 50 \| signals 2 \| acks 2 \| rejected 0 \| redis keyspace \| rss [0-9.]+ MB$' "$dir/host.out" &&
    grep -qF "SIGINT received" "$dir/host.out"; then
    ok "host: status line, SIGINT exits 0"
else
    bad "host: rc $rc" "$dir/host.out" "$dir/host.err"
fi
hb=$(R GET blocking:heartbeat:h-0)
if [ "$(json_get state <<<"$hb")" = stopping ]; then ok "host: last heartbeats say stopping"; else bad "host: heartbeat of h-0: $hb"; fi

exit $fail
