# Top-level build. `make` builds everything into build/; `make asan` builds the
# same tree with AddressSanitizer + UndefinedBehaviorSanitizer into build/asan/.
# `make test` runs every test (unit + integration); `make check` runs them in
# both builds, which is what CI does.
#
# Layout convention: every program directory (producer, consumer, autodriver, tangoctl)
# has a main.c; its other .c files form a static library so unit tests can link
# them. Each VMMS plugin lives in vmms/<name>/ and becomes build/vmms/<name>.so.

CC       ?= cc
BUILD    ?= build
PKGS     := hiredis libevent libevent_pthreads jansson libssh2 libcurl libcrypto libarchive libxml-2.0
# Quiet while the packages are missing (make run installs them first); a
# build then stops at pkg-check, naming them.
PKG_CFLAGS := $(shell pkg-config --cflags $(PKGS) 2>/dev/null)
PKG_LIBS   := $(shell pkg-config --libs $(PKGS) 2>/dev/null)
PKG_MISSING := $(shell for p in $(PKGS); do pkg-config --exists $$p 2>/dev/null || echo $$p; done)

CFLAGS   ?= -O2 -g
CFLAGS   += -std=gnu11 -D_GNU_SOURCE -Wall -Wextra -Werror -fPIC -pthread \
            -Icommon -Ivmms $(PKG_CFLAGS)
LDFLAGS  += -pthread
LDLIBS   := $(PKG_LIBS) -ldl

ifeq ($(SANITIZE),1)
CFLAGS   += -fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=undefined
LDFLAGS  += -fsanitize=address,undefined
endif

objs_of = $(patsubst %.c,$(BUILD)/obj/%.o,$(1))

