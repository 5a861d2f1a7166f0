# Thin wrapper: the build is CMake's, the tests are ctest's.
#   make run    install what is missing, build, start a demo server on 127.0.0.1:1110
#   make test   the same set-up, then every test (normal and ASan+UBSan builds)
BUILD ?= build
SANBUILD ?= build-sanitize
JOBS ?= $(shell nproc)

.PHONY: all deps build build-sanitize demo run test test-fast clean

all: build

deps:
	@sh t/tools/setup-host.sh

build: deps
	cmake -S . -B $(BUILD) -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
	cmake --build $(BUILD) -j$(JOBS)

build-sanitize: deps
	cmake -S . -B $(SANBUILD) -DCMAKE_BUILD_TYPE=Debug -DFASTPOP_SANITIZE=ON >/dev/null
	cmake --build $(SANBUILD) -j$(JOBS)

demo: build
	@sh t/tools/make-demo.sh $(BUILD)

run: demo
	@sh t/tools/run-demo.sh $(BUILD)

# Every test twice: the release build, then under ASan+UBSan.
test: demo build-sanitize
	cd $(BUILD) && ctest -j$(JOBS) --output-on-failure --timeout 300
	cd $(SANBUILD) && ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 \
	  UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 ctest -j$(JOBS) --output-on-failure --timeout 300

# The release build only (quicker while developing).
test-fast: demo
	cd $(BUILD) && ctest -j$(JOBS) --output-on-failure --timeout 300

clean:
	rm -rf $(BUILD) $(SANBUILD)
