# jobq: a flat Makefile. `make` builds build/jobqd; `make run` and
# `make test` first install missing build dependencies (scripts/deps.sh).
# SANITIZE=address,undefined builds everything under build/sanitize-address-undefined/,
# SANITIZE=thread under build/sanitize-thread/: one tree per sanitizer set, so
# objects built for different runtimes never link together.

PKGS      := libmicrohttpd sqlite3 libcjson libcurl libcrypto libpq
TEST_PKGS := check

ifdef SANITIZE
comma     := ,
BUILD     := build/sanitize-$(subst $(comma),-,$(SANITIZE))
SAN_FLAGS := -fsanitize=$(SANITIZE) -fno-omit-frame-pointer -fno-sanitize-recover=all
OPT       := -O1
else
BUILD     := build
SAN_FLAGS :=
OPT       := -O2
endif
# ThreadSanitizer (SANITIZE=thread; it cannot be combined with address)
# runs the whole suite but the "bulk" volume tests, which exercise no
# concurrency of their own and under it reach their time bounds on a busy
# machine.
ifneq ($(filter thread,$(subst $(comma), ,$(SANITIZE))),)
export CK_EXCLUDE_TAGS := bulk
export TSAN_OPTIONS ?= second_deadlock_stack=1
endif

WARN    := -Wall -Wextra -Wpedantic -Wshadow -Wstrict-prototypes -Wformat=2
# -Werror where the build is checked (make test, make analyze, CI), not on
# every user's build: a newer compiler's new warning must not stop `make`.
WERROR  ?=
# CFLAGS is the user's (make CFLAGS="-O0 -g" works); the flags jobq needs
# come first in ALL_CFLAGS, so a user's -O or -g wins.
CFLAGS  ?= -g $(OPT)
ALL_CFLAGS = -std=c11 -D_GNU_SOURCE $(WARN) $(WERROR) $(SAN_FLAGS) -I. -MMD -MP $(CFLAGS)
# pkg-config runs when a recipe needs it (deferred =), after deps are in.
PKG_CFLAGS  = $(shell pkg-config --cflags $(PKGS))
PKG_LIBS    = $(shell pkg-config --libs $(PKGS))
TEST_CFLAGS = $(shell pkg-config --cflags $(TEST_PKGS))
TEST_LIBS   = $(shell pkg-config --libs $(TEST_PKGS))
LDLIBS      = $(PKG_LIBS) -lpthread -lm

CORE_SRC    := core/clock.c core/hub.c core/job.c core/kind.c core/log.c \
               core/digest.c core/events.c core/json.c core/meter.c core/metrics.c core/netaddr.c core/problem.c core/run.c core/uuid.c \
               core/tz.c core/cron.c core/deps.c core/schedule.c
CORE_SRC    += core/text.c core/hash.c
CORE_SRC    += core/bucket.c
STORE_SRC   := store/writer.c store/sqlite.c store/sqlite_schema.c store/pg.c store/pg_cluster.c store/pg_schema.c store/pg_write.c \
               store/deps_store.c
STORE_SRC   += store/pg_rate.c store/pg_schedule.c
WORKERS_SRC := workers/builtin.c workers/callbacks.c workers/command.c workers/http.c workers/pool.c
WORKERS_SRC += workers/egress.c workers/engine.c
SERVER_SRC  := server/auth.c server/config.c server/http.c
SERVER_SRC  += server/query.c
HANDLER_SRC := handlers/batches.c handlers/common.c handlers/dashboard.c handlers/events.c handlers/jobs.c handlers/metrics.c handlers/queues.c handlers/system.c handlers/leases.c
HANDLER_SRC += handlers/rates.c handlers/schedules.c
HANDLER_SRC += handlers/bulk.c handlers/workers.c handlers/routes.c
LIB_SRC     := $(CORE_SRC) $(STORE_SRC) $(WORKERS_SRC) $(SERVER_SRC) $(HANDLER_SRC)

LIB_OBJ  := $(LIB_SRC:%.c=$(BUILD)/%.o) $(BUILD)/gen/openapi.o $(BUILD)/gen/web.o
WEB_FILES := web/index.html web/app.js web/style.css
MAIN_OBJ := $(BUILD)/server/main.o

