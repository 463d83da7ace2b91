#!/usr/bin/env bash
# demo_test.sh BUILD_DIR SOURCE_DIR: `blockcoord demo` (the CFN Loop at scale), its --json line,
# the cfn-loop-consensus example, `blockcoord ring` and the demo's usage errors, against a
# throwaway redis-server on a Unix socket (started here, stopped by its PID).
set -uo pipefail
build=$1
bin="$build/blockcoord"
example="$build/cfn-loop-consensus"
fail=0

if ! command -v redis-server >/dev/null 2>&1; then
    echo "SKIP: redis-server not found"
    exit 77
fi

dir=$(mktemp -d) || exit 1
sock="$dir/redis.sock"
pid=""
cleanup() {
    if [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null; then
        kill "$pid" 2>/dev/null
        for _ in $(seq 1 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
        kill -9 "$pid" 2>/dev/null
        wait "$pid" 2>/dev/null
    fi
    rm -rf "$dir"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

redis-server --port 0 --unixsocket "$sock" --unixsocketperm 700 --dir "$dir" --save '' \
    --appendonly no --daemonize no --logfile "$dir/redis.log" >/dev/null 2>&1 &
pid=$!
for _ in $(seq 1 100); do
    [ -S "$sock" ] && redis-cli -s "$sock" ping >/dev/null 2>&1 && break
    sleep 0.05
done
if ! redis-cli -s "$sock" ping >/dev/null 2>&1; then
    echo "FAIL: redis-server did not start on $sock"
    cat "$dir/redis.log" 2>/dev/null
    exit 1
fi
export REDIS_URL="unix://$sock"
export BLOCKING_COORDINATION_SECRET
BLOCKING_COORDINATION_SECRET=$(od -An -tx1 -N32 /dev/urandom | tr -d ' \n')

ok() { echo "ok   $1"; }
bad() { # bad NAME OUTPUT
    echo "FAIL $1"
    echo "$2" | head -30 | sed 's/^/     /'
    fail=1
}
has() { # has NAME OUTPUT EXTENDED-REGEX
    if grep -qE -- "$3" <<<"$2"; then ok "$1"; else bad "$1 (want /$3/)" "$2"; fi
}
count_is() { # count_is NAME OUTPUT EXTENDED-REGEX N
    local n
    n=$(grep -cE -- "$3" <<<"$2")
    if [ "$n" -eq "$4" ]; then ok "$1"; else bad "$1 (want $4 lines /$3/, got $n)" "$2"; fi
}

# ---- the table: 50 product owners x 4 validators x 2 rounds
P=50 V=4 R=2
signals=$((P * V * R * 3)) # per round per product owner: V validate + V validation + V decide
out=$("$bin" demo --product-owners $P --validators $V --rounds $R 2>&1)
rc=$?
if [ $rc -eq 0 ]; then ok "demo exits 0"; else bad "demo exits 0 (rc=$rc)" "$out"; fi
has "demo header" "$out" "^CFN Loop demo: $P product owners x $V validators, $R rounds"
has "rounds completed" "$out" "^  rounds completed +$R / $R\$"
has "decisions" "$out" "^  decisions +$((P * R))  \(PROCEED [0-9]+, DEFER [0-9]+, ESCALATE [0-9]+\)\$"
has "signals delivered" "$out" "^  signals delivered +$signals  \(each exactly once\)\$"
has "latency p50" "$out" "^  signal latency p50 +[0-9.]+ (us|ms|s)\$"
has "latency p999" "$out" "^  signal latency p999 +[0-9.]+ (us|ms|s)\$"
has "redis line" "$out" "^  redis +.*0 send failures; 0 rejected\$"
sum=$(sed -nE 's/.*\(PROCEED ([0-9]+), DEFER ([0-9]+), ESCALATE ([0-9]+)\).*/\1 \2 \3/p' <<<"$out")
if [ -n "$sum" ] && [ $(($(tr ' ' '+' <<<"$sum"))) -eq $((P * R)) ]; then
    ok "decision kinds add up"
else
    bad "decision kinds add up ($sum)" "$out"
fi
if grep -q "not set; using a random" <<<"$out"; then
    bad "no secret notice when the secret is set" "$out"
else
    ok "no secret notice when the secret is set"
fi

# ---- --json: one line on stdout
json=$("$bin" demo --product-owners $P --validators $V --rounds $R --json 2>/dev/null)
rc=$?
if [ $rc -eq 0 ]; then ok "demo --json exits 0"; else bad "demo --json exits 0 (rc=$rc)" "$json"; fi
count_is "demo --json prints one line" "$json" "." 1
for want in '"bench":"cfn_demo"' "\"product_owners\":$P" "\"validators\":$V" "\"rounds\":$R" \
    "\"decisions\":$((P * R))" "\"signals\":$signals" '"latency_p50_us":[0-9.]+' \
    '"latency_p99_us":[0-9.]+' '"latency_p999_us":[0-9.]+' '"elapsed_s":[0-9.]+' '"ok":true'; do
    has "json $want" "$json" "$want"
done
if command -v python3 >/dev/null 2>&1; then
    if python3 -c 'import json,sys; d=json.loads(sys.stdin.read()); assert d["proceed"]+d["defer"]+d["escalate"]==d["decisions"]' <<<"$json"; then
        ok "json parses"
    else
        bad "json parses" "$json"
    fi
fi

# ---- the same seed decides the same way
a=$("$bin" demo --product-owners 20 --rounds 2 --seed 7 --json 2>/dev/null | grep -oE '"proceed":[0-9]+,"defer":[0-9]+,"escalate":[0-9]+')
b=$("$bin" demo --product-owners 20 --rounds 2 --seed 7 --json 2>/dev/null | grep -oE '"proceed":[0-9]+,"defer":[0-9]+,"escalate":[0-9]+')
if [ -n "$a" ] && [ "$a" = "$b" ]; then ok "seeded decisions repeat"; else bad "seeded decisions repeat" "$a / $b"; fi

# ---- without a secret the demo makes one up and says so in one line
out=$(env -u BLOCKING_COORDINATION_SECRET "$bin" demo --product-owners 5 --validators 2 --rounds 1 2>&1)
rc=$?
if [ $rc -eq 0 ]; then ok "demo without a secret exits 0"; else bad "demo without a secret (rc=$rc)" "$out"; fi
count_is "one line about the made-up secret" "$out" "BLOCKING_COORDINATION_SECRET is not set; using a random 32-byte secret" 1

# ---- the example
out=$("$example" 2>&1)
rc=$?
if [ $rc -eq 0 ]; then ok "cfn-loop-consensus exits 0"; else bad "cfn-loop-consensus exits 0 (rc=$rc)" "$out"; fi
count_is "example: 4 validation lines" "$out" "^Validation signal from validator-[1-4] \(confidence 0\.[0-9]{2}\)\$" 4
count_is "example: 4 different validators" "$(grep -oE '^Validation signal from validator-[1-4]' <<<"$out" | sort -u)" "." 4
count_is "example: one decision" "$out" "^Decision: (PROCEED|DEFER|ESCALATE)\$" 1
has "example: reasoning" "$out" "^Reasoning: Consensus 0\.[0-9]{2} from 4 validators\$"
count_is "example: 4 acknowledgements" "$out" "^Acknowledged by validator-[1-4] " 4
count_is "example: 4 validators got the decision" "$out" "^validator-[1-4] received decision (PROCEED|DEFER|ESCALATE)" 4
out=$(env -u BLOCKING_COORDINATION_SECRET "$example" 2>&1)
rc=$?
if [ $rc -eq 2 ] && grep -q "BLOCKING_COORDINATION_SECRET is not set" <<<"$out"; then
    ok "example without a secret exits 2"
else
    bad "example without a secret exits 2 (rc=$rc)" "$out"
fi

# ---- the ring demo still runs
out=$("$bin" ring --actors 200 --tokens 4 --hops 500 --workers 2 2>&1)
rc=$?
if [ $rc -eq 0 ]; then ok "ring exits 0"; else bad "ring exits 0 (rc=$rc)" "$out"; fi
has "ring counts its hops" "$out" "^hops counted +2000\$"

# ---- usage errors
out=$("$bin" demo --validators 0 2>&1)
rc=$?
if [ $rc -eq 2 ] && grep -qF -- '--validators "0": expected an integer in 1..64' <<<"$out"; then
    ok "demo --validators 0 is a usage error"
else
    bad "demo --validators 0 is a usage error (rc=$rc)" "$out"
fi
out=$("$bin" demo --validators 65 2>&1)
rc=$?
if [ $rc -eq 2 ]; then ok "demo --validators 65 is a usage error"; else bad "demo --validators 65 (rc=$rc)" "$out"; fi
out=$("$bin" demo --rounds x 2>&1)
rc=$?
if [ $rc -eq 2 ]; then ok "demo --rounds x is a usage error"; else bad "demo --rounds x (rc=$rc)" "$out"; fi
out=$("$bin" demo --help 2>&1)
rc=$?
if [ $rc -eq 0 ] && grep -q "usage: blockcoord demo" <<<"$out"; then ok "demo --help"; else bad "demo --help (rc=$rc)" "$out"; fi

exit $fail
