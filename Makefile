# lockerd build. `make` builds bin/lockerd; `make test` runs every test;
# `make asan` runs them again against an address/UB-sanitized build.

CC      ?= cc
CSTD    := -std=c11 -D_GNU_SOURCE
WARN    := -Wall -Wextra -Werror -Wshadow -Wno-missing-field-initializers
OPT     ?= -O2 -g
EI_INC  := $(shell erl -noshell -eval 'io:format("~s", [code:lib_dir(erl_interface, include)]), halt().' 2>/dev/null)
EI_LIB  := $(shell erl -noshell -eval 'io:format("~s", [code:lib_dir(erl_interface, lib)]), halt().' 2>/dev/null)
CFLAGS  += $(CSTD) $(WARN) $(OPT) -I. $(if $(EI_INC),-I$(EI_INC)) $(SANFLAGS)
LDLIBS  += $(if $(EI_LIB),-L$(EI_LIB)) -lei -lcrypto -lpthread
LDFLAGS += $(SANFLAGS)

BUILD   ?= build/default
BINDIR  ?= bin

LIB_SRC := $(sort $(wildcard cnode/*/*.c) $(wildcard ei_glue/*.c) $(wildcard client/*.c))
LIB_OBJ := $(LIB_SRC:%.c=$(BUILD)/%.o)
TEST_SRC := $(sort $(wildcard test/c/test_*.c))
TEST_BIN := $(TEST_SRC:test/c/%.c=$(BUILD)/test/%)

.PHONY: all test test-c test-erlang test-elixir asan clean deps run
all: $(BINDIR)/lockerd

$(BUILD)/%.o: %.c
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -MMD -MP -c $< -o $@

$(BUILD)/liblockerd.a: $(LIB_OBJ)
	@rm -f $@
	ar rcs $@ $^

$(BINDIR)/lockerd: $(BUILD)/cnode/main.o $(BUILD)/liblockerd.a
	@mkdir -p $(dir $@)
	$(CC) $(LDFLAGS) $^ $(LDLIBS) -o $@

$(BUILD)/test/%: test/c/%.c $(BUILD)/liblockerd.a
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) $< $(BUILD)/liblockerd.a $(LDFLAGS) $(LDLIBS) -lcmocka -o $@

test-c: $(TEST_BIN)
	@set -e; for t in $(TEST_BIN); do echo "== $$t"; $$t; done

test-erlang: $(BINDIR)/lockerd
	LOCKERD_BIN=$(abspath $(BINDIR)/lockerd) test/erlang/run.sh

test-elixir: $(BINDIR)/lockerd
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
	rm -rf build bin/lockerd _build

-include $(LIB_OBJ:.o=.d) $(BUILD)/cnode/main.d

# The node-local lock's threaded tests under ThreadSanitizer (a report
# makes the binary exit non-zero).
.PHONY: test-tsan
test-tsan:
	@mkdir -p build/tsan
	$(CC) $(CSTD) $(WARN) -O1 -g -fsanitize=thread -I. test/c/test_nlock.c client/nlock.c \
	    -lcmocka -lpthread -o build/tsan/test_nlock
	TSAN_OPTIONS=halt_on_error=1 build/tsan/test_nlock
