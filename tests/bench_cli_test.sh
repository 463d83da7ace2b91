#!/usr/bin/env bash
# bench_cli_test.sh BUILD_DIR SOURCE_DIR: signal_bench's contract against a private
# redis-server: exit 2 with a clear message on bad flags; --placement refuses a Redis it
# cannot inspect (here one reached through a relay, whose socket peer is not Redis) and, with
# a local one over the unix socket or TCP loopback (any 127/8 address), reports its figures
# in --json; a short run completes with no errors.
set -uo pipefail
build=$1
bench="$build/bench/signal_bench"
NEEDS=python3 BINS=("$bench")
# shellcheck source=tests/coord_lib.sh
source "$2/tests/coord_lib.sh"

CHECK_TIMEOUT=120
short=(--sizes 1 --runs 1 --samples 20 --rt-seconds 0.2 --flush --json)

check "help names --placement"   0 "--placement (diagnostic)" "$bench" --help
check "runs out of range"        2 '--runs "0": expected 1..20' "$bench" --runs 0
check "sizes not a number"       2 '--sizes "1,x": expected up to 16' "$bench" --sizes 1,x
check "too few samples"          2 '--samples "5": expected 10..1000000' "$bench" --samples 5
check "unknown flag"             2 "usage: signal_bench" "$bench" --bogus

# A relay between the bench and Redis: INFO still names Redis's pid, but the socket's peer is
# the relay, so the pid cannot be trusted to be Redis on this host.
python3 - "$dir/relay.sock" "$sock" <<'PY' >"$dir/relay.log" 2>&1 &
import socket, sys, threading
srv = socket.socket(socket.AF_UNIX)
srv.bind(sys.argv[1])
srv.listen(8)
def pipe(a, b):
    try:
        while (d := a.recv(65536)):
            b.sendall(d)
    except OSError:
        pass
    for x in (a, b):
        try:
            x.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
while True:
    c, _ = srv.accept()
    u = socket.socket(socket.AF_UNIX)
    u.connect(sys.argv[2])
    threading.Thread(target=pipe, args=(c, u), daemon=True).start()
    threading.Thread(target=pipe, args=(u, c), daemon=True).start()
PY
EXTRA_PIDS="$EXTRA_PIDS $!"
for _ in $(seq 100); do [ -S "$dir/relay.sock" ] && break; sleep 0.05; done
[ "$(redis-cli -s "$dir/relay.sock" PING 2>/dev/null)" = PONG ] || bad "the relay does not answer" "$dir/relay.log"
check "placement refuses a Redis it cannot inspect" 2 \
    "--placement: Redis (pid $(R INFO server | tr -d '\r' | sed -n 's/^process_id://p')) is not a process on this host" \
    env REDIS_URL="unix://$dir/relay.sock" "$bench" "${short[@]}" --placement

# placement_check NAME JSON: every figure present, the shares in 0..1, a p50 for a group
# whenever its share says it has samples, and no errors.
placement_check() {
    if python3 - "$2" <<'PY'; then ok "$1"; else bad "$1"; fi
import json, sys
d = [json.loads(l) for l in sys.argv[1].splitlines() if l.startswith("{")][0]
assert d["bench"] == "signal_latency" and d["coordinators"] == 1 and d["errors"] == 0, d
for side in ("wake", "floor"):
    share = d[side + "_one_cpu_share"]
    assert 0 <= share <= 1, (side, share)
    one, across = d[side + "_one_cpu_p50_us"], d[side + "_across_p50_us"]
    assert (one is not None) == (share > 0) and (across is not None) == (share < 1), d
    assert all(v is None or v > 0 for v in (one, across)), d
PY
}
out=$(timeout 120 "$bench" "${short[@]}" --placement 2>"$dir/unix.err")
placement_check "placement over the unix socket" "$out"

port=$(free_port)
redis-server --port "$port" --bind 127.0.0.1 127.0.0.2 --save '' --appendonly no --daemonize no \
    >"$dir/tcp.log" 2>&1 &
EXTRA_PIDS="$EXTRA_PIDS $!"
for _ in $(seq 100); do [ "$(redis-cli -p "$port" PING 2>/dev/null)" = PONG ] && break; sleep 0.05; done
out=$(REDIS_URL="redis://127.0.0.1:$port" timeout 120 "$bench" "${short[@]}" --placement 2>"$dir/tcp.err")
placement_check "placement over TCP loopback" "$out"
# Any loopback peer is local, not only the names 127.0.0.1, ::1 and localhost.
out=$(REDIS_URL="redis://127.0.0.2:$port" timeout 120 "$bench" "${short[@]}" --placement 2>"$dir/tcp2.err")
placement_check "placement over another loopback address" "$out"

# Without --placement none of its figures is reported.
out=$(timeout 120 "$bench" "${short[@]}" 2>"$dir/plain.err")
if grep -q '"wake_p50_us"' <<<"$out" && ! grep -q 'one_cpu' <<<"$out"; then ok "no placement figures without --placement"; else
    echo "$out" >"$dir/plain.out"; bad "a run without --placement" "$dir/plain.out" "$dir/plain.err"; fi

exit $fail
