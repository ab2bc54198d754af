/* jobqd: configuration, store, workers, HTTP; then wait for a signal and
 * tear down in reverse. */
#include <curl/curl.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/clock.h"
#include "core/hub.h"
#include "core/meter.h"
#include "core/metrics.h"
#include "core/log.h"
#include "core/run.h"
#include "handlers/handlers.h"
#include "server/app.h"
#include "server/config.h"
#include "server/http.h"
#include "store/store.h"
#include "workers/builtin.h"
#include "workers/callbacks.h"
#include "workers/command.h"
#include "workers/http.h"
#include "workers/pool.h"

#define DRAIN_MS 2000
/* Readers beside the HTTP threads: callback delivery, the writer's hooks. */
#define SPARE_READERS 8

/* Exit statuses besides 0 and 1 (README, Configuration): start-up errors
 * an operator fixes, each told in one plain line on stderr. */
#define EXIT_CONFIG 2    /* a bad flag, variable, key file or command */
#define EXIT_DATABASE 3  /* the database cannot be opened or written */
#define EXIT_DAMAGED 4   /* the database file is corrupt */

/* The test build (jobqd-test) adds job types that crash or count runs. */
#ifdef JOBQ_TEST_KINDS
#include "workers/testkinds.h"
#define TEST_KINDS_REGISTER() testkinds_register()
#else
#define TEST_KINDS_REGISTER() 0
#endif

/* What the store's hooks reach. The writer thread reads pool while main
 * sets it, hence atomic; the pool is freed only after the store closes. */
struct wiring {
	const struct config *cfg;
	struct hub *hub;
	struct events *events;
	struct meter *finished;
	struct metrics *metrics;
	struct run_table *runs;
	_Atomic(struct pool *) pool;
	_Atomic(struct callbacks *) callbacks;
};

static void poke_callbacks(struct wiring *w)
{
	struct callbacks *cb = atomic_load(&w->callbacks);
	if (cb)
		callbacks_notify(cb);
}

static void on_submitted(void *arg)
{
	struct wiring *w = arg;
	struct pool *pool = atomic_load(&w->pool);
	if (pool)
		pool_notify(pool);
}

static void on_finished(void *arg, const char *id, const char *queue)
{
	struct wiring *w = arg;
	meter_add(w->finished, queue, clock_now_ms());
	hub_notify(w->hub, id);
	poke_callbacks(w);
}

/* An attempt's run time in seconds. */
static double ran_s(const struct job *j)
{
	return (double)(j->finished_at - j->started_at) / 1000;
}

/* Counts a committed change: a submission, a claim (with its wait since
 * the job was due), or the end of an attempt (with its run time). */
static void count_change(struct metrics *m, const struct job_change *c)
{
	const struct job *j = c->job;
	if (c->created)
		metrics_job(m, c->queue, c->type, METRICS_JOB_SUBMITTED, -1);
	else if (c->state == JOB_RUNNING)
		metrics_job(m, c->queue, c->type, METRICS_JOB_STARTED, j ? (double)(j->started_at - j->run_at) / 1000 : -1);
	else if (c->state == JOB_SCHEDULED && j)
		metrics_job(m, c->queue, c->type, METRICS_JOB_RETRIED, ran_s(j));
	else if (job_state_terminal(c->state))
		metrics_job(m, c->queue, c->type,
		            c->state == JOB_SUCCEEDED ? METRICS_JOB_SUCCEEDED
		            : c->state == JOB_FAILED  ? METRICS_JOB_FAILED
		                                      : METRICS_JOB_CANCELED,
		            j ? ran_s(j) : -1);
}

/* The event streams hear of the change; waiting leases of a job queued
 * for external workers. Returns whether the job waits for them. */
static bool publish_change(struct wiring *w, const struct job_change *c)
{
	struct event e = {.kind = EVENT_JOB, .state = c->state, .attempts = c->attempts};
	snprintf(e.id, sizeof e.id, "%s", c->id);
	snprintf(e.queue, sizeof e.queue, "%s", c->queue);
	snprintf(e.type, sizeof e.type, "%s", c->type);
	events_publish(w->events, &e);
	bool external = c->state == JOB_QUEUED && config_queue_external(w->cfg, c->queue);
	if (external)
		leases_notify(w->hub);
	return external;
}

static void on_transition(void *arg, const struct job_change *c)
{
	struct wiring *w = arg;
	count_change(w->metrics, c);
	publish_change(w, c);
	char attempt[16];
	snprintf(attempt, sizeof attempt, "%d", c->attempts);
	const struct log_field f[] = {
		{"id", c->id, false}, {"queue", c->queue, false}, {"type", c->type, false},
		{"state", job_state_name(c->state), false}, {"attempt", attempt, true},
	};
	log_fields(LOG_INFO, "job", f, sizeof f / sizeof f[0]);
}