# The test build: jobqd plus job types that crash or count their runs.
TEST_MAIN_OBJ := $(BUILD)/testbuild/server/main.o $(BUILD)/workers/testkinds.o

UNIT_TESTS := tests/unit_core.c tests/unit_cron.c tests/unit_server.c tests/unit_store.c tests/unit_store_sqlite.c tests/store_test.c \
              tests/unit_deps.c tests/unit_store_deps.c
UNIT_TESTS += tests/unit_bucket.c tests/unit_store_rate.c
UNIT_TESTS += tests/unit_schedule.c
UNIT_TESTS += tests/unit_egress.c tests/unit_text.c
UNIT_OBJ   := $(UNIT_TESTS:%.c=$(BUILD)/%.o)
API_OBJ    := $(BUILD)/tests/api_test.o $(BUILD)/tests/harness.o
SEM_OBJ    := $(BUILD)/tests/api_semantics_test.o $(BUILD)/tests/harness.o
TORTURE_OBJ := $(BUILD)/tests/torture.o $(BUILD)/tests/harness.o
DELIVERY_OBJ := $(BUILD)/tests/api_delivery_test.o $(BUILD)/tests/harness.o
COMMAND_OBJ := $(BUILD)/tests/api_command_test.o $(BUILD)/tests/harness.o
HTTP_OBJ    := $(BUILD)/tests/api_http_test.o $(BUILD)/tests/harness.o
EVENTS_OBJ  := $(BUILD)/tests/api_events_test.o $(BUILD)/tests/harness.o
OPS_OBJ     := $(BUILD)/tests/api_ops_test.o $(BUILD)/tests/harness.o
DISK_OBJ    := $(BUILD)/tests/api_disk_test.o $(BUILD)/tests/harness.o
HOSTILE_OBJ := $(BUILD)/tests/api_hostile_test.o $(BUILD)/tests/harness.o
DISPATCH_OBJ := $(BUILD)/tests/api_dispatch_test.o $(BUILD)/tests/harness.o
LEASE_OBJ   := $(BUILD)/tests/api_lease_test.o $(BUILD)/tests/harness.o
DEPS_OBJ    := $(BUILD)/tests/api_deps_test.o $(BUILD)/tests/harness.o
SCHEDULE_OBJ := $(BUILD)/tests/api_schedule_test.o $(BUILD)/tests/harness.o
CLUSTER_OBJ := $(BUILD)/tests/cluster_test.o $(BUILD)/tests/harness.o
RATE_OBJ    := $(BUILD)/tests/api_rate_test.o $(BUILD)/tests/harness.o
BULK_OBJ    := $(BUILD)/tests/api_bulk_test.o $(BUILD)/tests/harness.o

# The metrics suite also renders a registry itself (label escaping).
METRICS_OBJ := $(BUILD)/tests/api_metrics_test.o $(BUILD)/tests/harness.o $(BUILD)/core/metrics.o $(BUILD)/core/hash.o $(BUILD)/core/clock.o

.PHONY: all run test test-only check-unit check-api check-semantics check-delivery check-command check-http check-events check-ops check-disk check-hostile check-metrics check-dispatch check-lease check-rate check-deps check-schedule check-bulk check-torture check-readme check-web check-proxy check-deploy check-python \
        lint-openapi check-contract analyze deps bench bench-peers bench-http bench-waiters torture clean fuzz fuzz-build fuzz-bins fuzz-smoke

all: $(BUILD)/jobqd

$(BUILD)/jobqd: $(MAIN_OBJ) $(LIB_OBJ)
	$(CC) $(ALL_CFLAGS) -o $@ $^ $(LDFLAGS) $(LDLIBS)

$(BUILD)/jobqd-test: $(TEST_MAIN_OBJ) $(LIB_OBJ)
	$(CC) $(ALL_CFLAGS) -o $@ $^ $(LDFLAGS) $(LDLIBS)

$(BUILD)/testbuild/server/main.o: server/main.c
	@mkdir -p $(dir $@)
	$(CC) $(ALL_CFLAGS) $(PKG_CFLAGS) -DJOBQ_TEST_KINDS -c -o $@ $<

$(BUILD)/%.o: %.c
	@mkdir -p $(dir $@)
	$(CC) $(ALL_CFLAGS) $(PKG_CFLAGS) -c -o $@ $<

