/* Schedules: validation, the stored form, next fire times and catch-up
 * maths (see core/schedule.h). Times inside are unix ms; cron works on
 * seconds (core/cron.h) and its fires fall on whole minutes. */
#include "core/schedule.h"

#include <math.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/clock.h"

/* How many due times a plan walks through one by one before it jumps
 * ahead (a cron's backlog after a very long stop). */
#define PLAN_WALK_MAX 200000

static const char *const catch_up_names[] = {
	[SCHEDULE_SKIP] = "skip", [SCHEDULE_LATEST] = "latest", [SCHEDULE_ALL] = "all",
};

const char *schedule_catch_up_name(enum schedule_catch_up c)
{
	return catch_up_names[c];
}

void schedule_clear(struct schedule *s)
{
	cJSON_Delete(s->job);
	tz_free(s->tz);
	memset(s, 0, sizeof *s);
}

/* An optional integer field within [min, max]; -1 with p naming it. */
static int opt_int(const cJSON *body, const char *key, int64_t min, int64_t max, int64_t *out, struct problem *p)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(body, key);
	if (!v)
		return 0;
	if (!cJSON_IsNumber(v) || v->valuedouble != floor(v->valuedouble))
		return problem_set(p, PROBLEM_INVALID_FIELD, key, "%s must be an integer", key);
	if (v->valuedouble < (double)min || v->valuedouble > (double)max)
		return problem_set(p, PROBLEM_INVALID_FIELD, key, "%s must be from %lld to %lld", key,
		                   (long long)min, (long long)max);
	*out = (int64_t)v->valuedouble;
	return 0;
}

/* Whether name has the shape of a zone name (openapi.yaml's pattern for
 * tz): a string that fails it is the request's fault whatever the system
 * holds (400); one that passes and is not found is this system's answer
 * (422). */
