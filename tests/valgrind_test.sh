#!/usr/bin/env bash
# valgrind_test.sh BUILD_DIR SOURCE_DIR: a full runtime run (spawn, messages,
# timers through the I/O thread, stop, destroy) under valgrind memcheck must
# report no errors and no definitely/indirectly lost memory.
set -uo pipefail
build=$1
if grep -q '^BC_SANITIZE:STRING=.\+' "$build/CMakeCache.txt"; then
    echo "valgrind_test: skipped in a sanitizer build"
    exit 77
fi
if ! command -v valgrind >/dev/null 2>&1; then
    echo "valgrind_test: valgrind is not installed (scripts/install-deps installs it)"
    exit 1
fi
run() {
    valgrind --quiet --error-exitcode=99 --leak-check=full \
        --errors-for-leak-kinds=definite,indirect --show-leak-kinds=definite,indirect \
        "$@"
}
rc=0
run "$build/blockcoord" ring --actors 2000 --tokens 20 --hops 500 --workers 2 >/dev/null || rc=1
run "$build/tests/test_actor" >/dev/null || rc=1
[ $rc -eq 0 ] && echo "valgrind_test: clean" || echo "valgrind_test: valgrind reported errors or leaks"
exit $rc
