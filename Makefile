# Thin wrapper over CMake for the two quick-start commands: `make demo` and `make test`.
BUILD      ?= build
ASAN_BUILD ?= build-asan
FUZZ_BUILD ?= build-fuzz
FUZZ_TIME  ?= 20
FIXTURES   ?= ../shared/fixtures
JOBS       ?= $(shell nproc 2>/dev/null || echo 2)
CMAKE_ARGS ?=
PREFIX     ?= /usr/local
VKLLM      := $(BUILD)/bin/vkllm
DEMO_DIR   := $(BUILD)/demo

.PHONY: all deps build build-asan demo install test test-fast test-asan test-install test-clone fuzz clean

all: build

deps:
	@bash scripts/deps.sh

build: deps
	@cmake -S . -B $(BUILD) -DCMAKE_BUILD_TYPE=Release $(CMAKE_ARGS) >/dev/null
	@cmake --build $(BUILD) -j $(JOBS)

build-asan: deps
	@cmake -S . -B $(ASAN_BUILD) -DCMAKE_BUILD_TYPE=Debug -DVKLLM_SANITIZE=ON $(CMAKE_ARGS) >/dev/null
	@cmake --build $(ASAN_BUILD) -j $(JOBS)

demo: build
	@bash scripts/demo.sh $(BUILD)

# The vkllm binary, libvkllm (static, and shared with a versioned soname), vkllm.h and vkllm.pc.
install: build
	@cmake --install $(BUILD) --prefix $(PREFIX)

# The whole suite: the release build, then the same suite under ASan + UBSan, then each fuzzer
# for FUZZ_TIME seconds, then the installed library (examples/greedy.c built with pkg-config), and,
# where the larger reference set is present, a copy of the checkout without it (what a user's clone
# sees: the in-repository set alone, no test skipped).
test: test-fast test-asan fuzz test-install test-clone

test-fast: build
	@cd $(BUILD) && ctest --output-on-failure -j $(JOBS)

test-asan: build-asan
	@cd $(ASAN_BUILD) && ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 \
	  LSAN_OPTIONS=suppressions=$(CURDIR)/tests/lsan.supp:print_suppressions=0 \
	  UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
	  ctest --output-on-failure -j $(JOBS)

test-install: build
	@bash scripts/check-install.sh $(BUILD)

test-clone:
	@if [ -d "$(FIXTURES)" ]; then bash scripts/check-clone.sh $(JOBS); \
	else echo "test-clone: $(FIXTURES) is absent, so test-fast already ran as a plain clone does"; fi

# libFuzzer harnesses (clang, ASan + UBSan) for the GGUF reader and the model loader, each run for
# FUZZ_TIME seconds (`make fuzz FUZZ_TIME=600` for a longer run) on a corpus seeded with small
# synthetic models, the fixtures' headers and tests/regress/. A crash fails the target; the input
# is saved in $(FUZZ_BUILD)/crashes/ (minimize it, add it to tests/regress/ and fix the bug).
fuzz: deps
	@cmake -S . -B $(FUZZ_BUILD) -DCMAKE_C_COMPILER=clang -DCMAKE_BUILD_TYPE=Debug -DVKLLM_FUZZ=ON $(CMAKE_ARGS) >/dev/null
	@cmake --build $(FUZZ_BUILD) -j $(JOBS) --target fuzz_gguf fuzz_model fuzz_corpus
	@$(FUZZ_BUILD)/bin/fuzz_corpus $(FUZZ_BUILD)/seeds tests/fixtures $(FIXTURES)
	@mkdir -p $(FUZZ_BUILD)/crashes
	@for t in gguf model; do \
	  mkdir -p $(FUZZ_BUILD)/corpus-$$t; \
	  echo "fuzz_$$t: $(FUZZ_TIME) s"; \
	  if ! $(FUZZ_BUILD)/bin/fuzz_$$t -max_total_time=$(FUZZ_TIME) -max_len=1048576 -timeout=10 \
	      -artifact_prefix=$(FUZZ_BUILD)/crashes/$$t- -print_final_stats=1 \
	      $(FUZZ_BUILD)/corpus-$$t $(FUZZ_BUILD)/seeds tests/regress >$(FUZZ_BUILD)/fuzz_$$t.log 2>&1; then \
	    tail -n 60 $(FUZZ_BUILD)/fuzz_$$t.log; \
	    echo "fuzz_$$t failed: input saved in $(FUZZ_BUILD)/crashes/ (log: $(FUZZ_BUILD)/fuzz_$$t.log)"; exit 1; \
	  fi; \
	  grep -E 'stat::(number_of_executed_units|new_units_added)' $(FUZZ_BUILD)/fuzz_$$t.log | tr '\n' ' '; echo; \
	done

clean:
	rm -rf $(BUILD) $(ASAN_BUILD) $(FUZZ_BUILD)