static void on_progress(void *arg, const struct job *job, double percent, const char *message)
{
	struct wiring *w = arg;
	struct event e = {.kind = EVENT_PROGRESS, .percent = percent};
	memcpy(e.id, job->id, sizeof e.id);
	memcpy(e.queue, job->queue, sizeof e.queue);
	memcpy(e.type, job->type, sizeof e.type);
	snprintf(e.message, sizeof e.message, "%s", message);
	events_publish(w->events, &e);
}

static void on_batch_done(void *arg, const char *batch_id)
{
	struct wiring *w = arg;
	hub_notify(w->hub, batch_id);
	poke_callbacks(w);
}

/* Another node's change, as the job is now: the streams and waiters here
 * hear of it, and idle workers here of runnable work. Metrics and the
 * job log stay with the node that made the change. */
static void on_remote(void *arg, const struct job_change *c)
{
	struct wiring *w = arg;
	if (!publish_change(w, c) && c->state == JOB_QUEUED)
		on_submitted(w);
	if (job_state_terminal(c->state)) {
		hub_notify(w->hub, c->id);
		poke_callbacks(w);
		on_submitted(w); /* a limited queue may have room now */
	}
}

/* A cancel committed on another node of a job this node's pool runs. */
static void on_stop(void *arg, const char *id)
{
	struct wiring *w = arg;
	run_table_stop(w->runs, id, RUN_STOP_CANCEL);
}

/* The cluster's fallback poll: idle workers and waiting leases look
 * again, as if a notice had come. */
static void on_wake(void *arg)
{
	struct wiring *w = arg;
	on_submitted(w);
	leases_notify(w->hub);
}

static bool on_runs_here(void *arg, const char *id)
{
	struct wiring *w = arg;
	return run_table_has(w->runs, id);
}

/* The job and batch ids requests here wait on: a long-poll waits on the
 * id itself, a job's event stream on events_key_job(id). */
static int on_watched(void *arg, char (*out)[UUID_LEN + 1], int max)
{
	struct wiring *w = arg;
	char (*keys)[HUB_KEY_MAX + 1] = malloc((size_t)max * sizeof *keys);
	if (!keys)
		return 0;
	size_t nkeys = hub_keys(w->hub, keys, (size_t)max);
	char prefix[HUB_KEY_MAX + 1];
	events_key_job("", prefix);
	size_t plen = strlen(prefix);
	int n = 0;
	for (size_t i = 0; i < nkeys && n < max; i++) {
		const char *id = strncmp(keys[i], prefix, plen) == 0 ? keys[i] + plen : keys[i];
		if (strlen(id) == UUID_LEN)
			memcpy(out[n++], id, UUID_LEN + 1);
	}
	free(keys);
	return n;
}

/* For the store: a claim skips the queues external workers serve. */
static bool store_queue_external(void *arg, const char *queue)
{
	return config_queue_external(arg, queue);
}

/* Registers every job type: built-in, test-only, each --command
 * NAME=PATH, and http (which starts its engine thread). A command path
 * that is not an executable file, or a bad --http-allow/--http-deny rule,
 * is a configuration error. */
static int register_job_types(const struct config *cfg, char *err, size_t errlen)
{
	if (builtin_register() != 0 || TEST_KINDS_REGISTER() != 0) {
		snprintf(err, errlen, "cannot register the built-in job types");
		return -1;
	}
	struct command_options co = {.grace_s = cfg->command_grace_s};
	for (int i = 0; i < cfg->ncommands; i++)
		if (command_register(cfg->commands[i].name, cfg->commands[i].path, &co, err, errlen) != 0)
			return -1;
	const char *allow[CONFIG_MAX_LIST], *deny[CONFIG_MAX_LIST];
	for (int i = 0; i < cfg->nhttp_allow; i++)
		allow[i] = cfg->http_allow[i];
	for (int i = 0; i < cfg->nhttp_deny; i++)
		deny[i] = cfg->http_deny[i];
	struct http_options ho = {
		.max_response = cfg->http_max_response,
		.allow = allow, .nallow = cfg->nhttp_allow,
		.deny = deny, .ndeny = cfg->nhttp_deny,
	};
	return http_engine_start(&ho, err, errlen);
}

/* Blocks the stop signals in every thread; main takes them with sigwait. */
static void block_signals(sigset_t *set)
{
	sigemptyset(set);
	sigaddset(set, SIGTERM);
	sigaddset(set, SIGINT);
	pthread_sigmask(SIG_BLOCK, set, NULL);
	signal(SIGPIPE, SIG_IGN);
}