COMMON_SRC   := $(wildcard common/*.c)
PRODUCER_LIB := $(filter-out producer/main.c,$(wildcard producer/*.c))
# the consumer's builder (consumer/builder.c) calls dockerd through the back
# ends' one Engine API client, and pushes with the registries' credentials
CONSUMER_LIB := $(filter-out consumer/main.c,$(wildcard consumer/*.c)) \
                vmms/common/engine.c vmms/common/grading.c \
                vmms/common/engine_progress.c vmms/common/registry_engine_auth.c
AUTODRV_LIB  := $(filter-out autodriver/main.c,$(wildcard autodriver/*.c))
# vmms/common/ is not a plugin: its objects go into every plugin.
PLUGINS      := $(filter-out common,$(notdir $(patsubst %/,%,$(dir $(wildcard vmms/*/*.c)))))
VMMS_COMMON  := $(wildcard vmms/common/*.c)
PLUGIN_SOS   := $(patsubst %,$(BUILD)/vmms/%.so,$(sort $(PLUGINS)))
PLUGIN_OBJS  := $(patsubst %.c,$(BUILD)/obj/%.o,$(wildcard vmms/*/*.c))
UNIT_SRC     := $(wildcard tests/unit/test_*.c)
UNIT_BINS    := $(patsubst tests/unit/%.c,$(BUILD)/tests/%,$(UNIT_SRC))
BENCH_BINS   := $(patsubst tests/bench/%.c,$(BUILD)/bench/%,$(wildcard tests/bench/*.c))

LIBCOMMON   := $(BUILD)/libtango-common.a
LIBPRODUCER := $(BUILD)/libtango-producer.a
LIBCONSUMER := $(BUILD)/libtango-consumer.a
LIBAUTODRV  := $(BUILD)/libautodriver.a

PROGRAMS := $(BUILD)/tango-producer
ifneq ($(wildcard consumer/main.c),)
PROGRAMS += $(BUILD)/tango-consumer
endif
ifneq ($(wildcard autodriver/main.c),)
PROGRAMS += $(BUILD)/autodriver
endif
# tangoctl, the operator CLI (tangoctl/: main.c and one file per command group)
CTL_SRC  := $(wildcard tangoctl/*.c)
PROGRAMS += $(BUILD)/tangoctl

# make check runs every fuzz harness briefly (make fuzz runs them longer).
CHECK_FUZZ_SECONDS ?= 10

.PHONY: pkg-check all asan test check bench chaos image service-image run stop clean fuzz fuzz-build docs
all: $(PROGRAMS) $(PLUGIN_SOS) $(UNIT_BINS) $(BENCH_BINS)

pkg-check:
	$(if $(PKG_MISSING),@echo "make: missing development packages (pkg-config): $(PKG_MISSING);" \
	    "run deploy/setup-host.sh as root" >&2; exit 1)

asan:
	$(MAKE) SANITIZE=1 BUILD=build/asan all

$(BUILD)/obj/%.o: %.c $(wildcard */*.h vmms/*/*.h common/*.lua) | pkg-check
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -c $< -o $@

$(LIBCOMMON): $(call objs_of,$(COMMON_SRC))
$(LIBPRODUCER): $(call objs_of,$(PRODUCER_LIB))
$(LIBCONSUMER): $(call objs_of,$(CONSUMER_LIB))
$(LIBAUTODRV): $(call objs_of,$(AUTODRV_LIB))
$(BUILD)/%.a:
	@mkdir -p $(dir $@)
	rm -f $@
	$(if $^,$(AR) rcs $@ $^,printf '!<arch>\n' > $@)

$(BUILD)/tango-producer: $(BUILD)/obj/producer/main.o $(LIBPRODUCER) $(LIBCOMMON)
	$(CC) $(LDFLAGS) $^ $(LDLIBS) -o $@

$(BUILD)/tango-consumer: $(BUILD)/obj/consumer/main.o $(LIBCONSUMER) $(LIBCOMMON)
	$(CC) $(LDFLAGS) -rdynamic $^ $(LDLIBS) -o $@

# tangoctl images calls dockerd through the back ends' one Engine API client
CTL_VMMS := vmms/common/engine.c vmms/common/grading.c
$(call objs_of,$(CTL_SRC)): tangoctl/ctl.h tangoctl/images.h
$(BUILD)/tangoctl: $(call objs_of,$(CTL_SRC) $(CTL_VMMS)) $(LIBCOMMON)
	$(CC) $(LDFLAGS) $^ $(LDLIBS) -o $@

# The autodriver runs inside the autograding image: it links nothing but libc
# and is built static so it runs on any image, whatever its libc version.
$(BUILD)/autodriver: $(BUILD)/obj/autodriver/main.o $(LIBAUTODRV)
	$(CC) $(LDFLAGS) $(if $(filter 1,$(SANITIZE)),,-static) $^ -o $@

# Plugin objects are named here so make keeps them (an object only a pattern
# rule names is an intermediate make deletes): test_no_circles reads them.
$(PLUGIN_OBJS): | pkg-check

.SECONDEXPANSION:
$(BUILD)/vmms/%.so: $$(call objs_of,$$(wildcard vmms/%/*.c) $(VMMS_COMMON)) $(LIBCOMMON)
	@mkdir -p $(dir $@)
	$(CC) $(LDFLAGS) -shared $^ $(LDLIBS) -o $@

$(BUILD)/tests/%: tests/unit/%.c $(LIBPRODUCER) $(LIBCONSUMER) $(LIBAUTODRV) $(LIBCOMMON)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -Itests/unit $< $(LIBPRODUCER) $(LIBCONSUMER) $(LIBAUTODRV) $(LIBCOMMON) \
	    $(LDFLAGS) $(LDLIBS) -lcmocka -o $@

# test_seccomp and test_files_root compile vmms/common/ files in (no
# library of the unit tests holds plugin code).
$(BUILD)/tests/test_seccomp: vmms/common/seccomp.c vmms/common/seccomp.h
$(BUILD)/tests/test_files_root: vmms/common/files.c vmms/common/files.h vmms/common/grading.c

test: all
	BUILD=$(BUILD) tests/run.sh

# The README's test command (`make check`): readies the host (packages, dockerd), builds
# both flavours and the image, then runs every test in both builds.
check:
	deploy/setup-host.sh
	$(MAKE) -j2 all && $(MAKE) -j2 asan
	$(MAKE) image
	$(MAKE) service-image
	$(MAKE) fuzz FUZZ_SECONDS=$(CHECK_FUZZ_SECONDS)
	tests/run.sh --build build --build build/asan

# The configuration reference (docs/config-reference.md), generated from
# common/config.c's option table and docs/config-keys.txt.
docs:
	tests/tools/confref.py

$(BUILD)/bench/%: tests/bench/%.c $(LIBCOMMON)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) $< $(LIBCOMMON) $(LDFLAGS) $(LDLIBS) -o $@

bench: all $(BENCH_BINS)
	tests/bench/run.sh

# The full chaos run (issue #5): 500 jobs under kills and restarts.
chaos: all
	python3 tests/chaos/chaos.py --jobs 500 --rate 6

# ---- fuzzing (docs/testing.md "Fuzzing") ----
# `make fuzz` builds every libFuzzer harness tests/fuzz/fuzz_NAME.c into
# build/fuzz/NAME with clang (-fsanitize=fuzzer,address,undefined) and runs
# each for FUZZ_SECONDS on its seeds tests/fuzz/corpus/NAME/; any crash, leak
# or UB fails the target. CI's short run: make fuzz FUZZ_SECONDS=10.
FUZZ_CC      ?= clang
FUZZ_SECONDS ?= 60
FUZZ_DIR     := build/fuzz
FUZZ_CFLAGS  := -g -O1 -std=gnu11 -D_GNU_SOURCE -Wall -Wextra -Werror -pthread \
                -fsanitize=address,undefined -fno-sanitize-recover=undefined \
                -fno-omit-frame-pointer -Icommon -Ivmms -Iproducer -Iautodriver $(PKG_CFLAGS)
FUZZ_NAMES   := $(patsubst tests/fuzz/fuzz_%.c,%,$(wildcard tests/fuzz/fuzz_*.c))
FUZZ_BINS    := $(patsubst %,$(FUZZ_DIR)/%,$(FUZZ_NAMES))
fuzz_objs     = $(patsubst %.c,$(FUZZ_DIR)/obj/%.o,$(1))
# Archives, so each harness links only the objects it needs.
FUZZ_LIBS    := $(FUZZ_DIR)/libproducer.a $(FUZZ_DIR)/liblocaldocker.a \
                $(FUZZ_DIR)/libec2.a $(FUZZ_DIR)/liblocaloci.a \
                $(FUZZ_DIR)/libautodriver.a $(FUZZ_DIR)/libcommon.a

$(FUZZ_DIR)/obj/%.o: %.c $(wildcard */*.h vmms/*/*.h common/*.lua) | pkg-check
	@mkdir -p $(dir $@)
	$(FUZZ_CC) $(FUZZ_CFLAGS) -fsanitize=fuzzer-no-link -c $< -o $@
$(FUZZ_DIR)/libcommon.a: $(call fuzz_objs,$(COMMON_SRC))
$(FUZZ_DIR)/libproducer.a: $(call fuzz_objs,$(PRODUCER_LIB))
$(FUZZ_DIR)/libautodriver.a: $(call fuzz_objs,$(AUTODRV_LIB))
$(FUZZ_DIR)/liblocaldocker.a: $(call fuzz_objs,$(wildcard vmms/localDocker/*.c) $(VMMS_COMMON))
# (after liblocaldocker.a in FUZZ_LIBS: the Docker harness's vmms_plugin is localDocker's)
$(FUZZ_DIR)/libec2.a: $(call fuzz_objs,$(wildcard vmms/ec2SSH/*.c) $(VMMS_COMMON))
$(FUZZ_DIR)/liblocaloci.a: $(call fuzz_objs,$(wildcard vmms/localOCI/*.c) $(VMMS_COMMON))
$(FUZZ_LIBS):
	rm -f $@
	$(AR) rcs $@ $^
$(FUZZ_BINS): $(FUZZ_DIR)/%: tests/fuzz/fuzz_%.c tests/fuzz/fuzz_util.h $(FUZZ_LIBS)
	$(FUZZ_CC) $(FUZZ_CFLAGS) -fsanitize=fuzzer $< $(FUZZ_LIBS) $(LDLIBS) $(FUZZ_LDEXTRA) -o $@
# the plugin's poll pauses are skipped in the Docker harness (see its header)
$(FUZZ_DIR)/docker: FUZZ_LDEXTRA := -Wl,--wrap=clock_sleep_ms

fuzz-build: $(FUZZ_BINS)

fuzz: fuzz-build
	FUZZ_SECONDS=$(FUZZ_SECONDS) tests/fuzz/run.sh $(FUZZ_NAMES)

image: $(BUILD)/autodriver
	deploy/image/build-image.sh $(BUILD)/autodriver

# The service's own image (producer, consumer, tangoctl, plugins; offline,
# from this host's files): deploy/compose/ and tests/integration/test_compose.py.
service-image: all
	deploy/image/build-service-image.sh $(BUILD)

run:
	deploy/run-local.sh

stop:
	deploy/run-local.sh stop

clean:
	rm -rf build
