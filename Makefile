# NoPorts in C: one Makefile for everything.
#   make            build every binary into build/
#   make check      install missing dependencies, build, run all tests
#   make check-sanitize  the unit and integration tests built with ASan+UBSan
#   make demo       install missing dependencies, run the product end to end
#   make fuzz       build the libFuzzer targets (clang)
#   make deb        the Debian packages into build-deb-pkgs/ (packaging/debian)
#   make install    DESTDIR= PREFIX= (default /usr/local)
#   SANITIZE=1      build with ASan+UBSan;  V=1  show full command lines

PREFIX	?= /usr/local
DESTDIR	?=
CC	?= cc
BUILD	?= build
PKGS	:= libsodium openssl json-c sqlite3

ifeq ($(V),1)
Q :=
else
Q := @
endif

PKG_CFLAGS := $(shell pkg-config --cflags $(PKGS) libpq)
PKG_LIBS   := $(shell pkg-config --libs $(PKGS))
# np-server's store can be PostgreSQL (server/store_pg.c): only it, the
# unit tests and the fuzz targets (whose archive holds the server's
# objects) link libpq.
SRV_PKG_LIBS := $(shell pkg-config --libs $(PKGS) libpq)
# np-deviced keeps no database: without sqlite3 on its link line it does
# not load libsqlite3 (and libm) even where the toolchain does not link
# --as-needed by default (docs/BENCHMARKS.md, "Footprint").
DEV_PKG_LIBS := $(shell pkg-config --libs libsodium openssl json-c)
CHECK_CFLAGS := $(shell pkg-config --cflags check 2>/dev/null)
CHECK_LIBS   := $(shell pkg-config --libs check 2>/dev/null)

WARN	:= -Wall -Wextra -Werror -Wshadow -Wpointer-arith -Wformat=2 \
	   -Wstrict-prototypes -Wmissing-prototypes -Wno-unused-parameter
CFLAGS_OUR := -std=c11 -D_GNU_SOURCE -g -fPIE -fstack-protector-strong \
	   $(WARN) -Ilib $(PKG_CFLAGS)
LDFLAGS_OUR := -pie -Wl,-z,relro,-z,now

ifeq ($(SANITIZE),1)
CFLAGS_OUR += -O1 -fno-omit-frame-pointer -fsanitize=address,undefined \
	   -fno-sanitize-recover=undefined
LDFLAGS_OUR += -fsanitize=address,undefined
BUILD := build-san
else
CFLAGS_OUR += -O2 -D_FORTIFY_SOURCE=2
endif

