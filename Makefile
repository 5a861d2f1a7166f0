# Thin wrapper: the build is CMake's, the tests are ctest's.
#   make run    install what is missing, build, start a demo server on 127.0.0.1:1110
#   make test   the same set-up, then every test (normal and ASan+UBSan builds, and each
#               fuzzer for FUZZ_SMOKE_SECONDS)
#   make fuzz   build the libFuzzer harnesses (clang) and run each for FUZZ_SECONDS
#   make deb    the Debian package (debian/), in $(DEBBUILD); make piuparts checks it
BUILD ?= build
SANBUILD ?= build-sanitize
FUZZBUILD ?= build-fuzz
DEBBUILD ?= build-deb
FUZZ_SECONDS ?= 600
FUZZ_SMOKE_SECONDS ?= 10
JOBS ?= $(shell nproc)

.PHONY: all deps build build-sanitize build-fuzz demo run test test-fast test-deb chroot-prefetch deb piuparts fuzz fuzz-smoke clean

all: build

deps:
	@sh t/tools/setup-host.sh

build: deps
	cmake -S . -B $(BUILD) -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
	cmake --build $(BUILD) -j$(JOBS)

build-sanitize: deps
	cmake -S . -B $(SANBUILD) -DCMAKE_BUILD_TYPE=Debug -DFASTPOP_SANITIZE=ON >/dev/null
	cmake --build $(SANBUILD) -j$(JOBS)

# The fuzzers: clang with libFuzzer, ASan and UBSan (t/fuzz/README.md).
build-fuzz: deps
	cmake -S . -B $(FUZZBUILD) -DCMAKE_C_COMPILER=clang -DCMAKE_BUILD_TYPE=Debug \
	  -DFASTPOP_FUZZ=ON -DFASTPOP_FUZZ_SECONDS=$(FUZZ_SECONDS) >/dev/null
	cmake --build $(FUZZBUILD) -j$(JOBS)

# Every fuzzer for FUZZ_SECONDS, two at a time; findings land in $(FUZZBUILD)/fuzz/crashes.
fuzz: build-fuzz
	cd $(FUZZBUILD) && ctest -L fuzz -j$(JOBS) --output-on-failure --timeout 0

# A short run of each, so CI keeps every harness alive.
fuzz-smoke:
	$(MAKE) fuzz FUZZ_SECONDS=$(FUZZ_SMOKE_SECONDS)

# The first `make test` on a machine bootstraps the Debian chroot test-deb needs
# (minutes, mostly the mirror): started in the background here, it overlaps the
# builds and the suites; test-deb waits for it (a lock in /var/cache/fastpop-test).
chroot-prefetch: deps
	@mkdir -p /var/cache/fastpop-test
	@(python3 t/pkg/debian_chroot.py >/var/cache/fastpop-test/prefetch.log 2>&1 &)

# The binary package fastpop_*.deb, built by dpkg-buildpackage (debhelper).
deb: deps
	@sh t/tools/make-deb.sh $(DEBBUILD)

# The package the way Debian tests one: install into a clean Debian 12 chroot,
# serve, upgrade, remove, purge; and lintian (t/pkg/test_deb.py).
test-deb: deb
	python3 -u t/pkg/test_deb.py $(DEBBUILD)

# Debian's piuparts on the same cached chroot tarball (about 2 minutes): install
# and purge in a clean system. Not part of `make test`: test-deb covers the same
# and more (serve, upgrade, remove); run it before a release.
piuparts: deb
	python3 t/pkg/debian_chroot.py
	piuparts --basetgz "$$(python3 -c 'import sys; sys.path.insert(0, "t/pkg"); import debian_chroot; print(debian_chroot.tarball_path())')" \
	  -d bookworm $(DEBBUILD)/fastpop_*.deb

demo: build
	@sh t/tools/make-demo.sh $(BUILD)

run: demo
	@sh t/tools/run-demo.sh $(BUILD)

# Every test twice: the release build, then under ASan+UBSan.
test: chroot-prefetch demo build-sanitize
	cd $(BUILD) && ctest -j$(JOBS) --output-on-failure --timeout 300
	cd $(SANBUILD) && ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 \
	  UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 ctest -j$(JOBS) --output-on-failure --timeout 300
	$(MAKE) fuzz-smoke
	$(MAKE) test-deb

# The release build only (quicker while developing).
test-fast: demo
	cd $(BUILD) && ctest -j$(JOBS) --output-on-failure --timeout 300

clean:
	rm -rf $(BUILD) $(SANBUILD) $(FUZZBUILD) $(DEBBUILD)
