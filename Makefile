# lockerd build. `make` builds bin/lockerd, the C client library
# (bin/liblocker.a, bin/liblocker.so) and its tools; `make test` runs every
# test; `make asan` runs them again against an address/UB-sanitized build.

CC      ?= cc
CSTD    := -std=c11 -D_GNU_SOURCE
WARN    := -Wall -Wextra -Werror -Wshadow -Wno-missing-field-initializers
OPT     ?= -O2 -g
EI_INC  := $(shell erl -noshell -eval 'io:format("~s", [code:lib_dir(erl_interface, include)]), halt().' 2>/dev/null)
EI_LIB  := $(shell erl -noshell -eval 'io:format("~s", [code:lib_dir(erl_interface, lib)]), halt().' 2>/dev/null)
# -fPIC everywhere: the same objects go into bin/liblocker.so.
CFLAGS  += $(CSTD) $(WARN) $(OPT) -fPIC -I. $(if $(EI_INC),-I$(EI_INC)) $(SANFLAGS)
LDLIBS  += $(if $(EI_LIB),-L$(EI_LIB)) -lei -lssl -lcrypto -lpthread
LDFLAGS += $(SANFLAGS)

BUILD   ?= build/default
BINDIR  ?= bin

LIB_SRC := $(sort $(wildcard cnode/*/*.c) $(wildcard ei_glue/*.c) $(wildcard client/*.c))
LIB_OBJ := $(LIB_SRC:%.c=$(BUILD)/%.o)
# The client library: client/ plus the layers it runs on (no server side).
CLIENT_SRC := $(sort $(wildcard client/*.c) $(wildcard cnode/core/*.c) $(wildcard cnode/dist/*.c) \
                     $(wildcard cnode/node/*.c) $(wildcard cnode/coord/*.c) $(wildcard ei_glue/*.c))
CLIENT_OBJ := $(CLIENT_SRC:%.c=$(BUILD)/%.o)
# The shared library is versioned (packaging/packaging.mk: VERSION, SOMAJOR):
# liblocker.so.$(VERSION) with soname liblocker.so.$(SOMAJOR), and the two
# symlinks a link line and the loader look for.
VERSION := $(shell sed -n 's/^\#define LOCKERD_VERSION "\(.*\)"/\1/p' cnode/main.c)
SOMAJOR := 0
CLIENT_LIBS := $(BINDIR)/liblocker.a $(BINDIR)/liblocker.so.$(VERSION) \
               $(BINDIR)/liblocker.so.$(SOMAJOR) $(BINDIR)/liblocker.so
CLIENT_TOOLS := $(BINDIR)/locker-echo $(BINDIR)/lkc-hold $(BINDIR)/lkc-example $(BINDIR)/lockerctl
LOCKERCTL_SRC := $(sort $(wildcard tools/lockerctl*.c))
LOCKERCTL_OBJ := $(LOCKERCTL_SRC:%.c=$(BUILD)/%.o)
TEST_SRC := $(sort $(wildcard test/c/test_*.c))
TEST_BIN := $(TEST_SRC:test/c/%.c=$(BUILD)/test/%)

.PHONY: all test test-c test-erlang test-elixir asan clean deps run
all: $(BINDIR)/lockerd $(CLIENT_LIBS) $(CLIENT_TOOLS)

# Objects depend on the compile flags, so a flag change (e.g. -fPIC, which
# the shared library needs) rebuilds them instead of mixing old and new.
$(BUILD)/.cflags: FORCE
	@mkdir -p $(dir $@)
	@echo '$(CC) $(CFLAGS)' | cmp -s - $@ || echo '$(CC) $(CFLAGS)' > $@

.PHONY: FORCE
FORCE:

$(BUILD)/%.o: %.c $(BUILD)/.cflags
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -MMD -MP -c $< -o $@

$(BUILD)/liblockerd.a: $(LIB_OBJ)
	@rm -f $@
	ar rcs $@ $^

$(BINDIR)/lockerd: $(BUILD)/cnode/main.o $(BUILD)/liblockerd.a
	@mkdir -p $(dir $@)
	$(CC) $(LDFLAGS) $^ $(LDLIBS) -o $@

# Static: our objects and libei's, so `cc app.c bin/liblocker.a -lssl -lcrypto
# -lpthread` links. Shared: only the lkc_ API is exported.
$(BINDIR)/liblocker.a: $(CLIENT_OBJ)
	@mkdir -p $(dir $@)
	@rm -f $@
	{ echo "CREATE $@"; for o in $^; do echo "ADDMOD $$o"; done; \
	  echo "ADDLIB $(EI_LIB)/libei.a"; echo SAVE; echo END; } | ar -M

$(BINDIR)/liblocker.so.$(SOMAJOR) $(BINDIR)/liblocker.so: $(BINDIR)/liblocker.so.$(VERSION)
	ln -sf liblocker.so.$(VERSION) $@

$(BINDIR)/liblocker.so.$(VERSION): $(CLIENT_OBJ) client/liblocker.map
	@mkdir -p $(dir $@)
	$(CC) -shared $(LDFLAGS) -Wl,--version-script=client/liblocker.map \
	    -Wl,-soname,liblocker.so.$(SOMAJOR) \
	    $(CLIENT_OBJ) $(EI_LIB)/libei.a -lssl -lcrypto -lpthread -o $@

$(BINDIR)/locker-echo: $(BUILD)/tools/locker-echo.o $(BUILD)/tools/tool_args.o $(BINDIR)/liblocker.a
	$(CC) $(LDFLAGS) $^ -lssl -lcrypto -lpthread -o $@

$(BINDIR)/lkc-hold: $(BUILD)/tools/lkc-hold.o $(BUILD)/tools/tool_args.o $(BINDIR)/liblocker.a
	$(CC) $(LDFLAGS) $^ -lssl -lcrypto -lpthread -o $@

$(BINDIR)/lkc-example: $(BUILD)/tools/lkc_example.o $(BUILD)/tools/tool_args.o $(BINDIR)/liblocker.a
	$(CC) $(LDFLAGS) $^ -lssl -lcrypto -lpthread -o $@

$(BINDIR)/lockerctl: $(LOCKERCTL_OBJ) $(BINDIR)/liblocker.a
	@mkdir -p $(dir $@)
	$(CC) $(LDFLAGS) $^ -lssl -lcrypto -lpthread -o $@

$(BUILD)/test/%: test/c/%.c $(BUILD)/liblockerd.a
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) $< $(BUILD)/liblockerd.a $(LDFLAGS) $(LDLIBS) -lcmocka -o $@

# test_client starts lockerd masters (LOCKERD_BIN).
test-c: $(TEST_BIN) $(BINDIR)/lockerd
	@set -e; for t in $(TEST_BIN); do echo "== $$t"; LOCKERD_BIN=$(abspath $(BINDIR)/lockerd) $$t; done

# The client suites find the tools next to LOCKERD_BIN.
test-erlang: $(BINDIR)/lockerd $(CLIENT_TOOLS)
	LOCKERD_BIN=$(abspath $(BINDIR)/lockerd) LOCKERCTL_BIN=$(abspath $(BINDIR)/lockerctl) \
	    test/erlang/run.sh

test-elixir: $(BINDIR)/lockerd $(CLIENT_TOOLS)
	LOCKERD_BIN=$(abspath $(BINDIR)/lockerd) test/elixir/run.sh

test: test-c test-erlang test-elixir

ASAN := -fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=undefined
ASAN_REPORTS := $(abspath build/asan/reports)
# Sanitizer reports go to files, so a report from a lockerd started by a
# Common Test suite fails the run even when the suite itself passed.
asan:
	rm -rf $(ASAN_REPORTS) && mkdir -p $(ASAN_REPORTS)
	ASAN_OPTIONS=detect_leaks=1:log_path=$(ASAN_REPORTS)/asan \
	UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1:log_path=$(ASAN_REPORTS)/ubsan \
	    $(MAKE) BUILD=build/asan BINDIR=build/asan/bin OPT="-O1 -g" SANFLAGS="$(ASAN)" test
	@if ls $(ASAN_REPORTS)/* >/dev/null 2>&1; then \
	    echo "sanitizer reports:"; cat $(ASAN_REPORTS)/*; exit 1; fi
	@echo "asan: no sanitizer reports"

deps:
	scripts/setup.sh

run: all
	scripts/run.sh

clean:
	rm -rf build bin/lockerd bin/liblocker.so* $(CLIENT_LIBS) $(CLIENT_TOOLS) _build

include packaging/packaging.mk

-include $(LIB_OBJ:.o=.d) $(BUILD)/cnode/main.d $(wildcard $(BUILD)/tools/*.d)

# The node-local lock's threaded tests under ThreadSanitizer (a report
# makes the binary exit non-zero).
# Every test of `make test` again with the BEAM, erl_interface and Elixir of
# OTP 27 and 29, each in a Debian chroot cached under /var/cache/lockerd/otp
# (scripts/test-otp.sh; README "Supported releases"). Needs root.
# OTP_RELEASES="27" picks releases.
.PHONY: test-otp
test-otp:
	scripts/test-otp.sh $(OTP_RELEASES)

.PHONY: test-tsan
test-tsan:
	@mkdir -p build/tsan
	$(CC) $(CSTD) $(WARN) -O1 -g -fsanitize=thread -I. test/c/test_nlock.c client/nlock.c \
	    -lcmocka -lpthread -o build/tsan/test_nlock
	TSAN_OPTIONS=halt_on_error=1 build/tsan/test_nlock

# Coverage-guided fuzzing (libFuzzer, clang, ASan+UBSan): one binary per
# target in test/fuzz/, each linking only the pure modules it exercises.
# `make fuzz` runs every target FUZZ_SECONDS (default 60) on a copy of its
# committed seeds and regression inputs and fails if any target crashes;
# `make fuzz-smoke` is the 10-second run CI does.
FUZZ_CC      ?= clang
FUZZ_SECONDS ?= 60
FUZZ_BUILD   := build/fuzz
FUZZ_FLAGS   := $(CSTD) $(WARN) -O1 -g -I. $(if $(EI_INC),-I$(EI_INC)) -fno-omit-frame-pointer \
                -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=undefined
FUZZ_TARGETS := frame hs_acceptor hs_initiator ctrl term request store
FUZZ_SRC_frame        := cnode/dist/frame.c cnode/core/buf.c
FUZZ_SRC_hs_acceptor  := cnode/dist/handshake.c cnode/core/buf.c
FUZZ_SRC_hs_initiator := cnode/dist/handshake.c cnode/core/buf.c
FUZZ_SRC_ctrl         := ei_glue/ctrl.c ei_glue/enc.c ei_glue/term.c cnode/core/buf.c
FUZZ_SRC_term         := ei_glue/term.c cnode/core/buf.c
FUZZ_SRC_request      := cnode/server/request.c ei_glue/call.c ei_glue/term.c cnode/core/buf.c
FUZZ_SRC_store        := $(sort $(wildcard cnode/store/*.c)) ei_glue/term.c ei_glue/term_hash.c cnode/core/buf.c
FUZZ_LIBS_hs_acceptor  := -lcrypto
FUZZ_LIBS_hs_initiator := -lcrypto
FUZZ_LIBS_ctrl         := $(if $(EI_LIB),-L$(EI_LIB)) -lei -lpthread
FUZZ_BIN     := $(FUZZ_TARGETS:%=$(FUZZ_BUILD)/fuzz_%)
FUZZ_HDRS    := $(wildcard test/fuzz/*.h cnode/*/*.h ei_glue/*.h)

define FUZZ_RULE
$(FUZZ_BUILD)/fuzz_$(1): test/fuzz/fuzz_$(1).c $(FUZZ_SRC_$(1)) $(FUZZ_HDRS)
	@mkdir -p $(FUZZ_BUILD)
	$(FUZZ_CC) $(FUZZ_FLAGS) $$< $(FUZZ_SRC_$(1)) $(FUZZ_LIBS_$(1)) -o $$@
endef
$(foreach t,$(FUZZ_TARGETS),$(eval $(call FUZZ_RULE,$(t))))

.PHONY: fuzz fuzz-smoke fuzz-build
fuzz-build: $(FUZZ_BIN)

fuzz: fuzz-build
	FUZZ_SECONDS=$(FUZZ_SECONDS) test/fuzz/run.sh $(FUZZ_BUILD) $(FUZZ_TARGETS)

fuzz-smoke:
	$(MAKE) fuzz FUZZ_SECONDS=10

# Hostile-peer floods with an honest caller timed throughout, and their
# table (scripts/attack.sh; README "Hostile peers"): `make attack` runs
# each flood ATTACK_SECONDS (default 10), `make attack-smoke` 1 s (CI).
.PHONY: attack attack-smoke
attack: all
	LOCKERD_BIN=$(abspath $(BINDIR)/lockerd) scripts/attack.sh

attack-smoke: all
	ATTACK_SECONDS=1 LOCKERD_BIN=$(abspath $(BINDIR)/lockerd) scripts/attack.sh

# Benchmarks: lockerd vs the BEAM locker server (bench/run.sh; README
# "Benchmarks"). BENCH_RUNS, BENCH_SECONDS, BENCH_QUICK=1 configure it.
.PHONY: bench
bench: all
	bench/run.sh

# The default eager push's cost on writes with a replica attached
# (bench/eager_cost.sh): C-client pairs against 3 masters + 1 replica,
# eager vs --no-eager-push.
.PHONY: bench-eager
bench-eager: all
	bench/eager_cost.sh

# The lease store alone (bench/store_bench.c): bytes per lease and ns per
# operation at 100k and 1M leases, and the longest reclaim step of a mass
# expiry. STORE_BENCH_SIZES=n1,n2 changes the lease counts.
.PHONY: bench-store
$(BUILD)/bench/store_bench: bench/store_bench.c $(BUILD)/liblockerd.a
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) $< $(BUILD)/liblockerd.a $(LDFLAGS) $(LDLIBS) -o $@

bench-store: $(BUILD)/bench/store_bench
	$(BUILD)/bench/store_bench

# Fault-injection runs (scripts/faults.sh; README "Fault-injection runs"):
# `make faults` runs 3 and 5 masters, all-lockerd and mixed, for a minute
# each; `make faults-smoke` is the bounded run CI does; `make faults-check`
# only the checker's unit tests; `make faults-control` restarts masters
# without quiet period (and lockerd masters without --release-on-exit) and
# passes only if the checker finds the violations each makes possible.
# The C client links the client library.
build/faults/faults_cclient: test/faults/faults_cclient.c $(BINDIR)/liblocker.a client/locker.h
	@mkdir -p $(dir $@)
	$(CC) $(CSTD) $(WARN) -O2 -g -I. $< $(BINDIR)/liblocker.a -lssl -lcrypto -lpthread -o $@

.PHONY: faults faults-smoke faults-check faults-control
faults: all build/faults/faults_cclient
	scripts/faults.sh

faults-smoke: all build/faults/faults_cclient
	scripts/faults.sh --smoke

faults-check:
	scripts/faults.sh --check

# A control is a random experiment: in 20 s a run may by chance show no
# violation of a kind its unsafe setup makes possible (exit 1). Such a run
# is repeated once with a new seed before the control fails; every
# requirement stays as strict on the second try.
faults-control: all build/faults/faults_cclient
	scripts/faults.sh --control || { [ $$? -eq 1 ] && \
	    echo "faults-control: a run showed too little; once more with a new seed" && \
	    scripts/faults.sh --control; }
	scripts/faults.sh --control-exit || { [ $$? -eq 1 ] && \
	    echo "faults-control: a run showed too little; once more with a new seed" && \
	    scripts/faults.sh --control-exit; }