$(BUILD)/tests/%.o: tests/%.c
	@mkdir -p $(dir $@)
	$(CC) $(ALL_CFLAGS) $(PKG_CFLAGS) $(TEST_CFLAGS) -c -o $@ $<

$(BUILD)/gen/openapi.c: openapi.yaml scripts/embed.sh
	@mkdir -p $(dir $@)
	scripts/embed.sh openapi_yaml openapi.yaml > $@

$(BUILD)/gen/openapi.o: $(BUILD)/gen/openapi.c
	$(CC) $(ALL_CFLAGS) -c -o $@ $<

# The dashboard, embedded as web_index_html, web_app_js, web_style_css.
$(BUILD)/gen/web.c: $(WEB_FILES) scripts/embed.sh
	@mkdir -p $(dir $@)
	{ scripts/embed.sh web_index_html web/index.html && \
	  scripts/embed.sh web_app_js web/app.js && \
	  scripts/embed.sh web_style_css web/style.css; } > $@.tmp && mv $@.tmp $@

$(BUILD)/gen/web.o: $(BUILD)/gen/web.c
	$(CC) $(ALL_CFLAGS) -c -o $@ $<

# The test binaries link the same objects as jobqd (all but main.o).
$(BUILD)/tests/unit: $(UNIT_OBJ) $(BUILD)/tests/unit_main.o $(LIB_OBJ)
	$(CC) $(ALL_CFLAGS) -o $@ $^ $(LDFLAGS) $(TEST_LIBS) $(LDLIBS)

$(BUILD)/tests/api_test: $(API_OBJ)
	$(CC) $(ALL_CFLAGS) -o $@ $^ $(LDFLAGS) $(TEST_LIBS) $(LDLIBS)

$(BUILD)/tests/api_semantics_test: $(SEM_OBJ)
	$(CC) $(ALL_CFLAGS) -o $@ $^ $(LDFLAGS) $(TEST_LIBS) $(LDLIBS)

$(BUILD)/tests/api_delivery_test: $(DELIVERY_OBJ)
	$(CC) $(ALL_CFLAGS) -o $@ $^ $(LDFLAGS) $(TEST_LIBS) $(LDLIBS)

$(BUILD)/tests/api_command_test: $(COMMAND_OBJ)
	$(CC) $(ALL_CFLAGS) -o $@ $^ $(LDFLAGS) $(TEST_LIBS) $(LDLIBS)

$(BUILD)/tests/api_http_test: $(HTTP_OBJ)
	$(CC) $(ALL_CFLAGS) -o $@ $^ $(LDFLAGS) $(TEST_LIBS) $(LDLIBS)

$(BUILD)/tests/api_events_test: $(EVENTS_OBJ)
	$(CC) $(ALL_CFLAGS) -o $@ $^ $(LDFLAGS) $(TEST_LIBS) $(LDLIBS)

$(BUILD)/tests/api_ops_test: $(OPS_OBJ)
	$(CC) $(ALL_CFLAGS) -o $@ $^ $(LDFLAGS) $(TEST_LIBS) $(LDLIBS)

$(BUILD)/tests/api_disk_test: $(DISK_OBJ)
	$(CC) $(ALL_CFLAGS) -o $@ $^ $(LDFLAGS) $(TEST_LIBS) $(LDLIBS)

$(BUILD)/tests/api_hostile_test: $(HOSTILE_OBJ)
	$(CC) $(ALL_CFLAGS) -o $@ $^ $(LDFLAGS) $(TEST_LIBS) $(LDLIBS)

$(BUILD)/tests/api_metrics_test: $(METRICS_OBJ)
	$(CC) $(ALL_CFLAGS) -o $@ $^ $(LDFLAGS) $(TEST_LIBS) $(LDLIBS)

$(BUILD)/tests/api_dispatch_test: $(DISPATCH_OBJ)
	$(CC) $(ALL_CFLAGS) -o $@ $^ $(LDFLAGS) $(TEST_LIBS) $(LDLIBS)

$(BUILD)/tests/api_lease_test: $(LEASE_OBJ)
	$(CC) $(ALL_CFLAGS) -o $@ $^ $(LDFLAGS) $(TEST_LIBS) $(LDLIBS)

