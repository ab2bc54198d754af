/* The PostgreSQL backend's schedules: the STORE_OP_SCHEDULE and
 * STORE_OP_FIRE writes (inside the group, under its write lock like every
 * write) and the schedule reads. A fire is a compare and set of the
 * schedule's next_fire_at and an insert per job in the op's savepoint; the
 * unique (schedule_name, schedule_fire_at) index makes a second job for
 * one fire impossible, whichever node tries. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/log.h"
#include "store/pg.h"

static const char *const action_sql[] = {
	[STORE_SCHEDULE_CREATE] = "INSERT INTO schedules (name, spec, next_fire_at, created_at, updated_at)"
	                          " VALUES ($1, $2, $3, $4, $4) ON CONFLICT DO NOTHING",
	[STORE_SCHEDULE_REPLACE] = "UPDATE schedules SET spec = $2,"
	                           " next_fire_at = CASE WHEN paused THEN NULL ELSE $3::bigint END, updated_at = $4"
	                           " WHERE name = $1",
	[STORE_SCHEDULE_DELETE] = "DELETE FROM schedules WHERE name = $1 AND $2::text IS NULL"
	                          " AND $3::bigint IS NULL AND $4::bigint IS NOT NULL",
	[STORE_SCHEDULE_PAUSE] = "UPDATE schedules SET paused = true, next_fire_at = NULL, updated_at = $4"
	                         " WHERE name = $1 AND $2::text IS NULL AND $3::bigint IS NULL",
	[STORE_SCHEDULE_RESUME] = "UPDATE schedules SET next_fire_at = CASE WHEN paused THEN $3::bigint"
	                          " ELSE next_fire_at END, paused = false, updated_at = $4"
	                          " WHERE name = $1 AND $2::text IS NULL",
};

int pg_apply_schedule(void *be, struct store_op *op, struct store_effects *fx)
{
	struct pg_store *st = be;
	const struct store_op_schedule *o = &op->schedule;
	(void)fx;
	struct pg_args a = {0};
	pg_arg_text(&a, o->name);
	pg_arg_text(&a, o->action == STORE_SCHEDULE_CREATE || o->action == STORE_SCHEDULE_REPLACE ? o->spec : NULL);
	pg_arg_i64_or_null(&a, o->action == STORE_SCHEDULE_DELETE || o->action == STORE_SCHEDULE_PAUSE
	                       ? 0 : o->next_fire_at);
	pg_arg_i64(&a, o->now);
	PGresult *r = NULL;
	int rc = pg_query(st, action_sql[o->action], a.n, a.v, &r);
	if (rc != 0)
		return rc;
	int64_t changed = pg_changes(r);
	PQclear(r);
	if (store_fault_hit())
		return PG_ERR_NOMEM;
	if (changed == 0)
		op->rc = o->action == STORE_SCHEDULE_CREATE ? STORE_CONFLICT : STORE_NOT_FOUND;
	return 0;
}

/* The fire's compare and set: only while $2 is still the due time. */
static const char cas_sql[] =
	"UPDATE schedules SET next_fire_at = $3, last_fire_at = coalesce($4, last_fire_at)"
	" WHERE name = $1 AND next_fire_at = $2 AND NOT paused";
static const char run_sql[] =
	"UPDATE schedules SET last_fire_at = greatest(coalesce(last_fire_at, 0), $2) WHERE name = $1";

/* A fire that has a job already inserts nothing and returns no row. */
static const char fired_insert_sql[] =
	"INSERT INTO jobs (id, type, queue, priority, state, payload, attempts, created_at,"
	" max_attempts, backoff_s, max_backoff_s, timeout_s, retention_s, run_at,"
	" callback_url, schedule_name, schedule_fire_at)"
	" VALUES ($1, $2, $3, $4, $5, $6, 0, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16)"
	" ON CONFLICT DO NOTHING"
	" RETURNING seq, (SELECT paused FROM queues WHERE name = $3)";

static int insert_fired(struct pg_store *st, struct job *job, bool *runnable)
{
	struct pg_args a = {0};
	pg_arg_text(&a, job->id);
	pg_arg_text(&a, job->type);
	pg_arg_text(&a, job->queue);
	pg_arg_i64(&a, job->priority);
	pg_arg_i64(&a, job->state == JOB_SCHEDULED ? JOB_SCHEDULED : JOB_QUEUED);
	pg_arg_text(&a, job->payload);
	pg_arg_i64(&a, job->created_at);
	pg_arg_i64(&a, job->max_attempts);
	pg_arg_f64(&a, job->backoff_s);
	pg_arg_f64(&a, job->max_backoff_s);
	pg_arg_f64(&a, job->timeout_s);
	pg_arg_f64(&a, job->retention_s);
	pg_arg_i64(&a, job->run_at ? job->run_at : job->created_at);
	pg_arg_text(&a, job->callback.url);
	pg_arg_text(&a, job->schedule_name);
	pg_arg_i64(&a, job->schedule_fire_at);
	PGresult *r = NULL;
	job->seq = 0;
	if (job->state == JOB_SCHEDULED)
		pg_note_scheduled(job->run_at ? job->run_at : job->created_at);
	int rc = pg_query(st, fired_insert_sql, a.n, a.v, &r);
	if (rc != 0)
		return rc;
	if (PQntuples(r) == 1) {
		job->seq = pg_i64(r, 0, 0);
		if (job->state == JOB_SCHEDULED || pg_i64(r, 0, 1) == 0)
			*runnable = true;
	}
	PQclear(r);
	return 0;
}

