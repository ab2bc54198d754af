/* Job kinds: the table of registered job types. A kind validates payloads
 * at submit time and runs jobs on a worker thread. Kinds are registered at
 * start-up, before any thread exists; after that the table is read-only and
 * needs no lock. */
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

struct job_kind {
	const char *name;
	/* Checks a payload (NULL when absent). Returns 0, or -1 with p filled
	 * (invalid_payload, field "payload" or "payload.x"). */
	int (*validate)(const cJSON *payload, struct problem *p);
	/* Runs one attempt. Must return promptly (RUN_STOPPED) once
	 * run_stopping(run) is true. *result and *error pass to the caller. */
	enum run_outcome (*run)(struct run *run, const cJSON *payload,
	                        cJSON **result, char **error);
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