$(BUILD)/tests/api_deps_test: $(DEPS_OBJ)
	$(CC) $(ALL_CFLAGS) -o $@ $^ $(LDFLAGS) $(TEST_LIBS) $(LDLIBS)

$(BUILD)/tests/api_schedule_test: $(SCHEDULE_OBJ)
	$(CC) $(ALL_CFLAGS) -o $@ $^ $(LDFLAGS) $(TEST_LIBS) $(LDLIBS)

$(BUILD)/tests/api_bulk_test: $(BULK_OBJ)
	$(CC) $(ALL_CFLAGS) -o $@ $^ $(LDFLAGS) $(TEST_LIBS) $(LDLIBS)

$(BUILD)/tests/cluster_test: $(CLUSTER_OBJ)
	$(CC) $(ALL_CFLAGS) -o $@ $^ $(LDFLAGS) $(TEST_LIBS) $(LDLIBS)

$(BUILD)/tests/api_rate_test: $(RATE_OBJ)
	$(CC) $(ALL_CFLAGS) -o $@ $^ $(LDFLAGS) $(TEST_LIBS) $(LDLIBS)

$(BUILD)/tests/torture: $(TORTURE_OBJ)
	$(CC) $(ALL_CFLAGS) -o $@ $^ $(LDFLAGS) $(TEST_LIBS) $(LDLIBS)

run:
	@scripts/deps.sh build
	@$(MAKE) --no-print-directory all
	$(BUILD)/jobqd

# The whole suite: unit, API (a real jobqd over real sockets), the README
# quickstart against a live jobqd, the dashboard in a browser, and the
# OpenAPI lint.
test:
	@scripts/deps.sh test
	@$(MAKE) --no-print-directory test-only WERROR=-Werror

test-only: check-unit check-api check-semantics check-delivery check-command check-http check-events check-ops check-disk check-hostile check-metrics \
           check-dispatch check-lease check-rate check-deps check-schedule check-bulk check-torture check-readme check-web check-proxy check-deploy check-install check-python lint-openapi check-contract \
           check-pg

check-unit: $(BUILD)/tests/unit
	$(BUILD)/tests/unit

check-api: $(BUILD)/tests/api_test $(BUILD)/jobqd
	JOBQD=$(BUILD)/jobqd $(BUILD)/tests/api_test

check-semantics: $(BUILD)/tests/api_semantics_test $(BUILD)/jobqd $(BUILD)/jobqd-test
	JOBQD=$(BUILD)/jobqd JOBQD_TEST=$(BUILD)/jobqd-test $(BUILD)/tests/api_semantics_test

check-delivery: $(BUILD)/tests/api_delivery_test $(BUILD)/jobqd
	JOBQD=$(BUILD)/jobqd $(BUILD)/tests/api_delivery_test

check-command: $(BUILD)/tests/api_command_test $(BUILD)/jobqd
	JOBQD=$(BUILD)/jobqd $(BUILD)/tests/api_command_test

check-http: $(BUILD)/tests/api_http_test $(BUILD)/jobqd
	JOBQD=$(BUILD)/jobqd $(BUILD)/tests/api_http_test

check-events: $(BUILD)/tests/api_events_test $(BUILD)/jobqd
	JOBQD=$(BUILD)/jobqd $(BUILD)/tests/api_events_test

check-ops: $(BUILD)/tests/api_ops_test $(BUILD)/jobqd
	JOBQD=$(BUILD)/jobqd $(BUILD)/tests/api_ops_test

# A full disk (a tmpfs), damaged files, start-up errors; the mounts need
# root and are skipped, saying so, without it.
check-disk: $(BUILD)/tests/api_disk_test $(BUILD)/jobqd
	JOBQD=$(BUILD)/jobqd $(BUILD)/tests/api_disk_test

# Raw-socket clients that misbehave: framing, deadlines, the connection limit.
check-hostile: $(BUILD)/tests/api_hostile_test $(BUILD)/jobqd
	JOBQD=$(BUILD)/jobqd $(BUILD)/tests/api_hostile_test

# Needs promtool (Debian package prometheus; scripts/deps.sh installs it).
check-metrics: $(BUILD)/tests/api_metrics_test $(BUILD)/jobqd
	JOBQD=$(BUILD)/jobqd $(BUILD)/tests/api_metrics_test

