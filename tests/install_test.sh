#!/usr/bin/env bash
# install_test.sh BUILD_DIR SOURCE_DIR: `make install` into a temporary
# prefix, then build and run a small embedder program with
#   cc app.c $(pkg-config --cflags --libs blockcoord)
# against that installed copy only.
set -euo pipefail
build=$1
src=$2
if grep -q '^BC_SANITIZE:STRING=.\+' "$build/CMakeCache.txt"; then
    echo "install_test: skipped in a sanitizer build (the installed library is instrumented)"
    exit 77
fi
prefix=$(mktemp -d "${TMPDIR:-/tmp}/bc-install.XXXXXX")
trap 'rm -rf "$prefix"' EXIT

cmake --install "$build" --prefix "$prefix" >/dev/null
pc=$(find "$prefix" -name blockcoord.pc | head -n 1)
[ -n "$pc" ] || { echo "install_test: blockcoord.pc was not installed"; exit 1; }
[ -f "$prefix/include/blockcoord.h" ] || { echo "install_test: header not installed"; exit 1; }
libdir=$(dirname "$(dirname "$pc")")

cat > "$prefix/app.c" <<'C'
#include <blockcoord.h>
#include <stdio.h>

typedef struct { bc_msg_t hdr; int value; } num_msg_t;
static int total;

static void adder(bc_actor_t *self, void *state, bc_msg_t *msg)
{
    if (msg->type == BC_MSG_STOPPED)
        return;
    total += ((num_msg_t *)msg)->value;
    if (total == 5050)
        bc_stop(self);
}

int main(void)
{
    bc_runtime_t *rt;
    if (bc_runtime_create(NULL, &rt) != 0)
        return 1;
    bc_actor_t *a = bc_spawn(rt, adder, NULL);
    for (int i = 1; i <= 100; i++) {
        num_msg_t *m = bc_msg_alloc(sizeof *m, 1);
        m->value = i;
        bc_send(a, &m->hdr);
    }
    int rc = bc_runtime_wait(rt, 10000);
    bc_actor_release(a);
    bc_runtime_destroy(rt);
    printf("total=%d wait=%d version=%s\n", total, rc, BC_VERSION_STRING);
    return rc == 0 && total == 5050 ? 0 : 1;
}
C
export PKG_CONFIG_PATH="$libdir/pkgconfig"
flags=$(pkg-config --cflags --libs blockcoord)
cc -std=c11 -Wall -Werror "$prefix/app.c" -o "$prefix/app" $flags -Wl,-rpath,"$libdir"
out=$("$prefix/app")
echo "$out"
[ "$out" = "total=5050 wait=0 version=$(pkg-config --modversion blockcoord)" ] || {
    echo "install_test: unexpected output"; exit 1; }
# The program must use the installed shared library, not the build tree's.
deps=$(ldd "$prefix/app")
grep -qF "$libdir/libblockcoord.so" <<<"$deps" || {
    echo "install_test: app is not linked against the installed library"; echo "$deps"; exit 1; }
echo "install_test: ok"
