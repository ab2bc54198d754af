/* /v1/schedules: create, read, list, replace, delete, pause, resume and run
 * now. Validation and time maths are core/schedule.c's; each write is one
 * store op (STORE_OP_SCHEDULE, or STORE_OP_FIRE for run now) and the reply
 * reads the schedule back after the commit. The leader's writer fires. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/clock.h"
#include "core/job.h"
#include "core/schedule.h"
#include "handlers/handlers.h"
#include "server/app.h"
#include "store/store.h"

#define LIST_DEFAULT 50
#define LIST_MAX 1000

struct sched_req {
	struct store_op op;
	char *spec;                       /* the stored form being written */
	struct job *job;                  /* run now: the job being inserted */
	struct job *jobs[1];
};

static void sched_req_free(void *p)
{
	struct sched_req *sr = p;
	if (!sr)
		return;
	free(sr->spec);
	job_free(sr->job);
	free(sr);
}

static struct sched_req *sched_req_new(struct req *r, enum store_op_kind kind)
{
	struct sched_req *sr = handler_new_ctx(r, sizeof *sr, sched_req_free);
	if (sr)
		sr->op.kind = kind;
	return sr;
}

static void add_time(cJSON *o, const char *key, int64_t ms)
{
	char at[32];
	if (!ms) {
		cJSON_AddNullToObject(o, key);
		return;
	}
	clock_rfc3339(ms, at);
	cJSON_AddStringToObject(o, key, at);
}

/* The schedule's API form: its name, its definition as stored, its
 * state. NULL on OOM or an unreadable definition. */
static cJSON *schedule_json(const struct store_schedule *row)
{
	cJSON *spec = cJSON_Parse(row->spec);
	cJSON *o = cJSON_CreateObject();
	if (!o || !cJSON_IsObject(spec)) {
		cJSON_Delete(spec);
		cJSON_Delete(o);
		return NULL;
	}
	cJSON_AddStringToObject(o, "name", row->name);
	while (spec->child) {
		cJSON *item = cJSON_DetachItemViaPointer(spec, spec->child);
		cJSON_AddItemToObject(o, item->string, item);
	}
	cJSON_Delete(spec);
	cJSON_AddBoolToObject(o, "paused", row->paused);
	add_time(o, "next_fire_at", row->paused ? 0 : row->next_fire_at);
	add_time(o, "last_fire_at", row->last_fire_at);
	add_time(o, "created_at", row->created_at);
	add_time(o, "updated_at", row->updated_at);
	return o;
}

/* Replies 404 and returns false for a name no schedule can have. */
static bool name_ok(struct req *r)
{
	if (r->param && job_queue_name_valid(r->param))
		return true;
	reply_error(r, PROBLEM_SCHEDULE_NOT_FOUND, NULL, "no schedule can be named %.80s", r->param ? r->param : "");
	return false;
}

/* Reads schedule name into out, or replies 404/503 and returns -1. */
static int load(struct req *r, const char *name, struct store_schedule *out)
{
	enum store_rc rc = store_get_schedule(r->app->store, name, out);
	if (rc == STORE_NOT_FOUND)
		reply_error(r, PROBLEM_SCHEDULE_NOT_FOUND, NULL, "no schedule named %s", name);
	else if (rc != STORE_OK)
		handler_reply_unavailable(r);
	return rc == STORE_OK ? 0 : -1;
}

static void reply_schedule(struct req *r, int status, const char *name)
{
	struct store_schedule row;
	if (load(r, name, &row) != 0)
		return;
	cJSON *o = schedule_json(&row);
	store_schedule_clear(&row);
	if (!o) {
		reply_error(r, PROBLEM_INTERNAL, NULL, "cannot render schedule %s", name);
		return;
	}
	if (status == 201)
		reply_header(r, "Location", "/v1/schedules/%s", name);
	reply_json(r, status, o);
}

/* After a SCHEDULE op: the answer for its rc. */
static void schedule_committed(struct req *r)
{
	struct sched_req *sr = r->ctx;
	const struct store_op_schedule *o = &sr->op.schedule;
	if (sr->op.rc == STORE_CONFLICT)
		reply_error(r, PROBLEM_SCHEDULE_EXISTS, "name", "a schedule named %s exists", o->name);
	else if (sr->op.rc == STORE_NOT_FOUND)
		reply_error(r, PROBLEM_SCHEDULE_NOT_FOUND, NULL, "no schedule named %s", o->name);
	else if (sr->op.rc != STORE_OK)
		handler_reply_unavailable(r);
	else if (o->action == STORE_SCHEDULE_DELETE)
		reply_text(r, 204, NULL, NULL, 0);
	else
		reply_schedule(r, o->action == STORE_SCHEDULE_CREATE ? 201 : 200, o->name);
}

/* POST (name NULL) and PUT: validate, store. */
static void write_definition(struct req *r, const char *name)
{
	if (handler_refuse_if_stopping(r))
		return;
	struct problem p;
	struct schedule s;
	cJSON *body = job_parse_body(r->body, r->body_len, &p);
	int rc = body ? schedule_from_json(body, name, &r->app->cfg->defaults, &s, &p) : -1;
	cJSON_Delete(body);
	if (rc != 0) {
		reply_problem(r, &p);
		return;
	}
	struct sched_req *sr = sched_req_new(r, STORE_OP_SCHEDULE);
	char *spec = sr ? schedule_to_stored(&s) : NULL;
	int64_t now = clock_now_ms();
	struct store_op_schedule *o = sr ? &sr->op.schedule : NULL;
	if (o) {
		o->action = name ? STORE_SCHEDULE_REPLACE : STORE_SCHEDULE_CREATE;
		snprintf(o->name, sizeof o->name, "%s", s.name);
		o->next_fire_at = schedule_first(&s, now);
		o->now = now;
	}
	schedule_clear(&s);
	if (!sr)
		return;
	if (!spec) {
		reply_error(r, PROBLEM_INTERNAL, NULL, "out of memory");
		return;
	}
	sr->spec = spec;
	o->spec = spec;
	handler_post(r, &sr->op, schedule_committed);
}