# The claimed-ahead buffer: shutdown, kill -9, cancel and queue limits.
check-dispatch: $(BUILD)/tests/api_dispatch_test $(BUILD)/jobqd-test
	JOBQD_TEST=$(BUILD)/jobqd-test $(BUILD)/tests/api_dispatch_test

check-lease: $(BUILD)/tests/api_lease_test $(BUILD)/jobqd
	JOBQD=$(BUILD)/jobqd $(BUILD)/tests/api_lease_test

check-rate: $(BUILD)/tests/api_rate_test $(BUILD)/jobqd
	JOBQD=$(BUILD)/jobqd $(BUILD)/tests/api_rate_test

check-deps: $(BUILD)/tests/api_deps_test $(BUILD)/jobqd
	JOBQD=$(BUILD)/jobqd $(BUILD)/tests/api_deps_test

check-schedule: $(BUILD)/tests/api_schedule_test $(BUILD)/jobqd
	JOBQD=$(BUILD)/jobqd $(BUILD)/tests/api_schedule_test

# Retry, cancel and delete on the jobs a filter selects, page by page.
check-bulk: $(BUILD)/tests/api_bulk_test $(BUILD)/jobqd
	JOBQD=$(BUILD)/jobqd $(BUILD)/tests/api_bulk_test

# The short torture run; `make torture` is the long one.
check-torture: $(BUILD)/tests/torture $(BUILD)/jobqd-test
	JOBQD_TEST=$(BUILD)/jobqd-test $(BUILD)/tests/torture --kills 10 --clients 4 --seconds-per-round 0.3

torture:
	@scripts/deps.sh test
	@$(MAKE) --no-print-directory $(BUILD)/tests/torture $(BUILD)/jobqd-test
	JOBQD_TEST=$(BUILD)/jobqd-test $(BUILD)/tests/torture --kills 30 --clients 8 --seconds-per-round 1

# ---- PostgreSQL ----
# A private cluster (scripts/pg-cluster.sh) in a temp dir, stopped and
# removed whatever happens; against it, with a fresh schema per test: the
# store contract suite, the API suites that apply (README, "Running on
# PostgreSQL", says which do not and why), jobqd SIGKILLed under load, and
# the database server restarted under load. Until the tree has the backend
# (store/pg.c) it says so and does nothing.
PG_API_CHECKS := check-api check-semantics check-delivery check-command check-http check-events \
                 check-ops check-hostile check-metrics check-dispatch check-lease check-rate check-deps check-schedule check-bulk
PG_API_CHECKS += check-contract
.PHONY: check-pg check-pg-suites check-pg-unit check-pg-kill check-pg-restart check-cluster
ifeq ($(wildcard store/pg.c),)
check-pg:
	@echo "check-pg: SKIPPED: no PostgreSQL backend in this tree (store/pg.c)"
else
check-pg: $(BUILD)/tests/unit $(BUILD)/tests/torture $(BUILD)/tests/cluster_test $(BUILD)/jobqd $(BUILD)/jobqd-test
	@dir=$$(mktemp -d "$${TMPDIR:-/tmp}/jobq-pg-XXXXXX") || exit 1; \
	trap 'scripts/pg-cluster.sh stop "$$dir" || true; rm -rf "$$dir"' EXIT; \
	trap 'exit 130' INT TERM; \
	url=$$(scripts/pg-cluster.sh start "$$dir") || exit 1; \
	echo "check-pg: PostgreSQL at $$url"; \
	rc=0; JOBQ_TEST_PG_DIR="$$dir" JOBQ_TEST_PG_URL="$$url" JOBQ_TEST_DB_URL="$$url" \
		$(MAKE) --no-print-directory -j1 check-pg-suites || rc=$$?; \
	exit $$rc
endif

check-pg-suites: check-pg-unit $(PG_API_CHECKS) check-pg-kill check-pg-restart check-cluster

# (These need the cluster: run them through check-pg.)
check-pg-unit: $(BUILD)/tests/unit
	@test -n "$$JOBQ_TEST_PG_URL" || { echo "$@: run make check-pg" >&2; exit 2; }
	JOBQ_TEST_BACKEND=pg CK_RUN_SUITE="store contract" $(BUILD)/tests/unit

