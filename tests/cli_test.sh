#!/usr/bin/env bash
# cli_test.sh BUILD_DIR SOURCE_DIR: the blockcoord program's contract:
# --help texts, exit status 2 with a clear message on bad input, and a small
# ring demo run that completes (the CFN Loop demo needs Redis: demo_test.sh).
set -uo pipefail
build=$1
bin="$build/blockcoord"
fail=0
check() { # check NAME WANT_RC WANT_TEXT CMD...
    local name=$1 want_rc=$2 want_text=$3; shift 3
    local out rc
    out=$("$@" 2>&1); rc=$?
    if [ "$rc" -ne "$want_rc" ] || ! grep -qF -- "$want_text" <<<"$out"; then
        echo "FAIL $name: rc=$rc (want $want_rc), output:"; echo "$out" | head -20
        fail=1
    else
        echo "ok   $name"
    fi
}
check "top-level help"        0 "usage: blockcoord <command>" "$bin" --help
check "version"               0 "blockcoord 0."               "$bin" --version
check "no command"            2 "usage: blockcoord"           "$bin"
check "unknown command"       2 'unknown command "frobnicate"' "$bin" frobnicate
check "demo help"             0 "usage: blockcoord demo"      "$bin" demo --help
check "demo bad number"       2 '--product-owners "12x": expected an integer' "$bin" demo --product-owners 12x
check "demo zero validators"  2 '--validators "0": expected an integer in 1..64' "$bin" demo --validators 0
check "demo unknown flag"     2 "usage: blockcoord demo"      "$bin" demo --bogus
check "demo extra argument"   2 'unexpected argument "extra"' "$bin" demo extra
check "ring help"             0 "usage: blockcoord ring"      "$bin" ring --help
check "ring bad number"       2 '--actors "12x": expected an integer' "$bin" ring --actors 12x
check "ring negative"         2 '--hops "-5": expected an integer' "$bin" ring --hops -5
check "ring zero actors"      2 '--actors "0": expected an integer in 1..' "$bin" ring --actors 0
check "ring unknown flag"     2 "usage: blockcoord ring"      "$bin" ring --bogus
check "ring extra argument"   2 'unexpected argument "extra"' "$bin" ring extra
check "bad BC_LOG_LEVEL"      2 "BC_LOG_LEVEL"                env BC_LOG_LEVEL=loud "$bin" ring --actors 10 --tokens 1 --hops 10
check "bad BC_WORKERS warns"  0 'BC_WORKERS="lots" ignored'   env BC_WORKERS=lots "$bin" ring --actors 100 --tokens 2 --hops 100
check "bad BC_IO_SPIN_US warns" 0 'BC_IO_SPIN_US="-3" ignored: expected 0..1000000' env BC_IO_SPIN_US=-3 "$bin" ring --actors 100 --tokens 2 --hops 100
check "bad BC_IO_DIRECT warns" 0 'BC_IO_DIRECT="yes" ignored: expected 0 or 1' env BC_IO_DIRECT=yes "$bin" ring --actors 100 --tokens 2 --hops 100
check "bad BC_IO_POLL warns" 0 'BC_IO_POLL="2" ignored: expected 0 or 1' env BC_IO_POLL=2 "$bin" ring --actors 100 --tokens 2 --hops 100
check "bad BC_IO_RUN warns" 0 'BC_IO_RUN="on" ignored: expected 0 or 1' env BC_IO_RUN=on "$bin" ring --actors 100 --tokens 2 --hops 100
check "bad BC_WARM_US warns" 0 'BC_WARM_US="soon" ignored: expected 0..1000000' env BC_WARM_US=soon "$bin" ring --actors 100 --tokens 2 --hops 100
check "bad BC_WARM_CPUS warns" 0 'BC_WARM_CPUS="0" ignored: expected 1..1024' env BC_WARM_CPUS=0 "$bin" ring --actors 100 --tokens 2 --hops 100
check "small ring runs"       0 "hops counted                 20000" "$bin" ring --actors 1000 --tokens 10 --hops 2000 --workers 2
exit $fail