void schedules_create(struct req *r)
{
	write_definition(r, NULL);
}

void schedules_replace(struct req *r)
{
	if (name_ok(r))
		write_definition(r, r->param);
}

void schedules_get(struct req *r)
{
	if (name_ok(r))
		reply_schedule(r, 200, r->param);
}

void schedules_list(struct req *r)
{
	int limit = LIST_DEFAULT;
	const char *after = req_query(r, "cursor"), *v = req_query(r, "limit");
	if (v) {
		char *end;
		long n = strtol(v, &end, 10);
		if (end == v || *end || n < 1 || n > LIST_MAX) {
			reply_error(r, PROBLEM_INVALID_QUERY, "limit", "limit must be an integer from 1 to %d", LIST_MAX);
			return;
		}
		limit = (int)n;
	}
	if (after && !job_queue_name_valid(after)) {
		reply_error(r, PROBLEM_INVALID_QUERY, "cursor", "cursor must be a next_cursor value from a previous page");
		return;
	}
	struct store_schedule *rows = NULL;
	size_t n = 0;
	if (store_list_schedules(r->app->store, after, limit + 1, &rows, &n) != STORE_OK) {
		handler_reply_unavailable(r);
		return;
	}
	bool more = n > (size_t)limit;
	cJSON *o = cJSON_CreateObject();
	cJSON *arr = cJSON_AddArrayToObject(o, "schedules");
	for (size_t i = 0; i < n && i < (size_t)limit; i++) {
		cJSON *item = schedule_json(&rows[i]);
		if (item)
			cJSON_AddItemToArray(arr, item);
	}
	if (more)
		cJSON_AddStringToObject(o, "next_cursor", rows[limit - 1].name);
	else
		cJSON_AddNullToObject(o, "next_cursor");
	for (size_t i = 0; i < n; i++)
		store_schedule_clear(&rows[i]);
	free(rows);
	reply_json(r, 200, o);
}

static void simple_action(struct req *r, enum store_schedule_action action, int64_t next)
{
	struct sched_req *sr = sched_req_new(r, STORE_OP_SCHEDULE);
	if (!sr)
		return;
	sr->op.schedule.action = action;
	snprintf(sr->op.schedule.name, sizeof sr->op.schedule.name, "%s", r->param);
	sr->op.schedule.next_fire_at = next;
	sr->op.schedule.now = clock_now_ms();
	handler_post(r, &sr->op, schedule_committed);
}

void schedules_delete(struct req *r)
{
	if (name_ok(r))
		simple_action(r, STORE_SCHEDULE_DELETE, 0);
}

void schedules_pause(struct req *r)
{
	if (name_ok(r))
		simple_action(r, STORE_SCHEDULE_PAUSE, 0);
}

/* Reads the definition of schedule r->param; -1 after replying. */
static int load_definition(struct req *r, struct schedule *s)
{
	struct store_schedule row;
	char err[300];
	if (load(r, r->param, &row) != 0)
		return -1;
	int rc = schedule_from_stored(row.name, row.spec, s, err, sizeof err);
	store_schedule_clear(&row);
	if (rc != 0)
		reply_error(r, PROBLEM_INTERNAL, NULL, "%s", err);
	return rc;
}

/* Resumed, a schedule fires next after now: what it missed while paused
 * is not caught up. */
void schedules_resume(struct req *r)
{
	struct schedule s;
	if (!name_ok(r) || load_definition(r, &s) != 0)
		return;
	int64_t next = schedule_first(&s, clock_now_ms());
	schedule_clear(&s);
	simple_action(r, STORE_SCHEDULE_RESUME, next);
}

static void run_committed(struct req *r)
{
	struct sched_req *sr = r->ctx;
	if (sr->op.rc == STORE_NOT_FOUND) {
		reply_error(r, PROBLEM_SCHEDULE_NOT_FOUND, NULL, "no schedule named %s", sr->op.fire.name);
		return;
	}
	if (sr->op.rc != STORE_OK) {
		handler_reply_unavailable(r);
		return;
	}
	if (sr->op.fire.fired == 0) {
		reply_error(r, PROBLEM_SCHEDULE_EXISTS, NULL, "schedule %s already fired at this instant",
		            sr->op.fire.name);
		return;
	}
	reply_header(r, "Location", "/v1/jobs/%s", sr->job->id);
	cJSON *o = job_to_json(sr->job);
	reply_json(r, 201, o);
}

/* Run now: one job, fire time now; next_fire_at stays. */
void schedules_run(struct req *r)
{
	struct schedule s;
	if (handler_refuse_if_stopping(r) || !name_ok(r) || load_definition(r, &s) != 0)
		return;
	struct problem p;
	struct job *job = NULL;
	int64_t now = clock_now_ms();
	int rc = schedule_make_job(&s, &r->app->cfg->defaults, now, now, &job, &p);
	schedule_clear(&s);
	if (rc != 0) {
		reply_problem(r, &p);
		return;
	}
	struct sched_req *sr = sched_req_new(r, STORE_OP_FIRE);
	if (!sr) {
		job_free(job);
		return;
	}
	sr->job = job;
	sr->jobs[0] = job;
	snprintf(sr->op.fire.name, sizeof sr->op.fire.name, "%s", r->param);
	sr->op.fire.jobs = sr->jobs;
	sr->op.fire.njobs = 1;
	handler_post(r, &sr->op, run_committed);
}
