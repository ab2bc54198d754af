/* Job kinds: the table of registered job types. A kind validates payloads
 * at submit time and runs jobs on a worker thread. Kinds are registered at
 * start-up, before the store, pool and HTTP threads exist (a kind's own
 * thread may run, but never reads the table); after that the table is
 * read-only and needs no lock. */
#ifndef JOBQ_KIND_H
#define JOBQ_KIND_H

#include <cjson/cJSON.h>

#include "core/problem.h"

struct run;

enum run_outcome {
	RUN_SUCCEEDED, /* *result set (may be NULL for a null result) */
	RUN_FAILED,    /* *error set; the job is retried while attempts are left */
	RUN_FAILED_FINAL, /* *error set; retrying cannot help */
	RUN_STOPPED,   /* asked to stop: canceled, timed out or shutting down */
};

/* A kind either runs an attempt on a worker thread (run), or starts it
 * and returns at once (start), ending it later from its own thread with
 * run_finish(): the way to run many slow I/O-bound jobs without a thread
 * each. */
struct job_kind {
	const char *name;
	/* Checks a payload (NULL when absent). Returns 0, or -1 with p filled
	 * (invalid_payload, field "payload" or "payload.x"). */
	int (*validate)(const struct job_kind *kind, const cJSON *payload, struct problem *p);
	/* Runs one attempt on a worker thread. Must return promptly
	 * (RUN_STOPPED) once run_stopping(run) is true. *result and *error
	 * pass to the caller. */
	enum run_outcome (*run)(const struct job_kind *kind, struct run *run, const cJSON *payload,
	                        cJSON **result, char **error);
	/* Or: starts one attempt and returns 0; the attempt then ends with
	 * exactly one run_finish(run, ...) from any thread (possibly before
	 * start returns, e.g. for a payload it refuses), and must end promptly
	 * once the run's stop hook fires (see core/run.h). Returns -1 with
	 * *error set when it cannot start (then no run_finish; the attempt
	 * fails and is retried). */
	int (*start)(const struct job_kind *kind, struct run *run, const cJSON *payload, char **error);
	void *arg;  /* the kind's own data, e.g. the path of a command */
};

#define KIND_MAX 64

/* Adds a kind (the struct must outlive the process). -1 when the name is
 * taken or the table is full. */
int kind_register(const struct job_kind *kind);

/* NULL when no kind has that name. */
const struct job_kind *kind_find(const char *name);

/* Forgets every kind (tests). */
void kind_reset(void);

#endif