static bool zone_name_shaped(const char *name)
{
	size_t n = strlen(name);
	if (n == 0 || n > SCHEDULE_TZ_MAX || name[0] == '/')
		return false;
	return strspn(name, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_+-/") == n;
}

static int load_zone(struct schedule *s, const char *name, struct problem *p)
{
	char err[256];
	enum tz_status ts = tz_load(name, &s->tz, err, sizeof err);
	if (ts == TZ_INVALID)
		return problem_set(p, PROBLEM_UNKNOWN_TIME_ZONE, "tz", "%s", err);
	if (ts != TZ_OK)
		return problem_set(p, PROBLEM_INTERNAL, NULL, "cannot read time zone: %s", err);
	snprintf(s->tz_name, sizeof s->tz_name, "%s", name);
	return 0;
}

/* The parts shared by a request and the stored form: everything but the
 * name and the job template's check. */
static int parse_timing(const cJSON *body, struct schedule *s, struct problem *p)
{
	/* null is absent: a reply shows the unused one of the two as null */
	const cJSON *cron = cJSON_GetObjectItemCaseSensitive(body, "cron");
	const cJSON *every = cJSON_GetObjectItemCaseSensitive(body, "every_s");
	cron = cJSON_IsNull(cron) ? NULL : cron;
	every = cJSON_IsNull(every) ? NULL : every;
	if (cron && every)
		return problem_set(p, PROBLEM_INVALID_FIELD, "cron", "give cron or every_s, not both");
	if (!cron && !every)
		return problem_set(p, PROBLEM_INVALID_FIELD, "cron", "cron or every_s is required");
	if (cron) {
		char err[200];
		if (!cJSON_IsString(cron))
			return problem_set(p, PROBLEM_INVALID_FIELD, "cron", "cron must be a string");
		if (strlen(cron->valuestring) > CRON_TEXT_MAX)
			return problem_set(p, PROBLEM_INVALID_FIELD, "cron", "cron must be at most %d bytes", CRON_TEXT_MAX);
		if (cron_parse(cron->valuestring, &s->cron, err, sizeof err) != 0)
			return problem_set(p, PROBLEM_INVALID_FIELD, "cron", "cron: %s", err);
		s->has_cron = true;
		snprintf(s->cron_text, sizeof s->cron_text, "%s", cron->valuestring);
	} else if (!cJSON_IsNumber(every) || every->valuedouble != floor(every->valuedouble)) {
		return problem_set(p, PROBLEM_INVALID_FIELD, "every_s", "every_s must be an integer");
	} else if (opt_int(body, "every_s", 1, SCHEDULE_EVERY_MAX_S, &s->every_s, p) != 0) {
		return -1;
	}
	const cJSON *tz = cJSON_GetObjectItemCaseSensitive(body, "tz");
	if (tz && !cJSON_IsString(tz))
		return problem_set(p, PROBLEM_INVALID_FIELD, "tz", "tz must be a string (an IANA zone name)");
	const char *zone = tz ? tz->valuestring : "UTC";
	if (!zone_name_shaped(zone))
		return problem_set(p, PROBLEM_INVALID_FIELD, "tz",
		                   "tz must be a zone name: 1 to %d characters of A-Z a-z 0-9 _ + - /, not starting with /",
		                   SCHEDULE_TZ_MAX);
	if (load_zone(s, zone, p) != 0)
		return -1;
	s->catch_up = SCHEDULE_SKIP;
	const cJSON *cu = cJSON_GetObjectItemCaseSensitive(body, "catch_up");
	if (cu) {
		int k = -1;
		for (int i = 0; cJSON_IsString(cu) && i < 3; i++)
			if (strcmp(cu->valuestring, catch_up_names[i]) == 0)
				k = i;
		if (k < 0)
			return problem_set(p, PROBLEM_INVALID_FIELD, "catch_up", "catch_up must be \"skip\", \"latest\" or \"all\"");
		s->catch_up = (enum schedule_catch_up)k;
	}
	int64_t max = SCHEDULE_CATCH_UP_MAX_DEFAULT, grace = SCHEDULE_GRACE_DEFAULT_S;
	if (opt_int(body, "catch_up_max", 1, SCHEDULE_CATCH_UP_MAX_LIMIT, &max, p) != 0 ||
	    opt_int(body, "misfire_grace_s", 0, SCHEDULE_GRACE_MAX_S, &grace, p) != 0)
		return -1;
	s->catch_up_max = (int)max;
	s->misfire_grace_s = grace;
	return 0;
}

/* The definition's keys, and the read-only ones of the reply (accepted and
 * ignored, so that a GET's body can be PUT back). */
static const char *const known_keys[] = {
	"name", "job", "cron", "every_s", "tz", "catch_up", "catch_up_max", "misfire_grace_s",
	"paused", "next_fire_at", "last_fire_at", "created_at", "updated_at",
};

/* The template checked as a submission; problems named job.<field>. */
static int check_template(const cJSON *job, const struct job_defaults *d, struct problem *p)
{
	if (!job)
		return problem_set(p, PROBLEM_INVALID_FIELD, "job", "job is required (a job submission: type, payload, ...)");
	if (!cJSON_IsObject(job))
		return problem_set(p, PROBLEM_INVALID_FIELD, "job", "job must be an object (a job submission)");
	if (cJSON_GetObjectItemCaseSensitive(job, "run_at"))
		return problem_set(p, PROBLEM_INVALID_FIELD, "job.run_at",
		                   "a schedule's job cannot have run_at (each fire is its own time); use delay_s");
	/* A fire inserts its job without dependency edges (the fire op knows
	 * none), so a template's parents would be shown and never waited for. */
	static const char *const no_deps[] = {"depends_on", "on_dependency_failure"};
	for (size_t i = 0; i < sizeof no_deps / sizeof no_deps[0]; i++)
		if (cJSON_GetObjectItemCaseSensitive(job, no_deps[i]))
			return problem_set(p, PROBLEM_INVALID_FIELD, i ? "job.on_dependency_failure" : "job.depends_on",
			                   "a schedule's job cannot have %s: its fires do not wait for other jobs",
			                   no_deps[i]);
	struct job *made = NULL;
	if (job_from_submission(job, d, &made, p) != 0) {
		char field[sizeof p->field];
		snprintf(field, sizeof field, "%s", p->field);
		if (field[0])
			snprintf(p->field, sizeof p->field, "job.%.80s", field);
		else
			snprintf(p->field, sizeof p->field, "job");
		return -1;
	}
	job_free(made);
	return 0;
}

int schedule_from_json(const cJSON *body, const char *name, const struct job_defaults *d,
                       struct schedule *out, struct problem *p)
{
	struct schedule s;
	memset(&s, 0, sizeof s);
	for (const cJSON *k = body->child; k; k = k->next) {
		bool known = false;
		for (size_t i = 0; i < sizeof known_keys / sizeof known_keys[0]; i++)
			known = known || strcmp(k->string, known_keys[i]) == 0;
		if (!known)
			return problem_set(p, PROBLEM_INVALID_FIELD, k->string, "unknown field %.64s", k->string);
	}
	const cJSON *n = cJSON_GetObjectItemCaseSensitive(body, "name");
	if (n && (!cJSON_IsString(n) || !job_queue_name_valid(n->valuestring)))
		return problem_set(p, PROBLEM_INVALID_FIELD, "name",
		                   "name must be 1 to %d characters of A-Z a-z 0-9 _ . : -", JOB_NAME_MAX);
	if (!name && !n)
		return problem_set(p, PROBLEM_INVALID_FIELD, "name", "name is required");
	if (name && n && strcmp(name, n->valuestring) != 0)
		return problem_set(p, PROBLEM_INVALID_FIELD, "name", "name must be the one in the path (%s)", name);
	snprintf(s.name, sizeof s.name, "%s", name ? name : n->valuestring);
	const cJSON *job = cJSON_GetObjectItemCaseSensitive(body, "job");
	if (check_template(job, d, p) != 0)
		return -1;
	if (parse_timing(body, &s, p) != 0) {
		schedule_clear(&s);
		return -1;
	}
	if (s.has_cron && schedule_next(&s, clock_now_ms()) == 0) {
		schedule_clear(&s);
		return problem_set(p, PROBLEM_INVALID_FIELD, "cron", "cron: the expression never fires (no such day)");
	}
	if (!(s.job = cJSON_Duplicate(job, true))) {
		schedule_clear(&s);
		return problem_set(p, PROBLEM_INTERNAL, NULL, "out of memory");
	}
	*out = s;
	return 0;
}

void schedule_add_json(const struct schedule *s, cJSON *o)
{
	if (s->has_cron) {
		cJSON_AddStringToObject(o, "cron", s->cron_text);
		cJSON_AddNullToObject(o, "every_s");
	} else {
		cJSON_AddNullToObject(o, "cron");
		cJSON_AddNumberToObject(o, "every_s", (double)s->every_s);
	}
	cJSON_AddStringToObject(o, "tz", s->tz_name);
	cJSON_AddStringToObject(o, "catch_up", catch_up_names[s->catch_up]);
	cJSON_AddNumberToObject(o, "catch_up_max", s->catch_up_max);
	cJSON_AddNumberToObject(o, "misfire_grace_s", (double)s->misfire_grace_s);
	cJSON_AddItemToObject(o, "job", cJSON_Duplicate(s->job, true));
}

char *schedule_to_stored(const struct schedule *s)
{
	cJSON *o = cJSON_CreateObject();
	if (!o)
		return NULL;
	schedule_add_json(s, o);
	char *text = cJSON_PrintUnformatted(o);
	cJSON_Delete(o);
	return text;
}

int schedule_from_stored(const char *name, const char *text, struct schedule *out, char *err, size_t errlen)
{
	struct problem p;
	struct schedule s;
	memset(&s, 0, sizeof s);
	cJSON *body = job_parse_body(text, strlen(text), &p);
	const cJSON *job = body ? cJSON_GetObjectItemCaseSensitive(body, "job") : NULL;
	if (!body || !cJSON_IsObject(job) || parse_timing(body, &s, &p) != 0 ||
	    !(s.job = cJSON_Duplicate(job, true))) {
		snprintf(err, errlen, "schedule %s: %s", name, body ? p.detail : "unreadable definition");
		cJSON_Delete(body);
		schedule_clear(&s);
		return -1;
	}
	cJSON_Delete(body);
	snprintf(s.name, sizeof s.name, "%s", name);
	*out = s;
	return 0;
}

/* ---- time maths ---------------------------------------------------------- */

static int64_t floor_div(int64_t a, int64_t b)
{
	return a >= 0 ? a / b : -((-a + b - 1) / b);
}

int64_t schedule_next(const struct schedule *s, int64_t after_ms)
{
	if (!s->has_cron)
		return after_ms + s->every_s * 1000;
	int64_t next = 0;
	if (cron_next(&s->cron, s->tz, floor_div(after_ms, 1000), &next) != CRON_FOUND)
		return 0;
	return next * 1000;
}

int64_t schedule_first(const struct schedule *s, int64_t now)
{
	return schedule_next(s, now);
}

/* Keeps the newest SCHEDULE_FIRES_MAX due times in a ring. */
struct ring {
	int64_t t[SCHEDULE_FIRES_MAX];
	int64_t count;                    /* due times seen */
};

static void ring_add(struct ring *r, int64_t t)
{
	r->t[r->count % SCHEDULE_FIRES_MAX] = t;
	r->count++;
}

/* The k-th newest due time seen (0: the newest); k < min(count, MAX). */
static int64_t ring_newest(const struct ring *r, int64_t k)
{
	return r->t[(r->count - 1 - k) % SCHEDULE_FIRES_MAX];
}

void schedule_plan(const struct schedule *s, int64_t due, int64_t now, struct schedule_plan *out)
{
	static _Thread_local struct ring ring;
	ring.count = 0;
	out->n = 0;
	out->skipped = 0;
	out->next = 0;
	int64_t grace_ms = s->misfire_grace_s * 1000, on_time = 0, total = 0;
	if (!s->has_cron) {
		/* Interval: due + k * every, arithmetically. */
		int64_t step = s->every_s * 1000;
		int64_t last_k = now >= due ? (now - due) / step : -1;
		total = last_k + 1;
		int64_t first_k = total > SCHEDULE_FIRES_MAX ? total - SCHEDULE_FIRES_MAX : 0;
		for (int64_t k = first_k; k <= last_k; k++)
			ring_add(&ring, due + k * step);
		out->next = due + (last_k + 1) * step;
	} else {
		int64_t t = due;
		int64_t walked = 0;
		while (t != 0 && t <= now) {
			ring_add(&ring, t);
			total++;
			if (++walked == PLAN_WALK_MAX) {
				/* A huge backlog: go on from a day before now (the
				 * policies look at the newest due times only). */
				int64_t from = now - 86400000 > t ? now - 86400000 : t;
				t = schedule_next(s, from);
				continue;
			}
			t = schedule_next(s, t);
		}
		out->next = t;
	}
	int64_t kept = ring.count < SCHEDULE_FIRES_MAX ? ring.count : SCHEDULE_FIRES_MAX;
	while (on_time < kept && now - ring_newest(&ring, on_time) <= grace_ms)
		on_time++;
	int64_t fire = 0;
	switch (s->catch_up) {
	case SCHEDULE_SKIP:
		fire = on_time;
		break;
	case SCHEDULE_LATEST:
		fire = on_time > 0 ? on_time : (kept > 0 ? 1 : 0);
		break;
	case SCHEDULE_ALL:
		fire = kept < s->catch_up_max ? kept : s->catch_up_max;
		if (fire < on_time)
			fire = on_time;
		break;
	}
	for (int64_t k = fire - 1; k >= 0; k--)
		out->fire_at[out->n++] = ring_newest(&ring, k);
	out->skipped = total - fire;
}

int schedule_make_job(const struct schedule *s, const struct job_defaults *d, int64_t fire_at, int64_t now,
                      struct job **out, struct problem *p)
{
	(void)now;
	struct job *job = NULL;
	if (job_from_submission(s->job, d, &job, p) != 0)
		return -1;
	snprintf(job->schedule_name, sizeof job->schedule_name, "%s", s->name);
	job->schedule_fire_at = fire_at;
	*out = job;
	return 0;
}

/* ---- counters --------------------------------------------------------- */

struct fired_count {
	char name[JOB_NAME_MAX + 1];
	int64_t n;
};

static struct {
	pthread_mutex_t mu;               /* guards items, nitems, cap */
	struct fired_count *items;        /* sorted by name */
	size_t nitems, cap;
} fired = {.mu = PTHREAD_MUTEX_INITIALIZER};

static atomic_int_fast64_t skipped_total;

void schedule_count_fired(const char *name, int64_t n)
{
	pthread_mutex_lock(&fired.mu);
	size_t i = 0;
	while (i < fired.nitems && strcmp(fired.items[i].name, name) < 0)
		i++;
	if (i < fired.nitems && strcmp(fired.items[i].name, name) == 0) {
		fired.items[i].n += n;
		pthread_mutex_unlock(&fired.mu);
		return;
	}
	if (fired.nitems == fired.cap) {
		size_t cap = fired.cap ? fired.cap * 2 : 16;
		struct fired_count *grown = realloc(fired.items, cap * sizeof *grown);
		if (!grown) {                     /* out of memory: this count is lost */
			pthread_mutex_unlock(&fired.mu);
			return;
		}
		fired.items = grown;
		fired.cap = cap;
	}
	memmove(fired.items + i + 1, fired.items + i, (fired.nitems - i) * sizeof *fired.items);
	snprintf(fired.items[i].name, sizeof fired.items[i].name, "%s", name);
	fired.items[i].n = n;
	fired.nitems++;
	pthread_mutex_unlock(&fired.mu);
}

void schedule_count_skipped(int64_t n)
{
	atomic_fetch_add(&skipped_total, n);
}

int64_t schedule_skipped_total(void)
{
	return atomic_load(&skipped_total);
}

void schedule_each_fired(void (*each)(void *arg, const char *name, int64_t n), void *arg)
{
	pthread_mutex_lock(&fired.mu);
	for (size_t i = 0; i < fired.nitems; i++)
		each(arg, fired.items[i].name, fired.items[i].n);
	pthread_mutex_unlock(&fired.mu);
}