int pg_apply_fire(void *be, struct store_op *op, struct store_effects *fx)
{
	struct pg_store *st = be;
	struct store_op_fire *f = &op->fire;
	int64_t last = 0;
	for (int i = 0; i < f->njobs; i++)
		if (f->jobs[i]->schedule_fire_at > last)
			last = f->jobs[i]->schedule_fire_at;
	struct pg_args a = {0};
	pg_arg_text(&a, f->name);
	if (f->due) {
		pg_arg_i64(&a, f->due);
		pg_arg_i64_or_null(&a, f->next);
		pg_arg_i64_or_null(&a, last);
	} else {
		pg_arg_i64(&a, last);
	}
	PGresult *r = NULL;
	int rc = pg_query(st, f->due ? cas_sql : run_sql, a.n, a.v, &r);
	if (rc != 0)
		return rc;
	int64_t changed = pg_changes(r);
	PQclear(r);
	if (store_fault_hit())
		return PG_ERR_NOMEM;
	if (changed == 0) {
		op->rc = f->due ? STORE_CONFLICT : STORE_NOT_FOUND;
		return 0;
	}
	f->fired = 0;
	for (int i = 0; i < f->njobs; i++) {
		if ((rc = insert_fired(st, f->jobs[i], &fx->runnable)) != 0)
			return rc;
		if (store_fault_hit())
			return PG_ERR_NOMEM;
		if (f->jobs[i]->seq != 0)
			f->fired++;
	}
	return 0;
}

/* ---- reads ---------------------------------------------------------------- */

#define SCHEDULE_COLUMNS "name, spec, next_fire_at, last_fire_at, paused, created_at, updated_at"

/* Runs a schedule read on a reader: its rows into out (at most max). */
static enum store_rc read_schedules(struct pg_store *st, const char *sql, int n, const char *const *params,
                                    struct store_schedule *out, int max, size_t *got)
{
	*got = 0;
	PGresult *r = pg_reader_query(st, sql, n, params);
	if (!r)
		return STORE_UNAVAILABLE;
	int rows = PQntuples(r);
	enum store_rc rc = STORE_OK;
	for (int i = 0; i < rows && i < max; i++) {
		struct store_schedule *o = &out[i];
		memset(o, 0, sizeof *o);
		pg_copy(r, i, 0, o->name, sizeof o->name);
		o->next_fire_at = pg_i64(r, i, 2);
		o->last_fire_at = pg_i64(r, i, 3);
		o->paused = PQgetvalue(r, i, 4)[0] == 't';
		o->created_at = pg_i64(r, i, 5);
		o->updated_at = pg_i64(r, i, 6);
		(*got)++;
		if (!(o->spec = pg_strdup(r, i, 1))) {
			rc = STORE_UNAVAILABLE;
			break;
		}
	}
	PQclear(r);
	if (rc != STORE_OK) {
		for (size_t i = 0; i < *got; i++)
			store_schedule_clear(&out[i]);
		*got = 0;
	}
	return rc;
}

enum store_rc pg_get_schedule(void *be, const char *name, struct store_schedule *out)
{
	size_t n = 0;
	const char *params[1] = {name};
	enum store_rc rc = read_schedules(be, "SELECT " SCHEDULE_COLUMNS " FROM schedules WHERE name = $1", 1, params,
	                                  out, 1, &n);
	return rc == STORE_OK && n == 0 ? STORE_NOT_FOUND : rc;
}

enum store_rc pg_list_schedules(void *be, const char *after, int max, struct store_schedule **out, size_t *n)
{
	if (!(*out = calloc((size_t)max, sizeof **out)))
		return STORE_UNAVAILABLE;
	struct pg_args a = {0};
	pg_arg_text(&a, after ? after : "");
	pg_arg_i64(&a, max);
	enum store_rc rc = read_schedules(be, "SELECT " SCHEDULE_COLUMNS " FROM schedules WHERE name > $1"
	                                  " ORDER BY name LIMIT $2", a.n, a.v, *out, max, n);
	if (rc != STORE_OK) {
		free(*out);
		*out = NULL;
	}
	return rc;
}

enum store_rc pg_due_schedules(void *be, int64_t now, struct store_schedule *out, int max, int *n)
{
	struct pg_args a = {0};
	pg_arg_i64(&a, now);
	pg_arg_i64(&a, max);
	size_t got = 0;
	enum store_rc rc = read_schedules(be, "SELECT " SCHEDULE_COLUMNS " FROM schedules"
	                                  " WHERE next_fire_at <= $1 ORDER BY next_fire_at LIMIT $2",
	                                  a.n, a.v, out, max, &got);
	*n = (int)got;
	return rc;
}

/* One integer from a reader (0 for NULL). */
static enum store_rc read_int64(struct pg_store *st, const char *sql, int64_t *out)
{
	*out = 0;
	PGresult *r = pg_reader_query(st, sql, 0, NULL);
	if (!r)
		return STORE_UNAVAILABLE;
	if (PQntuples(r) > 0)
		*out = pg_i64(r, 0, 0);
	PQclear(r);
	return STORE_OK;
}

enum store_rc pg_next_schedule(void *be, int64_t *next)
{
	return read_int64(be, "SELECT min(next_fire_at) FROM schedules", next);
}

enum store_rc pg_count_schedules(void *be, int64_t *active, int64_t *paused)
{
	enum store_rc rc = read_int64(be, "SELECT count(*) FROM schedules WHERE NOT paused", active);
	return rc == STORE_OK ? read_int64(be, "SELECT count(*) FROM schedules WHERE paused", paused) : rc;
}