int main(int argc, char **argv)
{
	struct config cfg;
	char err[512];
	switch (config_load(&cfg, argc, argv, err, sizeof err)) {
	case CONFIG_EXIT_OK: return 0;
	case CONFIG_ERROR: fprintf(stderr, "jobqd: %s\n", err); return EXIT_CONFIG;
	case CONFIG_OK: break;
	}
	if (config_check_exposure(&cfg, err, sizeof err) != 0) {
		fprintf(stderr, "jobqd: %s\n", err);
		return EXIT_CONFIG;
	}
	log_threshold = cfg.log_level;
	log_format = cfg.log_format;

	sigset_t stop_signals;
	block_signals(&stop_signals);
	curl_global_init(CURL_GLOBAL_DEFAULT);
	if (register_job_types(&cfg, err, sizeof err) != 0) {
		fprintf(stderr, "jobqd: %s\n", err);
		http_engine_stop();
		curl_global_cleanup();
		return EXIT_CONFIG;
	}

	int status = 1;
	struct wiring wiring = {.cfg = &cfg};
	struct app app = {.cfg = &cfg};
	struct http *http = NULL;
	struct store_hooks hooks = {.arg = &wiring, .transition = on_transition, .submitted = on_submitted,
	                            .finished = on_finished, .batch_done = on_batch_done, .remote = on_remote,
	                            .stop = on_stop, .wake = on_wake, .watched = on_watched,
	                            .runs_here = on_runs_here};
	struct store_options sopts = {
		.backend = config_db_is_pg(&cfg) ? "pg" : "sqlite",
		.path = cfg.db_path,
		.schema = cfg.db_schema,
		.durability = cfg.sync_full ? STORE_DURABLE_POWER_LOSS : STORE_DURABLE_CRASH,
		/* a reader for every thread that may read at once */
		.readers = (int)http_threads() + SPARE_READERS,
		.integrity_check_s = cfg.integrity_check_s,
		.external = store_queue_external, .external_arg = &cfg,
		.node_timeout_s = cfg.node_timeout_s,
		.job_defaults = &cfg.defaults, /* schedules' fired jobs */
	};
	bool started = false; /* a start-up error says it all in its one line */

	if (!(wiring.hub = app.hub = hub_new()) || !(app.runs = run_table_new()) ||
	    !(wiring.finished = app.finished = meter_new()) ||
	    !(wiring.metrics = app.metrics = metrics_new()) ||
	    !(wiring.events = app.events = events_new(app.hub)))
		goto out;
	run_table_on_progress(app.runs, on_progress, &wiring);
	wiring.runs = app.runs;
	int opened = store_open(&sopts, &hooks, &app.store, err, sizeof err);
	if (opened != 0) {
		fprintf(stderr, "jobqd: %s\n", err);
		status = opened == STORE_OPEN_DAMAGED ? EXIT_DAMAGED : EXIT_DATABASE;
		goto out;
	}
	started = true;
	struct pool_queue_limit limits[CONFIG_MAX_QUEUES];
	for (int i = 0; i < cfg.nqueues; i++)
		limits[i] = (struct pool_queue_limit){.name = cfg.queues[i].name, .limit = cfg.queues[i].limit};
	struct pool *pool = pool_start(app.store, app.runs, cfg.workers, limits, cfg.nqueues);
	if (!pool)
		goto out;
	atomic_store(&wiring.pool, pool);
	struct callbacks *callbacks = callbacks_start(app.store, cfg.callback_secret);
	if (!callbacks)
		goto out;
	atomic_store(&wiring.callbacks, callbacks);
	if (http_start(&app, cfg.listen_host, cfg.listen_port, &http) != 0)
		goto out;
	char db_shown[sizeof cfg.db_path];
	store_mask_uri(cfg.db_path, db_shown, sizeof db_shown);
	if (config_db_is_pg(&cfg))
		log_info("jobqd ready: %d workers, database %s schema %s, sync %s", cfg.workers, db_shown,
		         cfg.db_schema, cfg.sync_full ? "full" : "normal");
	else
		log_info("jobqd ready: %d workers, database %s, sync %s", cfg.workers, db_shown,
		         cfg.sync_full ? "full" : "normal");

	int sig = 0;
	sigwait(&stop_signals, &sig);
	log_info("signal %d: shutting down", sig);
	status = 0;

	/* Refuse new work but keep answering reads while running jobs get
	 * their grace period; put the rest back, let the writer commit their
	 * outcomes, release every waiter, then stop taking connections. */
	atomic_store(&app.stopping, true);
out:
	pool_stop(atomic_load(&wiring.pool), (int64_t)(cfg.shutdown_grace_s * 1000));
	callbacks_stop(atomic_load(&wiring.callbacks));
	http_engine_stop(); /* ends what is still in flight, through the store */
	if (app.store) {
		struct store_op flush = {.kind = STORE_OP_PING};
		store_run(app.store, &flush);
	}
	if (app.hub)
		hub_fire_all(app.hub);
	if (http) {
		http_quiesce(http);
		http_drain(http, DRAIN_MS);
		http_stop(http);
	}
	store_close(app.store);
	pool_free(atomic_load(&wiring.pool));
	callbacks_free(atomic_load(&wiring.callbacks));
	hub_free(app.hub);
	events_free(app.events);
	meter_free(app.finished);
	metrics_free(app.metrics);
	run_table_free(app.runs);
	curl_global_cleanup();
	if (started)
		log_info("jobqd stopped");
	return status;
}
