/* Schedules: a job template fired on a cron expression or a fixed interval
 * in a time zone. This module validates a definition, keeps its stored
 * form (canonical JSON text), and does the time maths: the next fire time
 * and which due times a late tick fires under each catch-up policy. It
 * touches no database; the store fires (STORE_OP_FIRE), the handlers
 * render. Pure functions, safe from any thread, but the fire counters. */
#ifndef JOBQ_CORE_SCHEDULE_H
#define JOBQ_CORE_SCHEDULE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <cjson/cJSON.h>

#include "core/cron.h"
#include "core/job.h"
#include "core/problem.h"
#include "core/tz.h"

enum schedule_catch_up {
	SCHEDULE_SKIP,   /* fire only due times at most misfire_grace_s late */
	SCHEDULE_LATEST, /* those; or, when none is, the latest late one once */
	SCHEDULE_ALL,    /* every due time, the newest catch_up_max of them */
};

#define SCHEDULE_TZ_MAX 128
#define SCHEDULE_EVERY_MAX_S 31536000      /* one year */
#define SCHEDULE_CATCH_UP_MAX_LIMIT 1000
#define SCHEDULE_CATCH_UP_MAX_DEFAULT 100
#define SCHEDULE_GRACE_DEFAULT_S 60
#define SCHEDULE_GRACE_MAX_S 86400
/* Jobs one fire of one schedule submits at most (any policy). */
#define SCHEDULE_FIRES_MAX 1000

/* A definition. Built by schedule_from_json or schedule_from_stored;
 * emptied by schedule_clear. */
struct schedule {
	char name[JOB_NAME_MAX + 1];
	cJSON *job;                       /* the job template (owned) */
	bool has_cron;
	char cron_text[CRON_TEXT_MAX + 1];
	struct cron cron;
	int64_t every_s;                  /* when !has_cron */
	char tz_name[SCHEDULE_TZ_MAX + 1];
	struct tz *tz;                    /* owned */
	enum schedule_catch_up catch_up;
	int catch_up_max;
	int64_t misfire_grace_s;
};

/* Validates a request body ({name?, job, cron | every_s, tz?, catch_up?,
 * catch_up_max?, misfire_grace_s?}, as job_parse_body returns it) into
 * out. name: the path's name for a replace (the body's, if any, must be
 * the same), NULL for a create (then the body names it). The job template
 * is checked exactly as POST /v1/jobs checks a body, with d, and may not
 * hold run_at, depends_on or on_dependency_failure. -1 with p naming the
 * field (a well-formed zone name that is not found is 422
 * unknown_time_zone naming tz, an ill-formed one 400; a bad cron names cron
 * with core/cron.c's text); out is then empty. */
int schedule_from_json(const cJSON *body, const char *name, const struct job_defaults *d,
                       struct schedule *out, struct problem *p);

/* The stored form: canonical JSON of everything but the name (the
 * caller frees it); NULL on OOM. */
char *schedule_to_stored(const struct schedule *s);

/* Reads a stored form back (the zone loaded again). -1 with err on
 * failure (a zone file gone, OOM). */
int schedule_from_stored(const char *name, const char *text, struct schedule *out, char *err, size_t errlen);

void schedule_clear(struct schedule *s);

/* The first fire time strictly after after_ms (unix ms); 0: never (a
 * cron that matches no day, or the years the zone covers ran out). Cron
 * fires fall on whole local minutes; an interval's are after_ms-free: the
 * next one is first_fire + k * every_s, see schedule_first. */
int64_t schedule_next(const struct schedule *s, int64_t after_ms);

/* The next fire time of a schedule created, replaced or resumed at now:
 * a cron's first match after now, an interval's now + every_s. */
int64_t schedule_first(const struct schedule *s, int64_t now);

/* What one tick does with a schedule whose next fire time `due` has come
 * (due <= now): the times to fire (oldest first, at most
 * SCHEDULE_FIRES_MAX), how many due times it leaves unfired (skipped),
 * and the next fire time after now (0: never). */
struct schedule_plan {
	int64_t fire_at[SCHEDULE_FIRES_MAX];
	int n;
	int64_t skipped;
	int64_t next;
};

void schedule_plan(const struct schedule *s, int64_t due, int64_t now, struct schedule_plan *out);

/* A new job from the template for the fire at fire_at (unix ms), created
 * at now, carrying the schedule's name and fire time. -1 with p when the
 * template no longer validates (a job type gone). */
int schedule_make_job(const struct schedule *s, const struct job_defaults *d, int64_t fire_at, int64_t now,
                      struct job **out, struct problem *p);

/* The definition's fields as the API shows them, added to o. */
void schedule_add_json(const struct schedule *s, cJSON *o);

const char *schedule_catch_up_name(enum schedule_catch_up c);

/* Fire counters of this process (for /metrics), after commits: jobs a
 * schedule submitted, and due times left unfired. Any thread. */
void schedule_count_fired(const char *name, int64_t n);
void schedule_count_skipped(int64_t n);
int64_t schedule_skipped_total(void);
/* Calls each(name, fired) for each schedule that fired, in name order. */
void schedule_each_fired(void (*each)(void *arg, const char *name, int64_t n), void *arg);

#endif
