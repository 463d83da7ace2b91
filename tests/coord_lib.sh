# coord_lib.sh - shared by the coordinator shell tests (sourced, not run): a private
# redis-server on a Unix socket in $dir (a fresh temp dir), stopped by its PID on exit, plus
# small helpers. Before sourcing, the test may set NEEDS (tools besides redis-server and
# redis-cli: one missing skips the test, exit 77, or fails it if NEEDS_FAIL=1) and BINS (the
# programs it runs: one not built fails it). It may add PIDs to the PIDS array and extra pids
# to EXTRA_PIDS; cleanup kills them.
for tool in redis-server redis-cli ${NEEDS:-}; do
    command -v "$tool" >/dev/null && continue
    [ "${NEEDS_FAIL:-0}" = 1 ] && { echo "FAIL: $tool not installed (scripts/install-deps)"; exit 1; }
    echo "skip: $tool not installed"; exit 77
done
for b in ${BINS[@]+"${BINS[@]}"}; do
    [ -x "$b" ] || { echo "FAIL: $b not built"; exit 1; }
done
dir=$(mktemp -d)
SECRET=a3f7e9b2c1d8f4a6e2b9c7d3f8a4e1b6c9d2f7a3e8b1c4d6f9a2e7b3c8d1f4a6
sock="$dir/r.sock"
declare -A PIDS=()
EXTRA_PIDS=""
redis_pid=
cleanup() {
    for p in "${PIDS[@]}"; do kill -KILL "$p" 2>/dev/null; done
    for p in $redis_pid $EXTRA_PIDS; do kill "$p" 2>/dev/null; wait "$p" 2>/dev/null; done
    rm -rf "$dir"
}
trap cleanup EXIT

redis-server --port 0 --unixsocket "$sock" --save '' --appendonly no --daemonize no \
    >"$dir/redis.log" 2>&1 &
redis_pid=$!
R() { redis-cli -s "$sock" "$@"; }
for _ in $(seq 100); do [ "$(R PING 2>/dev/null)" = PONG ] && break; sleep 0.05; done
[ "$(R PING 2>/dev/null)" = PONG ] || { echo "FAIL: redis-server did not start"; cat "$dir/redis.log"; exit 1; }

unset REDIS_DB REDIS_PASSWORD HEARTBEAT_INTERVAL_MS BLOCKING_TIMEOUT_MS
export REDIS_URL="unix://$sock" BLOCKING_COORDINATION_SECRET=$SECRET

fail=0
ok() { echo "ok   $1"; }
bad() {
    echo "FAIL $1"; fail=1
    shift
    for f in "$@"; do echo "---- $f"; sed 's/^/    /' "$f" | tail -20; done
}
hmac() { printf '%s' "$2" | openssl dgst -sha256 -hmac "$1" -hex | awk '{print $NF}'; }

# Helpers the shell tests share.
wait_text() { # wait_text FILE TEXT [SECONDS]: 0 once FILE contains TEXT
    local i lim=$(( ${3:-10} * 20 ))
    for ((i = 0; i < lim; i++)); do grep -qF -- "$2" "$1" 2>/dev/null && return 0; sleep 0.05; done
    return 1
}
start() { # start NAME CMD...: run CMD in the background, output in $dir/NAME.{out,err}
    local name=$1; shift
    "$@" >"$dir/$name.out" 2>"$dir/$name.err" &
    PIDS[$name]=$!
}
check() { # check NAME WANT_RC WANT_TEXT CMD...: CMD (within CHECK_TIMEOUT s, default 20) exits
    # WANT_RC and its output holds WANT_TEXT; rc keeps its exit status
    local name=$1 want=$2 text=$3 out; shift 3
    out=$(timeout "${CHECK_TIMEOUT:-20}" "$@" 2>&1); rc=$?
    if [ "$rc" = "$want" ] && grep -qF -- "$text" <<<"$out"; then ok "$name"; else
        echo "FAIL $name: rc $rc (want $want), output:"; sed 's/^/    /' <<<"$out" | head -12; fail=1
    fi
}
free_port() { # a TCP port free on 127.0.0.1 now (it can be taken before use: callers retry)
    python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}
