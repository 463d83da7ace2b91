# blockcoord - what users type. CMake does the building; this file installs
# what is missing, picks the build directories and runs things.
#
#   make demo     install dependencies, build Release into build/, run the demo
#   make test     the same set-up, then every suite in three builds:
#                 plain (build/), ASan+UBSan (build-asan/), TSan (build-tsan/)
#   make bench    every benchmark, against a throwaway Redis
#   make chaos    both chaos tests at full length (5 minutes each), results in
#                 chaos-out/ (docs/chaos.md)
#   make install  PREFIX=/usr/local: library, headers, blockcoord.pc, CLI

PREFIX ?= /usr/local
JOBS ?= $(shell nproc 2>/dev/null || echo 2)
CMAKE_FLAGS ?=
WITH_REDIS := scripts/with-redis

.PHONY: all deps build build-asan build-tsan demo test test-plain test-asan test-tsan \
	bench chaos install uninstall format clean

all: build

deps:
	@bash scripts/install-deps

build: deps
	cmake -S . -B build -DCMAKE_BUILD_TYPE=Release $(CMAKE_FLAGS) >/dev/null
	cmake --build build -j $(JOBS)

build-asan: deps
	cmake -S . -B build-asan -DCMAKE_BUILD_TYPE=Debug -DBC_SANITIZE=address,undefined $(CMAKE_FLAGS) >/dev/null
	cmake --build build-asan -j $(JOBS)

build-tsan: deps
	cmake -S . -B build-tsan -DCMAKE_BUILD_TYPE=RelWithDebInfo -DBC_SANITIZE=thread $(CMAKE_FLAGS) >/dev/null
	cmake --build build-tsan -j $(JOBS)

demo: build
	$(WITH_REDIS) ./build/blockcoord demo

test: test-plain test-asan test-tsan
	@echo "make test: all suites passed in build/, build-asan/ and build-tsan/"

test-plain: build
	$(WITH_REDIS) ctest --test-dir build --output-on-failure -j $(JOBS)

test-asan: build-asan
	$(WITH_REDIS) ctest --test-dir build-asan --output-on-failure -j $(JOBS)

# Under TSan: the runtime and concurrency suites (shell tests exercise the
# installed/plain programs and gain nothing from a TSan build).
test-tsan: build-tsan
	$(WITH_REDIS) ctest --test-dir build-tsan --output-on-failure -j $(JOBS) -LE shell

bench: build
	$(WITH_REDIS) bash scripts/run-benches build

# process-kill runs against a throwaway Redis; redis-restart starts (and kills) its own.
# Both run even if the first fails; the target fails if either did.
chaos: build
	@rc=0; \
	$(WITH_REDIS) ./build/blockcoord chaos process-kill --hosts 10 --per-host 20 --duration 300 \
		--kill-interval 30 --work-items 1000 --fast --out chaos-out/process-kill || rc=1; \
	./build/blockcoord chaos redis-restart --duration 300 --interval 30 \
		--out chaos-out/redis-restart || rc=1; \
	exit $$rc

install: build
	cmake --install build --prefix $(PREFIX)

format:
	clang-format -i include/*.h runtime/*.[ch] actors/*.[ch] tools/*.c examples/*.c bench/*.c tests/*.[ch] 2>/dev/null || true

clean:
	rm -rf build build-asan build-tsan chaos-out