check-pg-kill: $(BUILD)/tests/torture $(BUILD)/jobqd-test
	@test -n "$$JOBQ_TEST_DB_URL" || { echo "$@: run make check-pg" >&2; exit 2; }
	JOBQD_TEST=$(BUILD)/jobqd-test $(BUILD)/tests/torture --kills 8 --clients 8 --seconds-per-round 0.5

check-pg-restart: $(BUILD)/tests/torture $(BUILD)/jobqd-test
	@test -n "$$JOBQ_TEST_PG_DIR" || { echo "$@: run make check-pg" >&2; exit 2; }
	JOBQD_TEST=$(BUILD)/jobqd-test PG_CLUSTER=scripts/pg-cluster.sh \
		$(BUILD)/tests/torture --restart-pg --kills 4 --clients 8 --seconds-per-round 1

# Three jobqd on one schema (issue 14): exactly once, kill -9 and SIGSTOP of
# a node, the leader killed, and long-poll, SSE, cancel, queue limits, pause
# and idempotency keys across nodes.
check-cluster: $(BUILD)/tests/cluster_test $(BUILD)/jobqd-test
	@test -n "$$JOBQ_TEST_DB_URL" || { echo "$@: run make check-pg" >&2; exit 2; }
	JOBQD_TEST=$(BUILD)/jobqd-test $(BUILD)/tests/cluster_test

check-readme: $(BUILD)/jobqd
	JOBQD=$(BUILD)/jobqd tests/readme_test.sh README.md

# The Python client (clients/python) installed with Debian's pip under
# $(BUILD)/python (never system-wide), its tests run from there against a
# real jobqd.
PY := /usr/bin/python3
check-python: $(BUILD)/jobqd
	rm -rf $(BUILD)/python && mkdir -p $(BUILD)/python
	cp -r clients/python $(BUILD)/python/src
	$(PY) -m pip install --quiet --no-build-isolation --no-deps --no-index \
		--target $(BUILD)/python/site $(BUILD)/python/src
	cp -r clients/python/tests $(BUILD)/python/tests
	cd $(BUILD)/python && PYTHONPATH=site JOBQD=$(abspath $(BUILD)/jobqd) \
		$(PY) -m unittest discover -s tests -t .

# The dashboard in Debian's chromium against a real jobqd; the screenshot
# goes to $(BUILD)/test-output/dashboard.png.
check-web: $(BUILD)/jobqd-test
	JOBQD=$(BUILD)/jobqd-test OUT_DIR=$(BUILD)/test-output scripts/test-web.sh

# deploy/nginx/jobq.conf in Debian's nginx in front of a real jobqd.
check-proxy: $(BUILD)/jobqd
	JOBQD=$(BUILD)/jobqd tests/proxy_test.sh deploy/nginx/jobq.conf

# The Dockerfile and the systemd unit, checked against the built jobqd.
check-deploy: $(BUILD)/jobqd
	JOBQD=$(BUILD)/jobqd tests/deploy_test.sh

# make install [PREFIX=/usr/local] [DESTDIR=]: jobqd, its man page (made
# from its own --help by scripts/manpage.sh) and its systemd unit, whose
# ExecStart names the installed binary. tests/install_test.sh checks it.
PREFIX ?= /usr/local
.PHONY: install man check-install
man: $(BUILD)/jobqd.1
$(BUILD)/jobqd.1: $(BUILD)/jobqd scripts/manpage.sh
	scripts/manpage.sh $(BUILD)/jobqd > $@.tmp && mv $@.tmp $@

install: $(BUILD)/jobqd $(BUILD)/jobqd.1
	install -d $(DESTDIR)$(PREFIX)/bin $(DESTDIR)$(PREFIX)/share/man/man1 $(DESTDIR)$(PREFIX)/lib/systemd/system
	install -m 755 $(BUILD)/jobqd $(DESTDIR)$(PREFIX)/bin/jobqd
	install -m 644 $(BUILD)/jobqd.1 $(DESTDIR)$(PREFIX)/share/man/man1/jobqd.1
	sed 's|^ExecStart=/usr/local/bin/jobqd|ExecStart=$(PREFIX)/bin/jobqd|' deploy/jobqd.service \
		> $(DESTDIR)$(PREFIX)/lib/systemd/system/jobqd.service
	chmod 644 $(DESTDIR)$(PREFIX)/lib/systemd/system/jobqd.service