LIB_SRC	:= $(sort $(wildcard lib/*.c))
SRV_SRC	:= $(filter-out server/main.c,$(sort $(wildcard server/*.c)))
NP_SRC	:= $(filter-out proxy/main.c,$(sort $(wildcard proxy/*.c)))
SRD_SRC	:= $(filter-out rendezvous/main.c,$(sort $(wildcard rendezvous/*.c)))
KH_SRC	:= $(sort $(wildcard keyhelper/*.c))
DEV_SRC	:= $(filter-out device/main.c,$(sort $(wildcard device/*.c)))
UNIT_SRC := $(sort $(wildcard tests/unit/test_*.c))

obj = $(patsubst %.c,$(BUILD)/obj/%.o,$(1))

LIBNP	:= $(BUILD)/libnp.a
LIBSRV	:= $(BUILD)/libsrv.a
LIBPROXY := $(BUILD)/libproxy.a
LIBSRD	:= $(BUILD)/libsrd.a
LIBDEV	:= $(BUILD)/libdev.a
BINS	:= $(BUILD)/np-server $(BUILD)/np $(BUILD)/np-srd $(BUILD)/np-keyhelper \
	   $(if $(wildcard device/main.c),$(BUILD)/np-deviced)
UNIT_BINS := $(patsubst tests/unit/%.c,$(BUILD)/tests/%,$(UNIT_SRC))
TOOL_SRC := $(sort $(wildcard tests/tools/*.c))
TOOL_BINS := $(patsubst tests/tools/%.c,$(BUILD)/tools/%,$(TOOL_SRC))

PHONY_EXTRA := tools unit-bins demo-stop bench deb
.PHONY: $(PHONY_EXTRA) all check check-sanitize unit integration fuzz fuzz-smoke demo install clean deps \
	format tidy
all: $(BINS)

deps:
	$(Q)scripts/install-deps

$(BUILD)/obj/%.o: %.c
	@mkdir -p $(dir $@)
	@$(if $(Q),echo "  CC      $<")
	$(Q)$(CC) $(CFLAGS_OUR) $(CFLAGS) -MMD -MP -c -o $@ $<

$(BUILD)/obj/tests/unit/%.o: tests/unit/%.c
	@mkdir -p $(dir $@)
	@$(if $(Q),echo "  CC      $<")
	$(Q)$(CC) $(CFLAGS_OUR) $(CHECK_CFLAGS) -Iserver -Iproxy -Irendezvous -Idevice $(CFLAGS) \
		-Wno-missing-prototypes -MMD -MP -c -o $@ $<

$(LIBNP): $(call obj,$(LIB_SRC))
$(LIBSRV): $(call obj,$(SRV_SRC))
$(LIBPROXY): $(call obj,$(NP_SRC))
$(LIBSRD): $(call obj,$(SRD_SRC))
$(LIBDEV): $(call obj,$(DEV_SRC))
$(LIBNP) $(LIBSRV) $(LIBPROXY) $(LIBSRD) $(LIBDEV):
	@mkdir -p $(dir $@)
	@$(if $(Q),echo "  AR      $@")
	$(Q)rm -f $@ && ar rcs $@ $^

$(BUILD)/np-server: $(call obj,server/main.c) $(LIBSRV) $(LIBNP)
$(BUILD)/np: $(call obj,proxy/main.c) $(LIBPROXY) $(LIBNP)
$(BUILD)/np-srd: $(call obj,rendezvous/main.c) $(LIBSRD) $(LIBNP)
$(BUILD)/np-keyhelper: $(call obj,$(KH_SRC)) $(LIBNP)
$(BUILD)/np-deviced: $(call obj,device/main.c) $(LIBDEV) $(LIBNP)
$(BUILD)/np-deviced: PKG_LIBS = $(DEV_PKG_LIBS)
$(BUILD)/np-server: PKG_LIBS = $(SRV_PKG_LIBS)
$(BINS):
	@$(if $(Q),echo "  LD      $@")
	$(Q)$(CC) $(LDFLAGS_OUR) $(LDFLAGS) -o $@ $^ $(PKG_LIBS)

$(BUILD)/tests/%: $(BUILD)/obj/tests/unit/%.o $(LIBSRV) $(LIBPROXY) $(LIBSRD) \
    $(LIBDEV) $(LIBNP)
	@mkdir -p $(dir $@)
	@$(if $(Q),echo "  LD      $@")
	$(Q)$(CC) $(LDFLAGS_OUR) $(LDFLAGS) -o $@ $^ $(CHECK_LIBS) $(SRV_PKG_LIBS)

# The whole test suite: unit tests, integration tests on loopback, and a
# short run of every fuzz target when clang is present.
check: deps
	$(Q)$(MAKE) --no-print-directory all unit-bins tools
	$(Q)$(MAKE) --no-print-directory fuzz
	$(Q)BUILD=$(BUILD) scripts/run-tests

# The unit and integration tests again, built with ASan+UBSan into
# build-san/ (the fuzz targets are sanitizer builds already).  The first
# report stops the program and fails its test: a unit test by its exit
# status, an integration test by the report (tests/lib.sh).
SAN_ASAN_OPTIONS := halt_on_error=1:abort_on_error=0:detect_leaks=1
SAN_ASAN_OPTIONS := $(SAN_ASAN_OPTIONS):detect_stack_use_after_return=1
SAN_UBSAN_OPTIONS := halt_on_error=1:abort_on_error=0:print_stacktrace=1
check-sanitize: deps
	$(Q)$(MAKE) --no-print-directory SANITIZE=1 all unit-bins tools
	$(Q)ASAN_OPTIONS=$(SAN_ASAN_OPTIONS) UBSAN_OPTIONS=$(SAN_UBSAN_OPTIONS) \
		BUILD=build-san scripts/run-tests unit integration

unit-bins: $(UNIT_BINS)
tools: $(TOOL_BINS)

# Test tools (load generators, fault injectors) used by the integration
# tests: plain C programs linked against libnp.
$(BUILD)/tools/%: $(BUILD)/obj/tests/tools/%.o $(LIBNP)
	@mkdir -p $(dir $@)
	@$(if $(Q),echo "  LD      $@")
	$(Q)$(CC) $(LDFLAGS_OUR) $(LDFLAGS) -o $@ $^ $(PKG_LIBS)
unit: unit-bins
	$(Q)BUILD=$(BUILD) scripts/run-tests unit
integration: all tools
	$(Q)BUILD=$(BUILD) scripts/run-tests integration

# libFuzzer targets: each tests/fuzz/fuzz_NAME.c is built with clang
# against the library sources compiled for fuzzing.
FUZZ_CC	?= clang
FUZZ_SRC := $(sort $(wildcard tests/fuzz/fuzz_*.c))
FUZZ_BINS := $(patsubst tests/fuzz/%.c,build-fuzz/%,$(FUZZ_SRC))
FUZZ_FLAGS := -std=c11 -D_GNU_SOURCE -g -O1 -Ilib -Iserver -Iproxy \
	-Irendezvous -Idevice $(PKG_CFLAGS) -fsanitize=fuzzer,address,undefined \
	-DNP_FUZZING
fuzz:
	$(Q)if command -v $(FUZZ_CC) >/dev/null 2>&1; then \
		$(MAKE) -s --no-print-directory $(FUZZ_BINS); \
	else echo "fuzz: $(FUZZ_CC) not found, fuzz targets not built"; fi

# Every daemon's parsers are fuzzed, so every folder but the mains goes in
# one archive: a target links only the objects it needs.
FUZZ_OBJS := $(patsubst %.c,build-fuzz/obj/%.o,$(LIB_SRC) $(SRV_SRC) \
	$(NP_SRC) $(SRD_SRC) $(DEV_SRC))
FUZZ_LIB := build-fuzz/libfuzz.a
.SECONDARY: $(FUZZ_OBJS) $(FUZZ_LIB)
$(FUZZ_LIB): $(FUZZ_OBJS)
	@$(if $(Q),echo "  AR      $@")
	$(Q)rm -f $@ && ar rcs $@ $^

build-fuzz/obj/%.o: %.c
	@mkdir -p $(dir $@)
	@$(if $(Q),echo "  FUZZCC  $<")
	$(Q)$(FUZZ_CC) $(FUZZ_FLAGS:-fsanitize=fuzzer,%=-fsanitize=fuzzer-no-link,%) \
		-MMD -MP -c -o $@ $<

build-fuzz/fuzz_%: tests/fuzz/fuzz_%.c $(FUZZ_LIB)
	@mkdir -p build-fuzz
	@$(if $(Q),echo "  FUZZ    $@")
	$(Q)$(FUZZ_CC) $(FUZZ_FLAGS) -o $@ $< $(FUZZ_LIB) $(SRV_PKG_LIBS)

fuzz-smoke: fuzz
	$(Q)BUILD=$(BUILD) scripts/run-tests fuzz

demo: deps all
	$(Q)BUILD=$(BUILD) scripts/demo

# Benchmarks: ratios against anchors measured in the same run (bench/all
# runs every module, then bench/report writes bench/results/latest.md,
# latest.json and the charts).  BENCH=full for longer runs.
bench: deps all tools
	$(Q)BUILD=$(BUILD) bench/all

# Stops the lab that `make demo` left running.
demo-stop:
	$(Q)tests/lab/down "$${NP_DEMO_DIR:-/tmp/noports-demo}"

deb: deps
	$(Q)scripts/make-deb build-deb-pkgs

install: all
	install -d $(DESTDIR)$(PREFIX)/bin $(DESTDIR)$(PREFIX)/sbin
	install -m 0755 $(BUILD)/np $(DESTDIR)$(PREFIX)/bin/np
	install -m 0755 $(BUILD)/np-server $(DESTDIR)$(PREFIX)/sbin/np-server
	install -m 0755 $(BUILD)/np-srd $(DESTDIR)$(PREFIX)/sbin/np-srd
	install -m 0755 $(BUILD)/np-deviced $(DESTDIR)$(PREFIX)/sbin/np-deviced
	install -d $(DESTDIR)$(PREFIX)/lib/noports
	install -m 0755 $(BUILD)/np-keyhelper \
		$(DESTDIR)$(PREFIX)/lib/noports/np-keyhelper

format:
	clang-format -i lib/*.[ch] server/*.[ch] proxy/*.[ch] rendezvous/*.[ch] keyhelper/*.[ch] device/*.[ch] tests/unit/*.c \
		tests/fuzz/*.c

clean:
	rm -rf build build-san build-fuzz

-include $(shell find $(BUILD)/obj build-fuzz/obj -name '*.d' 2>/dev/null)
