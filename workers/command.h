/* Command job kinds: each operator-registered executable (--command
 * NAME=PATH) is a job type. A job runs PATH (no shell) in its own process
 * group with the payload as JSON on stdin; its stdout becomes the result.
 * See workers/command.c for the full contract. */
#ifndef JOBQ_COMMAND_H
#define JOBQ_COMMAND_H

#include <stddef.h>

#define COMMAND_GRACE_S_DEFAULT 5.0
#define COMMAND_MAX_OUTPUT_DEFAULT ((size_t)1 << 20)

struct command_options {
	double grace_s;    /* SIGTERM to SIGKILL on stop, seconds; <= 0: default */
	size_t max_output; /* stdout cap in bytes; 0: default */
};

/* Registers job type `name` running the executable `path` (absolute, or
 * relative to jobqd's working directory). name must be a valid job type
 * name (1..64 of [A-Za-z0-9_.:-]) not taken yet, and path an executable
 * regular file now. o may be NULL (defaults). Returns 0, or -1 with a
 * one-line message in err (nothing registered). Call at start-up, before
 * any worker thread runs. The struct job_kind is allocated and lives for
 * the process; kind->arg is a copy of path. */
int command_register(const char *name, const char *path, const struct command_options *o,
                     char *err, size_t errlen);

#endif