check-install: $(BUILD)/jobqd
	MAKE="$(MAKE)" BUILD=$(BUILD) tests/install_test.sh

# The image and deploy/compose.yaml in the real Docker engine (as root; it
# starts its own dockerd when none runs). A few minutes, not in `make test`.
# It runs inside check-cluster-compose, so both share one engine and build
# the base image and jobq's image once.
.PHONY: check-container check-cluster-compose
check-container:
	@scripts/deps.sh container
	@$(MAKE) --no-print-directory check-cluster-compose CLUSTER_COMPOSE_FIRST=tests/container_test.sh

# deploy/cluster/compose.yaml (PostgreSQL, three jobqd, nginx) in the real
# Docker engine: jobs through nginx, then one jobqd killed under load.
# CLUSTER_COMPOSE_FIRST: a command run first on the same engine.
check-cluster-compose:
	@scripts/deps.sh container
	tests/cluster_compose_test.sh $(CLUSTER_COMPOSE_FIRST)

lint-openapi:
	scripts/lint-openapi.sh

# Every path, method and reachable documented error of openapi.yaml, through
# a validating proxy (tests/contract), on a default jobqd and one with keys.
check-contract: $(BUILD)/jobqd
	scripts/check-contract.sh $(BUILD)/jobqd

# cppcheck over jobqd's sources, clang's scan-build over a fresh build of
# everything (in build/analyze/); fails on any finding. Not part of `make test`.
analyze:
	@scripts/deps.sh analyze
	scripts/analyze.sh

deps:
	@scripts/deps.sh test

$(BUILD)/bench/load: bench/load.c
	@mkdir -p $(dir $@)
	$(CC) $(ALL_CFLAGS) $(PKG_CFLAGS) -o $@ $< $(LDFLAGS) $(LDLIBS)

$(BUILD)/bench/slow_server: bench/slow_server.c
	@mkdir -p $(dir $@)
	$(CC) $(ALL_CFLAGS) $(PKG_CFLAGS) -o $@ $< $(LDFLAGS) $(LDLIBS)

$(BUILD)/bench/waiters: bench/waiters.c
	@mkdir -p $(dir $@)
	$(CC) $(ALL_CFLAGS) -o $@ $<

# 10,000 long-polls on one job: memory per waiter, time to answer them all.
bench-waiters:
	@scripts/deps.sh build
	@$(MAKE) --no-print-directory $(BUILD)/jobqd $(BUILD)/bench/waiters
	JOBQD=$(BUILD)/jobqd WAITERS=$(BUILD)/bench/waiters bench/waiters.sh

# How many slow outbound requests one jobqd keeps in flight.
bench-http:
	@scripts/deps.sh build
	@$(MAKE) --no-print-directory $(BUILD)/jobqd $(BUILD)/bench/load $(BUILD)/bench/slow_server
	JOBQD=$(BUILD)/jobqd LOAD=$(BUILD)/bench/load SLOW_SERVER=$(BUILD)/bench/slow_server bench/http_jobs.sh

# The durable peers (the harness at PEERS_HARNESS, run as it is) and jobq,
# one after another in one sitting, then one table of same-run ratios:
# make bench-peers [PEERS="rq aof,beanstalkd wal"] [PEERBENCH_N=2000]
# jobq runs on SQLite, then on PostgreSQL (a private cluster); BACKENDS=sqlite
# or BACKENDS=pg runs one of them.
PEERS_HARNESS ?= ../shared/bench/peers
BACKENDS ?= sqlite pg
bench-peers:
	@scripts/deps.sh bench
	@$(MAKE) --no-print-directory $(BUILD)/jobqd
	JOBQD=$(BUILD)/jobqd PEERS_HARNESS=$(PEERS_HARNESS) BACKENDS="$(BACKENDS)" bench/peers/run.sh

# Figures, never assertions: see docs/benchmarks.md.
# One part alone: make bench PARTS="submit growth" (see bench/bench.sh).
# On PostgreSQL (a private cluster the bench starts): make bench BACKEND=pg
BACKEND ?= sqlite
bench:
	@scripts/deps.sh bench
	@$(MAKE) --no-print-directory $(BUILD)/jobqd $(BUILD)/bench/load $(BUILD)/bench/slow_server $(BUILD)/bench/waiters
	JOBQD=$(BUILD)/jobqd LOAD=$(BUILD)/bench/load SLOW_SERVER=$(BUILD)/bench/slow_server \
		WAITERS=$(BUILD)/bench/waiters BACKEND=$(BACKEND) bench/bench.sh $(PARTS)

# ---- fuzzing ----
# libFuzzer targets (tests/fuzz/fuzz_*.c), each linked with every library
# object, all built by clang under build/fuzz/ with ASan and UBSan. `make
# fuzz` runs each for FUZZ_SECONDS from its seeds in tests/fuzz/corpus/NAME;
# what it learns goes to build/fuzz/corpus/, a crash to build/fuzz/crash/.
FUZZ_SECONDS ?= 60
FUZZ_CC      ?= clang
FUZZ_BUILD   := build/fuzz
FUZZ_SAN     := -fsanitize=address,undefined -fno-sanitize-recover=all -fno-omit-frame-pointer
# (server/http.c hands libmicrohttpd's log format on, which clang flags)
FUZZ_CFLAGS   = -g -O1 -std=c11 -D_GNU_SOURCE $(WARN) -Werror -Wno-format-nonliteral $(FUZZ_SAN) -I. -MMD -MP $(PKG_CFLAGS)
FUZZ_NAMES   := $(patsubst tests/fuzz/%.c,%,$(wildcard tests/fuzz/fuzz_*.c))
FUZZ_BINS    := $(FUZZ_NAMES:%=$(FUZZ_BUILD)/%)
FUZZ_LIB_OBJ := $(LIB_SRC:%.c=$(FUZZ_BUILD)/%.o) $(FUZZ_BUILD)/gen/openapi.o $(FUZZ_BUILD)/gen/web.o

# (kept: make would delete them as intermediates of the pattern below)
.SECONDARY: $(FUZZ_LIB_OBJ)

$(FUZZ_BUILD)/%.o: %.c
	@mkdir -p $(dir $@)
	$(FUZZ_CC) $(FUZZ_CFLAGS) -fsanitize=fuzzer-no-link -c -o $@ $<

$(FUZZ_BUILD)/gen/%.o: $(BUILD)/gen/%.c
	@mkdir -p $(dir $@)
	$(FUZZ_CC) $(FUZZ_CFLAGS) -c -o $@ $<

$(FUZZ_BUILD)/fuzz_%: tests/fuzz/fuzz_%.c tests/fuzz/fuzz.h $(FUZZ_LIB_OBJ)
	$(FUZZ_CC) $(FUZZ_CFLAGS) -fsanitize=fuzzer -o $@ $< $(FUZZ_LIB_OBJ) $(LDFLAGS) $(LDLIBS)

fuzz-build:
	@scripts/deps.sh fuzz
	@$(MAKE) --no-print-directory fuzz-bins

fuzz-bins: $(FUZZ_BINS)

fuzz: fuzz-build
	@for t in $(FUZZ_NAMES); do \
		mkdir -p $(FUZZ_BUILD)/corpus/$$t $(FUZZ_BUILD)/crash tests/fuzz/corpus/$$t; \
		echo "fuzz: $$t for $(FUZZ_SECONDS) s"; \
		$(FUZZ_BUILD)/$$t -max_total_time=$(FUZZ_SECONDS) -max_len=4096 -timeout=10 -rss_limit_mb=1024 \
			-print_final_stats=1 -artifact_prefix=$(FUZZ_BUILD)/crash/$$t- \
			$(FUZZ_BUILD)/corpus/$$t tests/fuzz/corpus/$$t > $(FUZZ_BUILD)/$$t.log 2>&1 || \
			{ tail -n 60 $(FUZZ_BUILD)/$$t.log; echo "fuzz: $$t FAILED (log $(FUZZ_BUILD)/$$t.log)"; exit 1; }; \
		grep -E '^stat::number_of_executed_units|^#[0-9]+ +DONE' $(FUZZ_BUILD)/$$t.log | tail -n 1; \
	done; echo "fuzz: $(words $(FUZZ_NAMES)) targets, no crash"

# The short run CI makes.
fuzz-smoke:
	@$(MAKE) --no-print-directory fuzz FUZZ_SECONDS=10

clean:
	rm -rf build

-include $(shell find build -name '*.d' 2>/dev/null)
