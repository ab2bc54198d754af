/* The PostgreSQL backend's writes: every op the shared writer applies, the
 * claim's parts, leases, retention and recovery, all on the writer session
 * (store/pg.h), each doing what store/sqlite.c's does, step for step.
 *
 * Every value travels as a parameter; the SQL text is static, so pg_query
 * prepares each statement once per session. Times are jobqd's clock
 * (unix ms), never the server's now(). The job states are spelled as
 * literals (S_QUEUED ...) so that the partial indexes serve the queries.
 *
 * The claim locks its rows with FOR UPDATE SKIP LOCKED in a MATERIALIZED
 * CTE with a LIMIT: the fence keeps the planner from running the LIMIT
 * subquery once per row and updating more rows than asked. RETURNING
 * hands the rows back in no set order; they are sorted here. */
#include "store/pg.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <stdatomic.h>

#include "core/clock.h"
#include "core/deps.h"
#include "core/log.h"

#define PROMOTE_BATCH 1000
#define PROMOTE_RECHECK_MS 1000
#define SWEEP_BATCH 500

/* ---- helpers ------------------------------------------------------------ */

/* Runs sql and reads column 0 of its first row into *v (0 for NULL or no
 * row; *v untouched when v is NULL). */
static int query_i64(struct pg_store *st, const char *sql, const struct pg_args *a, int64_t *v)
{
	PGresult *r = NULL;
	int rc = pg_query(st, sql, a ? a->n : 0, a ? a->v : NULL, &r);
	if (rc != 0)
		return rc;
	if (v)
		*v = PQntuples(r) > 0 ? pg_i64(r, 0, 0) : 0;
	PQclear(r);
	return 0;
}

/* Runs a statement and returns the rows it changed in *changed. */
static int query_changes(struct pg_store *st, const char *sql, const struct pg_args *a, int64_t *changed)
{
	PGresult *r = NULL;
	int rc = pg_query(st, sql, a ? a->n : 0, a ? a->v : NULL, &r);
	if (rc != 0)
		return rc;
	if (changed)
		*changed = pg_changes(r);
	PQclear(r);
	return 0;
}

static bool deps_possible(struct pg_store *st);

static int fault(void)
{
	return store_fault_hit() ? PG_ERR_NOMEM : 0;
}

/* Scheduled jobs as this writer knows them, so that a claim with nothing
 * due skips the promote statement. sched_next is the earliest run_at of a
 * scheduled job (0: none) as the last promote that promoted nothing left
 * it, lowered since by every op that scheduled a job (one rolled back
 * only leaves it too low, which costs one promote). A promote that moved
 * jobs forgets it: its group may yet roll back. The statement still runs
 * at least every PROMOTE_RECHECK_MS, for jobs scheduled by anything but
 * this writer. Writer thread only (each store has its own). */
static _Thread_local bool sched_known;
static _Thread_local int64_t sched_next, sched_checked_ms;

static void note_scheduled(int64_t run_at)
{
	if (sched_known && (sched_next == 0 || run_at < sched_next))
		sched_next = run_at;
}

void pg_note_scheduled(int64_t run_at)
{
	note_scheduled(run_at);
}

/* ---- submit and batch ----------------------------------------------------- */

/* A repeated Idempotency-Key (or id) inserts nothing and returns no row.
 * The row says too whether the job's queue is paused, saving a round trip
 * per submit. */
static const char insert_sql[] =
	"INSERT INTO jobs (id, type, queue, priority, state, payload, attempts, created_at,"
	" max_attempts, backoff_s, max_backoff_s, timeout_s, retention_s, run_at,"
	" idem_key, idem_hash, batch_id, callback_url)"
	" VALUES ($1, $2, $3, $4, $5, $6, 0, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17)"
	" ON CONFLICT DO NOTHING"
	" RETURNING seq, (SELECT paused FROM queues WHERE name = $3)";

static const char idem_find_sql[] = "SELECT id, idem_hash FROM jobs WHERE idem_key = $1";
static const char batch_idem_find_sql[] = "SELECT id, idem_hash FROM batches WHERE idem_key = $1";

/* Inserts job; job->seq is 0 when a key was taken already. *runnable:
 * whether it may be claimed: not while its queue is paused (a scheduled
 * job still is, so that the claim promotes it on time and the dispatcher
 * learns its due time). */
static int insert_job(struct pg_store *st, struct job *job, bool *runnable)
{
	struct pg_args a = {0};
	pg_arg_text(&a, job->id);
	pg_arg_text(&a, job->type);
	pg_arg_text(&a, job->queue);
	pg_arg_i64(&a, job->priority);
	pg_arg_i64(&a, job->state == JOB_SCHEDULED || job->state == JOB_BLOCKED ? job->state : JOB_QUEUED);
	pg_arg_text(&a, job->payload);
	pg_arg_i64(&a, job->created_at);
	pg_arg_i64(&a, job->max_attempts);
	pg_arg_f64(&a, job->backoff_s);
	pg_arg_f64(&a, job->max_backoff_s);
	pg_arg_f64(&a, job->timeout_s);
	pg_arg_f64(&a, job->retention_s);
	pg_arg_i64(&a, job->run_at ? job->run_at : job->created_at);
	pg_arg_text(&a, job->idem_key);
	pg_arg_text(&a, job->idem_key ? job->idem_hash : NULL);
	pg_arg_text(&a, job->batch_id[0] ? job->batch_id : NULL);
	pg_arg_text(&a, job->callback.url);
	PGresult *r = NULL;
	job->seq = 0;
	*runnable = false;
	int rc = pg_query(st, insert_sql, a.n, a.v, &r);
	if (rc != 0)
		return rc;
	if (PQntuples(r) == 1) {
		job->seq = pg_i64(r, 0, 0);
		*runnable = job->state == JOB_SCHEDULED || pg_i64(r, 0, 1) == 0;
	}
	PQclear(r);
	return 0;
}

/* The key was seen before: the same body gets the first job back, another
 * a conflict. PG_ERR_SQL when the key is not there: the insert met
 * another constraint (a duplicate id). */
static int idempotent_replay(struct pg_store *st, struct store_op *op)
{
	struct job *job = op->submit.job;
	struct pg_args a = {0};
	pg_arg_text(&a, job->idem_key);
	PGresult *r = NULL;
	int rc = pg_query(st, idem_find_sql, a.n, a.v, &r);
	if (rc != 0)
		return rc;
	if (PQntuples(r) == 0) {
		rc = PG_ERR_SQL;
		log_error("submit of job %s: its id is taken", job->id);
	} else if (!pg_null(r, 0, 1) && strcmp(PQgetvalue(r, 0, 1), job->idem_hash) == 0) {
		pg_copy(r, 0, 0, job->id, sizeof job->id);
		op->submit.replayed = true;
	} else {
		op->rc = STORE_CONFLICT;
	}
	PQclear(r);
	return rc;
}

int pg_apply_submit(void *be, struct store_op *op, struct store_effects *fx)
{
	struct pg_store *st = be;
	struct job *job = op->submit.job;
	bool runnable = false;
	bool resolved[JOB_DEPS_MAX];
	int cancel = -1;
	int rc = job->deps.n > 0 ? store_deps_prepare(&store_pg_deps, st, job, NULL, resolved, &cancel) : 0;
	if (rc != 0)
		return rc;
	if (job->deps.missing >= 0) {
		op->rc = STORE_NOT_FOUND;  /* nothing written */
		return 0;
	}
	if ((rc = fault()) != 0)
		return rc;
	if (job->deps.n == 0)
		pg_scope_none(st); /* one INSERT: it applies whole or fails the group */
	if (job->state == JOB_SCHEDULED)
		note_scheduled(job->run_at ? job->run_at : job->created_at);
	if ((rc = insert_job(st, job, &runnable)) != 0)
		return rc;
	if (job->seq != 0 && job->deps.n > 0 &&
	    (rc = store_deps_insert(&store_pg_deps, st, job, resolved, cancel, &fx->cascade)) != 0)
		return rc;
	if (job->seq != 0) {
		fx->runnable = runnable && job->state != JOB_BLOCKED && job->state != JOB_CANCELED;
		return 0;
	}
	if (!job->idem_key) {
		log_error("submit of job %s: its id is taken", job->id);
		return PG_ERR_SQL;
	}
	return idempotent_replay(st, op);
}

/* A batch's Idempotency-Key seen before: the same body gets the first
 * batch back, another body a conflict; nothing is inserted either way. */
static int batch_idempotent_replay(struct pg_store *st, struct store_op *op)
{
	struct store_op_batch *b = &op->batch;
	struct pg_args a = {0};
	pg_arg_text(&a, b->idem_key);
	PGresult *r = NULL;
	int rc = pg_query(st, batch_idem_find_sql, a.n, a.v, &r);
	if (rc != 0)
		return rc;
	if (PQntuples(r) > 0) {
		if (!pg_null(r, 0, 1) && b->idem_hash && strcmp(PQgetvalue(r, 0, 1), b->idem_hash) == 0) {
			pg_copy(r, 0, 0, b->id, sizeof b->id);
			b->replayed = true;
		} else {
			op->rc = STORE_CONFLICT;
		}
	}
	PQclear(r);
	return 0;
}

/* The batch and all its jobs in one statement, whatever their number: the
 * jobs' columns travel as arrays, one element per job in order, so they
 * get their seq in that order. A job whose id is taken inserts nothing
 * and returns no row; the op then fails and its scope takes the batch
 * back. */
static const char batch_insert_sql[] =
	"WITH batch AS (INSERT INTO batches (id, created_at, total, callback_url, idem_key, idem_hash)"
	"   VALUES ($1, $2, $3, $4, $5, $6))"
	" INSERT INTO jobs (id, type, queue, priority, state, payload, attempts, created_at,"
	" max_attempts, backoff_s, max_backoff_s, timeout_s, retention_s, run_at, batch_id, callback_url)"
	" SELECT id, type, queue, priority, state, payload, 0, created_at,"
	"   max_attempts, backoff_s, max_backoff_s, timeout_s, retention_s, run_at, $1, callback_url"
	" FROM unnest($7::text[], $8::text[], $9::text[], $10::bigint[], $11::bigint[], $12::text[],"
	"   $13::bigint[], $14::bigint[], $15::float8[], $16::float8[], $17::float8[], $18::float8[],"
	"   $19::bigint[], $20::text[]) WITH ORDINALITY"
	"   AS j (id, type, queue, priority, state, payload, created_at, max_attempts, backoff_s,"
	"   max_backoff_s, timeout_s, retention_s, run_at, callback_url, k)"
	" ORDER BY k"
	" ON CONFLICT DO NOTHING"
	" RETURNING seq, id, (SELECT paused FROM queues WHERE name = queue)";

enum {
	BA_ID, BA_TYPE, BA_QUEUE, BA_PRIORITY, BA_STATE, BA_PAYLOAD, BA_CREATED, BA_MAX_ATTEMPTS,
	BA_BACKOFF, BA_MAX_BACKOFF, BA_TIMEOUT, BA_RETENTION, BA_RUN_AT, BA_CALLBACK, BA_COUNT
};

/* One array parameter being written: "{a,b,...}". */
struct array_param {
	char *text;
	size_t len;
	FILE *f;
};

/* An element of a text[] literal: quoted, with " and \ escaped; NULL
 * unquoted. */
static void array_text(FILE *f, const char *s)
{
	if (!s) {
		fputs("NULL", f);
		return;
	}
	fputc('"', f);
	for (; *s; s++) {
		if (*s == '"' || *s == '\\')
			fputc('\\', f);
		fputc(*s, f);
	}
	fputc('"', f);
}

/* Writes the jobs' columns as array literals into ap[BA_COUNT]; -1 when
 * memory runs out (the caller frees what was made). */
static int batch_arrays(struct store_op_batch *b, struct array_param *ap)
{
	for (int c = 0; c < BA_COUNT; c++)
		if (!(ap[c].f = open_memstream(&ap[c].text, &ap[c].len)))
			return -1;
	for (int i = 0; i < b->njobs; i++) {
		const struct job *job = b->jobs[i];
		for (int c = 0; c < BA_COUNT; c++)
			fputc(i == 0 ? '{' : ',', ap[c].f);
		array_text(ap[BA_ID].f, job->id);
		array_text(ap[BA_TYPE].f, job->type);
		array_text(ap[BA_QUEUE].f, job->queue);
		fprintf(ap[BA_PRIORITY].f, "%d", job->priority);
		fprintf(ap[BA_STATE].f, "%d", job->state == JOB_SCHEDULED || job->state == JOB_BLOCKED ? job->state : JOB_QUEUED);
		array_text(ap[BA_PAYLOAD].f, job->payload);
		fprintf(ap[BA_CREATED].f, "%lld", (long long)job->created_at);
		fprintf(ap[BA_MAX_ATTEMPTS].f, "%d", job->max_attempts);
		fprintf(ap[BA_BACKOFF].f, "%.17g", job->backoff_s);
		fprintf(ap[BA_MAX_BACKOFF].f, "%.17g", job->max_backoff_s);
		fprintf(ap[BA_TIMEOUT].f, "%.17g", job->timeout_s);
		fprintf(ap[BA_RETENTION].f, "%.17g", job->retention_s);
		fprintf(ap[BA_RUN_AT].f, "%lld", (long long)(job->run_at ? job->run_at : job->created_at));
		array_text(ap[BA_CALLBACK].f, job->callback.url);
	}
	int rc = 0;
	for (int c = 0; c < BA_COUNT; c++) {
		fputs(b->njobs == 0 ? "{}" : "}", ap[c].f);
		if (fclose(ap[c].f) != 0)
			rc = -1;
		ap[c].f = NULL;
	}
	return rc;
}

/* The job of the batch a returned row names: the rows come back in the
 * order they went in, but nothing promises it. */
static struct job *batch_job(struct store_op_batch *b, int row, const char *id)
{
	if (row < b->njobs && strcmp(b->jobs[row]->id, id) == 0)
		return b->jobs[row];
	for (int i = 0; i < b->njobs; i++)
		if (strcmp(b->jobs[i]->id, id) == 0)
			return b->jobs[i];
	return NULL;
}

/* Inserts the batch and all its jobs; the op's scope makes it all or
 * nothing. Runnable if any job is: not while its queue is paused (a
 * scheduled one still is, see insert_job). */
int pg_apply_batch(void *be, struct store_op *op, struct store_effects *fx)
{
	struct pg_store *st = be;
	struct store_op_batch *b = &op->batch;
	int rc = b->idem_key ? batch_idempotent_replay(st, op) : 0;
	if (rc != 0 || b->replayed || op->rc != STORE_OK)
		return rc;
	struct deps_plan plan = {.any = false};
	if ((rc = store_deps_batch_prepare(&store_pg_deps, st, b->jobs, b->njobs, &plan)) != 0) {
		store_deps_plan_free(&plan);
		return rc;
	}
	for (int i = 0; plan.any && i < b->njobs; i++) {
		if (b->jobs[i]->deps.missing >= 0) {
			op->rc = STORE_NOT_FOUND;  /* nothing written */
			store_deps_plan_free(&plan);
			return 0;
		}
	}
	for (int i = 0; i < b->njobs; i++) {
		struct job *job = b->jobs[i];
		memcpy(job->batch_id, b->id, sizeof b->id);
		free(job->idem_key); /* keys belong to single submissions */
		job->idem_key = NULL;
		job->seq = 0;
		if (job->state == JOB_SCHEDULED)
			note_scheduled(job->run_at ? job->run_at : job->created_at);
		if ((rc = fault()) != 0) {
			store_deps_plan_free(&plan);
			return rc;
		}
	}
	struct array_param ap[BA_COUNT];
	memset(ap, 0, sizeof ap);
	PGresult *r = NULL;
	if (batch_arrays(b, ap) != 0) {
		rc = PG_ERR_NOMEM;
		goto out;
	}
	struct pg_args a = {0};
	pg_arg_text(&a, b->id);
	pg_arg_i64(&a, clock_now_ms());
	pg_arg_i64(&a, b->njobs);
	pg_arg_text(&a, b->url);
	pg_arg_text(&a, b->idem_key);
	pg_arg_text(&a, b->idem_key ? b->idem_hash : NULL);
	for (int c = 0; c < BA_COUNT; c++)
		pg_arg_text(&a, ap[c].text);
	if ((rc = pg_query(st, batch_insert_sql, a.n, a.v, &r)) != 0)
		goto out;
	bool any = false;
	for (int i = 0; i < PQntuples(r); i++) {
		struct job *job = batch_job(b, i, PQgetvalue(r, i, 1));
		if (job) {
			job->seq = pg_i64(r, i, 0);
			any = any || job->state == JOB_SCHEDULED || (job->state != JOB_BLOCKED && pg_i64(r, i, 2) == 0);
		}
	}
	for (int i = 0; i < b->njobs; i++) {
		if (b->jobs[i]->seq == 0) {
			log_error("batch %s: the id of job %s is taken", b->id, b->jobs[i]->id);
			rc = PG_ERR_SQL;
			goto out;
		}
	}
	fx->runnable = any;
	rc = store_deps_batch_insert(&store_pg_deps, st, b->jobs, b->njobs, &plan, b->id, &fx->cascade);
out:
	store_deps_plan_free(&plan);
	PQclear(r);
	for (int c = 0; c < BA_COUNT; c++) {
		if (ap[c].f)
			fclose(ap[c].f);
		free(ap[c].text);
	}
	return rc;
}

/* ---- callbacks and batches -------------------------------------------- */

/* The batch is done when none of its jobs is waiting or running. */
static const char batch_done_sql[] =
	"UPDATE batches SET finished_at = $2::bigint,"
	" callback_state = CASE WHEN callback_url IS NULL THEN NULL ELSE " S_PENDING " END,"
	" callback_next_at = CASE WHEN callback_url IS NULL THEN NULL ELSE $2::bigint END"
	" WHERE id = $1 AND finished_at IS NULL AND NOT EXISTS (SELECT 1 FROM batch_counts"
	"   WHERE batch_id = $1 AND state IN (" S_WAITING ") AND n > 0)";

/* Not done any more: a pending callback is withdrawn and starts afresh. */
static const char batch_undone_sql[] =
	"UPDATE batches SET finished_at = NULL, callback_state = NULL, callback_next_at = NULL,"
	" callback_attempts = 0 WHERE id = $1";

static const char callback_job_sql[] =
	"UPDATE jobs SET callback_state = $2, callback_attempts = callback_attempts + 1,"
	" callback_next_at = $3, callback_status = $4, callback_error = $5"
	" WHERE id = $1 AND callback_state = " S_PENDING;

static const char callback_batch_sql[] =
	"UPDATE batches SET callback_state = $2, callback_attempts = callback_attempts + 1,"
	" callback_next_at = $3, callback_status = $4, callback_error = $5"
	" WHERE id = $1 AND callback_state = " S_PENDING;

/* After a job of batch_id ended: marks the batch finished when none of its
 * jobs waits or runs any more; *done tells whether it just did. */
static int check_batch_done(struct pg_store *st, const char *batch_id, bool *done)
{
	if (!batch_id[0])
		return 0;
	struct pg_args a = {0};
	pg_arg_text(&a, batch_id);
	pg_arg_i64(&a, clock_now_ms());
	int64_t changed = 0;
	int rc = query_changes(st, batch_done_sql, &a, &changed);
	*done = rc == 0 && changed > 0;
	return rc;
}

int pg_apply_callback(void *be, struct store_op *op, struct store_effects *fx)
{
	(void)fx;
	struct pg_store *st = be;
	struct store_op_callback *c = &op->callback;
	struct pg_args a = {0};
	pg_arg_text(&a, c->id);
	pg_arg_i64(&a, (int64_t)c->delivery);
	pg_arg_i64_or_null(&a, c->delivery == DELIVERY_PENDING ? c->next_at : 0);
	pg_arg_i64_or_null(&a, c->status);
	pg_arg_text(&a, c->error);
	int rc = query_changes(st, c->is_batch ? callback_batch_sql : callback_job_sql, &a, NULL);
	return rc == 0 ? fault() : rc;
}

/* ---- the claim's parts ------------------------------------------------- */

/* Due scheduled jobs become queued (the state is checked again at the
 * update, so a job another session moved meanwhile is left alone); a last
 * row (id NULL) brings the earliest run_at of those still scheduled, which
 * is what next_due() asks at the end of the same claim (claims do not
 * touch scheduled jobs): one round trip fewer per claim. The CTE's changes
 * are not visible to the statement itself, hence the NOT IN. */
static const char promote_sql[] =
	"WITH due AS MATERIALIZED (SELECT seq AS due_seq FROM jobs"
	"   WHERE state = " S_SCHEDULED " AND run_at <= $1 ORDER BY run_at LIMIT " JOBQ_STR(PROMOTE_BATCH) "),"
	" promoted AS (UPDATE jobs SET state = " S_QUEUED " FROM due"
	"   WHERE seq = due.due_seq AND state = " S_SCHEDULED
	"   RETURNING id, queue, type, attempts)"
	" SELECT id, queue, type, attempts, NULL::bigint FROM promoted"
	" UNION ALL SELECT NULL, NULL, NULL, NULL, (SELECT min(run_at) FROM jobs"
	"   WHERE state = " S_SCHEDULED " AND seq NOT IN (SELECT due_seq FROM due))";

/* What the last promote found next due, for next_due() in the same claim
 * (writer thread only: each store has its own). */
static _Thread_local bool next_due_known;
static _Thread_local int64_t next_due_at;

/* Queues after the last one served come first, then the rest from the
 * start: every queue gets its turn however many there are. Names compare
 * as bytes (the column is COLLATE "C"). */
static const char ready_queues_sql[] =
	"SELECT c.queue FROM queue_counts c WHERE c.state = " S_QUEUED " AND c.n > 0"
	" AND NOT EXISTS (SELECT 1 FROM queues q WHERE q.name = c.queue AND q.paused <> 0)"
	" ORDER BY c.queue <= $1, c.queue";

/* jobs_ready (queue, priority DESC, seq) WHERE state = 0 serves the CTE
 * in order; SKIP LOCKED passes over rows another session holds. */
static const char claim_sql[] =
	"WITH picked AS MATERIALIZED (SELECT seq AS picked_seq FROM jobs"
	"   WHERE state = " S_QUEUED " AND queue = $3 ORDER BY priority DESC, seq LIMIT $2"
	"   FOR UPDATE SKIP LOCKED)"
	" UPDATE jobs SET state = " S_RUNNING ", attempts = attempts + 1, started_at = $1, node_id = $4,"
	" cancel_at = NULL"
	" FROM picked WHERE seq = picked.picked_seq"
	" RETURNING " PG_JOB_COLUMNS;

static const char next_due_sql[] = "SELECT min(run_at) FROM jobs WHERE state = " S_SCHEDULED;

int pg_promote(void *be, int64_t now, struct store_promoted **out, int *n, int *cap)
{
	struct pg_store *st = be;
	struct pg_args a = {0};
	pg_arg_i64(&a, now);
	PGresult *r = NULL;
	next_due_known = false;
	if (sched_known && (sched_next == 0 || sched_next > now) &&
	    clock_mono_ms() - sched_checked_ms < PROMOTE_RECHECK_MS) {
		next_due_at = sched_next;
		next_due_known = true;
		return 0;
	}
	sched_known = false;
	int rc = pg_query(st, promote_sql, a.n, a.v, &r);
	if (rc != 0)
		return rc;
	if (PQntuples(r) == 1 && pg_null(r, 0, 0)) {
		sched_known = true;
		sched_next = pg_i64(r, 0, 4);
		sched_checked_ms = clock_mono_ms();
	}
	for (int i = 0; i < PQntuples(r); i++) {
		if (pg_null(r, i, 0)) {
			next_due_at = pg_i64(r, i, 4);
			next_due_known = true;
			continue;
		}
		if (*n == *cap) {
			int grow = *cap ? *cap * 2 : 16;
			struct store_promoted *grown = realloc(*out, (size_t)grow * sizeof *grown);
			if (grown)
				*out = grown;
			if (!grown || store_fault_hit()) {
				rc = PG_ERR_NOMEM;
				break;
			}
			*cap = grow;
		}
		struct store_promoted *p = &(*out)[(*n)++];
		pg_copy(r, i, 0, p->id, sizeof p->id);
		pg_copy(r, i, 1, p->queue, sizeof p->queue);
		pg_copy(r, i, 2, p->type, sizeof p->type);
		p->attempts = (int)pg_i64(r, i, 3);
	}
	PQclear(r);
	if (rc != 0)
		next_due_known = false;
	return rc;
}

int pg_ready_queues(void *be, const char *after, int (*each)(void *arg, const char *queue), void *arg)
{
	struct pg_store *st = be;
	struct pg_args a = {0};
	pg_arg_text(&a, after);
	PGresult *r = NULL;
	int rc = pg_read(st, ready_queues_sql, a.n, a.v, &r); /* an empty claim sends no BEGIN and no COMMIT */
	if (rc != 0)
		return rc;
	rc = pg_each_name(r, each, arg);
	PQclear(r);
	return rc;
}

static int claim_order(const void *a, const void *b)
{
	const struct job *x = *(struct job *const *)a, *y = *(struct job *const *)b;
	if (x->priority != y->priority)
		return x->priority > y->priority ? -1 : 1;
	return (x->seq > y->seq) - (x->seq < y->seq);
}

/* The UPDATE changes every row at once; failing to read one back leaves
 * the rows updated: the op's scope takes them back. */
int pg_claim(void *be, const char *queue, int n, int64_t now, struct job **out, int *got)
{
	struct pg_store *st = be;
	struct pg_args a = {0};
	pg_arg_i64(&a, now);
	pg_arg_i64(&a, n);
	pg_arg_text(&a, queue);
	char me[UUID_LEN + 1];
	pg_node_id(st, me);
	pg_arg_text(&a, me);
	PGresult *r = NULL;
	int rc = pg_query(st, claim_sql, a.n, a.v, &r);
	if (rc != 0)
		return rc;
	int first = *got;
	if (PQntuples(r) > n) {
		/* The fence says this cannot happen; if it did, the extra rows
		 * would be left running with nobody to run them. */
		log_error("claim from queue %s updated %d jobs, asked for %d", queue, PQntuples(r), n);
		PQclear(r);
		return PG_ERR_SQL;
	}
	for (int i = 0; i < PQntuples(r); i++) {
		struct job *job = store_fault_hit() ? NULL : pg_row_to_job(r, i);
		if (!job) {
			rc = PG_ERR_NOMEM;
			break;
		}
		out[(*got)++] = job;
	}
	PQclear(r);
	if (rc != 0)
		return rc;
	/* RETURNING yields rows in no set order. */
	qsort(out + first, (size_t)(*got - first), sizeof *out, claim_order);
	return 0;
}

int pg_next_due(void *be, int64_t *out)
{
	if (next_due_known) {
		next_due_known = false;
		*out = next_due_at;
		return 0;
	}
	return query_i64(be, next_due_sql, NULL, out);
}

/* ---- finish ------------------------------------------------------------ */

/* The attempt's outcome and its record in one statement: the history row
 * is written only when the UPDATE took (the job was running that
 * attempt, under that lease). $7 is finished_at, NULL for a retry, which
 * leaves the callback waiting; the record's own times are $10 (NULL: not
 * known) and $12. */
static const char finish_sql[] =
	"WITH done AS (UPDATE jobs SET state = $2, result = $3, error = $4, progress_percent = $5,"
	"   progress_message = $6, finished_at = $7::bigint, run_at = coalesce($9::bigint, run_at),"
	"   started_at = coalesce($10::bigint, started_at),"
	"   expires_at = " EXPIRES("$7::bigint") ","
	"   callback_state = CASE WHEN callback_url IS NULL OR $7::bigint IS NULL THEN callback_state"
	"     ELSE " S_PENDING " END,"
	"   callback_next_at = CASE WHEN callback_url IS NULL OR $7::bigint IS NULL THEN callback_next_at"
	"     ELSE $7::bigint END,"
	"   lease_id = NULL, lease_expires_at = NULL, node_id = NULL, cancel_at = NULL"
	"   WHERE id = $1 AND state = " S_RUNNING " AND attempts = $8"
	"   AND ($11::text IS NULL OR lease_id = $11::text)"
	"   AND ($11::text IS NOT NULL OR node_id = $14::text) RETURNING seq, expires_at),"
	" history AS (INSERT INTO job_attempts (job_seq, attempt, started_at, finished_at, outcome, error)"
	"   SELECT seq, $8, $10::bigint, $12::bigint, $13, $4 FROM done"
	"   ON CONFLICT (job_seq, attempt) DO UPDATE SET started_at = excluded.started_at,"
	"   finished_at = excluded.finished_at, outcome = excluded.outcome, error = excluded.error)"
	" SELECT expires_at FROM done";

/* Back without spending the attempt: queued, or scheduled at $4. */
static const char requeue_sql[] =
	"UPDATE jobs SET state = coalesce($3::bigint, " S_QUEUED "), run_at = coalesce($4::bigint, run_at),"
	" attempts = attempts - 1, started_at = NULL, lease_id = NULL, lease_expires_at = NULL,"
	" node_id = NULL, cancel_at = NULL"
	" WHERE id = $1 AND state = " S_RUNNING " AND attempts = $2"
	" AND ($5::text IS NULL OR lease_id = $5::text)"
	" AND ($5::text IS NOT NULL OR node_id = $6::text)";

static const char attempt_sql[] =
	"INSERT INTO job_attempts (job_seq, attempt, started_at, finished_at, outcome, error)"
	" VALUES ($1, $2, $3, $4, $5, $6)"
	" ON CONFLICT (job_seq, attempt) DO UPDATE SET started_at = excluded.started_at,"
	" finished_at = excluded.finished_at, outcome = excluded.outcome, error = excluded.error";

/* Records the attempt that just ended. */
static int record_attempt(struct pg_store *st, const struct job *job)
{
	struct pg_args a = {0};
	pg_arg_i64(&a, job->seq);
	pg_arg_i64(&a, job->attempts);
	pg_arg_i64_or_null(&a, job->started_at);
	pg_arg_i64(&a, job->finished_at ? job->finished_at : clock_now_ms());
	pg_arg_text(&a, attempt_outcome_name(job->outcome));
	pg_arg_text(&a, job->error);
	return query_changes(st, attempt_sql, &a, NULL);
}

static int requeue(struct pg_store *st, struct store_op *op, struct store_effects *fx)
{
	struct job *job = op->finish.job;
	const char *lease_id = op->finish.lease.lease_id;
	struct pg_args a = {0};
	pg_arg_text(&a, job->id);
	pg_arg_i64(&a, job->attempts);
	if (job->state == JOB_SCHEDULED) {
		pg_arg_i64(&a, JOB_SCHEDULED);
		pg_arg_i64(&a, job->run_at);
		note_scheduled(job->run_at);
	} else {
		pg_arg_null(&a);
		pg_arg_null(&a);
	}
	pg_arg_text(&a, lease_id);
	char me[UUID_LEN + 1];
	pg_node_id(st, me);
	pg_arg_text(&a, me);
	int64_t changed = 0;
	int rc = fault();
	if (rc != 0)
		return rc;
	pg_scope_none(st); /* one UPDATE */
	if ((rc = query_changes(st, requeue_sql, &a, &changed)) != 0)
		return rc;
	fx->changed = changed == 1;
	if (lease_id && !fx->changed)
		op->rc = STORE_CONFLICT;
	return 0;
}

int pg_apply_finish(void *be, struct store_op *op, struct store_effects *fx)
{
	struct pg_store *st = be;
	struct job *job = op->finish.job;
	const char *lease_id = op->finish.lease.lease_id;
	if (job->state == JOB_QUEUED || op->finish.lease.release)
		return requeue(st, op, fx);
	bool terminal = job_state_terminal(job->state);
	/* Outside a batch (or not ending) the outcome is one statement: it
	 * needs no scope of its own, and its fault step comes first. */
	bool one = !terminal || (!job->batch_id[0] && !deps_possible(st));
	int rc = one ? fault() : 0;
	if (rc != 0)
		return rc;
	if (one)
		pg_scope_none(st);
	struct pg_args a = {0};
	pg_arg_text(&a, job->id);
	pg_arg_i64(&a, (int64_t)job->state);
	pg_arg_text(&a, job->result);
	pg_arg_text(&a, job->error);
	if (job->has_progress) {
		pg_arg_f64(&a, job->progress_percent);
		pg_arg_text(&a, job->progress_message);
	} else {
		pg_arg_null(&a);
		pg_arg_null(&a);
	}
	int64_t ended = job->finished_at ? job->finished_at : clock_now_ms();
	if (terminal)
		pg_arg_i64(&a, ended);
	else
		pg_arg_null(&a);
	pg_arg_i64(&a, job->attempts);
	if (job->state == JOB_SCHEDULED) {
		pg_arg_i64(&a, job->run_at);
		note_scheduled(job->run_at);
	} else {
		pg_arg_null(&a);
	}
	pg_arg_i64_or_null(&a, job->started_at);
	pg_arg_text(&a, lease_id);
	pg_arg_i64(&a, ended);
	pg_arg_text(&a, attempt_outcome_name(job->outcome));
	char me[UUID_LEN + 1];
	pg_node_id(st, me);
	pg_arg_text(&a, me);
	PGresult *r = NULL;
	rc = pg_query(st, finish_sql, a.n, a.v, &r);
	if (rc != 0)
		return rc;
	int64_t expires_at = 0;
	if (PQntuples(r) == 1) {
		fx->changed = true;
		expires_at = pg_i64(r, 0, 0);
	}
	PQclear(r);
	if (!fx->changed && lease_id) {
		op->rc = STORE_CONFLICT; /* not the job's lease any more: nothing changes */
		return 0;
	}
	if (!fx->changed) {
		log_warn("job %s attempt %d was no longer running here (finished, canceled, or rescued after this "
		         "node was taken for dead); its outcome is dropped", job->id, job->attempts);
		return 0;
	}
	fx->expires_at = expires_at;
	fx->finished = terminal;
	memcpy(op->finish.batch_id, job->batch_id, sizeof op->finish.batch_id);
	if (one)
		return 0;
	if ((rc = fault()) != 0)
		return rc;
	if (!terminal)
		return 0;
	if (op->finish.batch_id[0] && (rc = fault()) != 0)
		return rc;
	if ((rc = check_batch_done(st, op->finish.batch_id, &fx->batch_done)) != 0)
		return rc;
	return store_deps_ended(&store_pg_deps, st, job->id, job->state, &fx->cascade);
}

/* ---- cancel, retry, delete ------------------------------------------------ */

static const char state_of_sql[] = "SELECT state, seq, queue, batch_id, type FROM jobs WHERE id = $1";

static const char cancel_sql[] =
	"UPDATE jobs SET state = " S_CANCELED ", error = 'canceled', finished_at = $2::bigint,"
	" expires_at = " EXPIRES("$2::bigint") "," CALLBACK_DUE("$2::bigint")
	" WHERE id = $1 AND state IN (" S_QUEUED ", " S_SCHEDULED ", " S_BLOCKED ") RETURNING expires_at";

static const char cancel_leased_sql[] =
	"UPDATE jobs SET state = " S_CANCELED ", error = 'canceled', finished_at = $2::bigint,"
	" lease_expires_at = NULL, expires_at = " EXPIRES("$2::bigint") "," CALLBACK_DUE("$2::bigint")
	" WHERE id = $1 AND state = " S_RUNNING " AND lease_expires_at IS NOT NULL"
	" RETURNING expires_at, seq, attempts, started_at";

static const char retry_sql[] =
	"UPDATE jobs SET state = " S_QUEUED ", max_attempts = greatest(max_attempts, attempts + 1),"
	" result = NULL, error = NULL, progress_percent = NULL, progress_message = NULL,"
	" finished_at = NULL, expires_at = NULL, run_at = $2,"
	" callback_state = NULL, callback_next_at = NULL, callback_attempts = 0,"
	" callback_status = NULL, callback_error = NULL"
	" WHERE id = $1 AND state IN (" S_FAILED ", " S_CANCELED ") RETURNING " PG_JOB_COLUMNS;

static const char delete_attempts_sql[] = "DELETE FROM job_attempts WHERE job_seq = $1";
static const char delete_job_sql[] = "DELETE FROM jobs WHERE seq = $1 AND state IN (" S_FINISHED ")";

/* Reads the state, seq, queue, batch and type of the op's job;
 * STORE_NOT_FOUND in op->rc when there is no such job. */
static int state_of(struct pg_store *st, struct store_op *op, int64_t *seq)
{
	struct store_op_target *t = store_op_target(op);
	struct pg_args a = {0};
	pg_arg_text(&a, t->id);
	PGresult *r = NULL;
	int rc = pg_query(st, state_of_sql, a.n, a.v, &r);
	if (rc != 0)
		return rc;
	if (PQntuples(r) == 1) {
		int64_t state = pg_i64(r, 0, 0);
		t->found = state >= 0 && state < JOB_STATE_COUNT ? (enum job_state)state : JOB_FAILED;
		*seq = pg_i64(r, 0, 1);
		pg_copy(r, 0, 2, t->queue, sizeof t->queue);
		pg_copy(r, 0, 3, t->batch_id, sizeof t->batch_id);
		pg_copy(r, 0, 4, t->type, sizeof t->type);
	} else {
		op->rc = STORE_NOT_FOUND;
	}
	PQclear(r);
	return 0;
}

/* A running job an external worker leased ends canceled at once, its
 * attempt recorded; the worker learns it at its next heartbeat. A job the
 * pool runs is not touched here (the caller stops its run). */
static int cancel_leased(struct pg_store *st, struct store_op *op, struct store_effects *fx)
{
	struct store_op_target *t = &op->cancel;
	struct job job = {.outcome = ATTEMPT_CANCELED, .error = "canceled"};
	job.finished_at = clock_now_ms();
	struct pg_args a = {0};
	pg_arg_text(&a, t->id);
	pg_arg_i64(&a, job.finished_at);
	PGresult *r = NULL;
	int rc = pg_query(st, cancel_leased_sql, a.n, a.v, &r);
	if (rc != 0)
		return rc;
	if (PQntuples(r) == 1) {
		fx->expires_at = pg_i64(r, 0, 0);
		job.seq = pg_i64(r, 0, 1);
		job.attempts = (int)pg_i64(r, 0, 2);
		job.started_at = pg_i64(r, 0, 3);
		fx->finished = true;
	}
	PQclear(r);
	if (!fx->finished)
		return 0;
	if ((rc = record_attempt(st, &job)) != 0)
		return rc;
	if (t->batch_id[0] && (rc = fault()) != 0)
		return rc;
	if ((rc = check_batch_done(st, t->batch_id, &fx->batch_done)) != 0)
		return rc;
	return store_deps_ended(&store_pg_deps, st, t->id, JOB_CANCELED, &fx->cascade);
}

/* A running job some node's pool runs: that node is told (the group's
 * notice), and finds cancel_at at its next poll should the notice be
 * lost. */
static const char cancel_run_sql[] =
	"UPDATE jobs SET cancel_at = $2 WHERE id = $1 AND state = " S_RUNNING " AND lease_id IS NULL";

int pg_apply_cancel(void *be, struct store_op *op, struct store_effects *fx)
{
	struct pg_store *st = be;
	struct store_op_target *t = &op->cancel;
	int64_t seq = 0;
	int rc = state_of(st, op, &seq);
	if (rc != 0 || op->rc == STORE_NOT_FOUND)
		return rc;
	if (t->found == JOB_RUNNING) {
		if ((rc = cancel_leased(st, op, fx)) != 0 || fx->finished)
			return rc;
		struct pg_args a = {0};
		pg_arg_text(&a, t->id);
		pg_arg_i64(&a, clock_now_ms());
		return query_changes(st, cancel_run_sql, &a, NULL);
	}
	if (t->found != JOB_QUEUED && t->found != JOB_SCHEDULED && t->found != JOB_BLOCKED)
		return 0;
	struct pg_args a = {0};
	pg_arg_text(&a, t->id);
	pg_arg_i64(&a, clock_now_ms());
	if ((rc = query_i64(st, cancel_sql, &a, &fx->expires_at)) != 0)
		return rc;
	fx->finished = true;
	if (t->batch_id[0] && (rc = fault()) != 0)
		return rc;
	if ((rc = check_batch_done(st, t->batch_id, &fx->batch_done)) != 0)
		return rc;
	return store_deps_ended(&store_pg_deps, st, t->id, JOB_CANCELED, &fx->cascade);
}

/* The job as the retry left it goes to op->retry.job (the caller frees
 * it), so the reply does not race a worker that claims it right after. */
int pg_apply_retry(void *be, struct store_op *op, struct store_effects *fx)
{
	struct pg_store *st = be;
	struct store_op_retry *t = &op->retry;
	int64_t seq = 0;
	int rc = state_of(st, op, &seq);
	if (rc != 0 || op->rc == STORE_NOT_FOUND || (t->found != JOB_FAILED && t->found != JOB_CANCELED))
		return rc;
	struct pg_args a = {0};
	pg_arg_text(&a, t->id);
	pg_arg_i64(&a, clock_now_ms());
	PGresult *r = NULL;
	if ((rc = pg_query(st, retry_sql, a.n, a.v, &r)) != 0)
		return rc;
	if (PQntuples(r) == 1) {
		job_free(t->job);
		t->job = store_fault_hit() ? NULL : pg_row_to_job(r, 0);
		if (!t->job)
			rc = PG_ERR_NOMEM;
	}
	PQclear(r);
	if (rc == 0 && t->job)
		rc = store_deps_retried(&store_pg_deps, st, t->job);
	fx->runnable = !t->job || t->job->state != JOB_BLOCKED;
	if (rc != 0 || !t->batch_id[0])
		return rc;
	/* Its batch is not finished any more. */
	if ((rc = fault()) != 0)
		return rc;
	struct pg_args b = {0};
	pg_arg_text(&b, t->batch_id);
	return query_changes(st, batch_undone_sql, &b, NULL);
}

int pg_apply_delete(void *be, struct store_op *op, struct store_effects *fx)
{
	(void)fx;
	struct pg_store *st = be;
	int64_t seq = 0;
	int rc = state_of(st, op, &seq);
	if (rc != 0 || op->rc == STORE_NOT_FOUND || !job_state_terminal(op->del.found))
		return rc;
	struct pg_args a = {0};
	pg_arg_i64(&a, seq);
	if ((rc = query_changes(st, delete_attempts_sql, &a, NULL)) != 0 || (rc = fault()) != 0)
		return rc;
	return query_changes(st, delete_job_sql, &a, NULL);
}

/* ---- pause, ping, probe -------------------------------------------------- */

static const char pause_sql[] =
	"INSERT INTO queues (name, paused) VALUES ($1, $2)"
	" ON CONFLICT (name) DO UPDATE SET paused = excluded.paused";

static const char ping_sql[] =
	"INSERT INTO meta (key, value) VALUES ('ready_check', $1)"
	" ON CONFLICT (key) DO UPDATE SET value = excluded.value";

/* STORE_PROBE_BYTES of random bytes, as hex (32 digits per md5 of 16
 * random bytes): incompressible enough that TOAST writes it whole. */
static const char probe_sql[] =
	"INSERT INTO meta (key, value) VALUES ('ready_probe',"
	" (SELECT string_agg(md5(random()::text), '') FROM generate_series(1, $1::bigint)))"
	" ON CONFLICT (key) DO UPDATE SET value = excluded.value";

int pg_apply_pause(void *be, struct store_op *op, struct store_effects *fx)
{
	(void)fx;
	struct pg_args a = {0};
	pg_arg_text(&a, op->pause.queue);
	pg_arg_i64(&a, op->pause.paused ? 1 : 0);
	int rc = query_changes(be, pause_sql, &a, NULL);
	return rc == 0 ? fault() : rc;
}

int pg_apply_ping(void *be, struct store_op *op, struct store_effects *fx)
{
	(void)op;
	(void)fx;
	struct pg_args a = {0};
	pg_arg_i64(&a, clock_now_ms());
	int rc = query_changes(be, ping_sql, &a, NULL);
	return rc == 0 ? fault() : rc;
}

/* Rewrites a row of STORE_PROBE_BYTES: at COMMIT its pages go to the WAL
 * as a job's would. (Whether to write at all is the writer's call.) */
int pg_apply_probe(void *be, struct store_op *op, struct store_effects *fx)
{
	(void)op;
	(void)fx;
	struct pg_args a = {0};
	pg_arg_i64(&a, STORE_PROBE_BYTES / 16);
	int rc = query_changes(be, probe_sql, &a, NULL);
	return rc == 0 ? fault() : rc;
}

/* ---- leases ------------------------------------------------------------ */

static const char running_sql[] = "SELECT n FROM queue_counts WHERE queue = $1 AND state = " S_RUNNING;

static const char lock_queue_sql[] = "SELECT pg_advisory_xact_lock($1::bigint)";

static const char lease_mark_sql[] =
	"UPDATE jobs SET lease_id = $2, lease_expires_at = $3, lease_ms = $4 WHERE seq = $1";

static const char expired_sql[] =
	"SELECT " PG_JOB_COLUMNS ", lease_id FROM jobs"
	" WHERE state = " S_RUNNING " AND lease_expires_at IS NOT NULL AND lease_expires_at <= $1"
	" ORDER BY lease_expires_at LIMIT $2";

static const char next_lease_sql[] =
	"SELECT min(lease_expires_at) FROM jobs WHERE state = " S_RUNNING " AND lease_expires_at IS NOT NULL";

static const char heartbeat_sql[] =
	"UPDATE jobs SET lease_expires_at = $3::bigint + coalesce($4::bigint, lease_ms),"
	" lease_ms = coalesce($4::bigint, lease_ms),"
	" progress_percent = coalesce($5::double precision, progress_percent),"
	" progress_message = CASE WHEN $5::double precision IS NULL THEN progress_message ELSE $6::text END"
	" WHERE id = $1 AND state = " S_RUNNING " AND lease_id = $2 AND lease_expires_at IS NOT NULL"
	" RETURNING lease_expires_at";

/* The worker has learnt of the cancel: the lease is over. */
static const char heartbeat_canceled_sql[] =
	"UPDATE jobs SET lease_id = NULL WHERE id = $1 AND state = " S_CANCELED " AND lease_id = $2";

static const char exists_sql[] = "SELECT 1 FROM jobs WHERE id = $1";

int pg_running(void *be, const char *queue, int64_t *n)
{
	struct pg_args a = {0};
	pg_arg_text(&a, queue);
	*n = 0;
	return query_i64(be, running_sql, &a, n);
}

/* Held until the group commits: the next node's claim of the queue
 * counts what this one started. */
int pg_lock_queue(void *be, const char *queue)
{
	struct pg_store *st = be;
	char name[160];
	snprintf(name, sizeof name, "%s/%s", st->schema, queue);
	struct pg_args a = {0};
	pg_arg_i64(&a, pg_lock_key("queue", name));
	return query_changes(st, lock_queue_sql, &a, NULL);
}

int pg_lease_mark(void *be, const struct job *job, const char *lease_id, int64_t expires_at, int64_t lease_ms)
{
	struct pg_args a = {0};
	pg_arg_i64(&a, job->seq);
	pg_arg_text(&a, lease_id);
	pg_arg_i64(&a, expires_at);
	pg_arg_i64(&a, lease_ms);
	int rc = query_changes(be, lease_mark_sql, &a, NULL);
	return rc == 0 ? fault() : rc;
}

int pg_expired(void *be, int64_t now, struct job **out, char (*ids)[STORE_LEASE_ID_LEN + 1], int max, int *n,
               int64_t *next)
{
	struct pg_store *st = be;
	*n = 0;
	int rc = pg_writer_up(st);
	if (rc != 0)
		return rc;
	struct pg_args a = {0};
	pg_arg_i64(&a, now);
	pg_arg_i64(&a, max);
	PGresult *r = NULL;
	if ((rc = pg_query(st, expired_sql, a.n, a.v, &r)) != 0)
		return rc;
	for (int i = 0; i < PQntuples(r) && *n < max; i++) {
		struct job *job = pg_row_to_job(r, i);
		if (!job) {
			rc = PG_ERR_NOMEM;
			break;
		}
		pg_copy(r, i, PG_JOB_NCOLUMNS, ids[*n], STORE_LEASE_ID_LEN + 1);
		out[(*n)++] = job;
	}
	PQclear(r);
	if (rc != 0) {
		for (int i = 0; i < *n; i++)
			job_free(out[i]);
		*n = 0;
		return rc;
	}
	*next = 0;
	return *n > 0 ? 0 : query_i64(st, next_lease_sql, NULL, next);
}

/* Whether a job named id exists; *found. */
static int job_exists(struct pg_store *st, const char *id, bool *found)
{
	struct pg_args a = {0};
	pg_arg_text(&a, id);
	int64_t one = 0;
	int rc = query_i64(st, exists_sql, &a, &one);
	*found = one == 1;
	return rc;
}

int pg_apply_heartbeat(void *be, struct store_op *op, struct store_effects *fx)
{
	struct pg_store *st = be;
	struct store_op_heartbeat *h = &op->heartbeat;
	struct pg_args a = {0};
	pg_arg_text(&a, h->id);
	pg_arg_text(&a, h->lease_id);
	pg_arg_i64(&a, clock_now_ms());
	pg_arg_i64_or_null(&a, h->lease_ms > 0 ? h->lease_ms : 0);
	if (h->has_progress) {
		pg_arg_f64(&a, h->percent);
		pg_arg_text(&a, h->message);
	} else {
		pg_arg_null(&a);
		pg_arg_null(&a);
	}
	h->expires_at = 0;
	h->canceled = false;
	int rc = query_i64(st, heartbeat_sql, &a, &h->expires_at);
	if (rc == 0 && h->expires_at)
		rc = fault();
	if (rc != 0 || h->expires_at) {
		fx->lease_expires_at = h->expires_at;
		return rc;
	}
	struct pg_args b = {0};
	pg_arg_text(&b, h->id);
	pg_arg_text(&b, h->lease_id);
	int64_t changed = 0;
	if ((rc = query_changes(st, heartbeat_canceled_sql, &b, &changed)) != 0)
		return rc;
	if (changed == 1) {
		h->canceled = true;
		return 0;
	}
	bool found = false;
	if ((rc = job_exists(st, h->id, &found)) != 0)
		return rc;
	op->rc = found ? STORE_CONFLICT : STORE_NOT_FOUND;
	return 0;
}

/* ---- retention ------------------------------------------------------------ */

/* One statement, so one short transaction of its own: up to SWEEP_BATCH
 * expired jobs and their history go, and the next expiry among the rest
 * comes back with the count (the CTE's deletes are not visible to the
 * statement itself, hence the NOT IN). */
static const char sweep_sql[] =
	"WITH doomed AS MATERIALIZED (SELECT seq AS doomed_seq FROM jobs WHERE expires_at <= $1"
	"   ORDER BY expires_at LIMIT " JOBQ_STR(SWEEP_BATCH) "),"
	" gone AS (DELETE FROM jobs USING doomed WHERE seq = doomed.doomed_seq RETURNING seq),"
	" history AS (DELETE FROM job_attempts USING doomed WHERE job_seq = doomed.doomed_seq)"
	" SELECT (SELECT count(*) FROM gone),"
	" (SELECT min(expires_at) FROM jobs WHERE expires_at IS NOT NULL"
	"   AND seq NOT IN (SELECT doomed_seq FROM doomed))";

/* A transaction of its own, under the write lock (pg_begin): the deletes
 * change the shared count rows. */
int pg_sweep(void *be, int64_t now, int *deleted, int64_t *next)
{
	struct pg_store *st = be;
	int rc = pg_begin(st, false, 0);
	if (rc != 0)
		return rc;
	struct pg_args a = {0};
	pg_arg_i64(&a, now);
	PGresult *r = NULL;
	if ((rc = pg_query(st, sweep_sql, a.n, a.v, &r)) != 0) {
		pg_rollback(st);
		return rc;
	}
	*deleted = PQntuples(r) == 1 ? (int)pg_i64(r, 0, 0) : 0;
	*next = *deleted >= SWEEP_BATCH ? now : (PQntuples(r) == 1 ? pg_i64(r, 0, 1) : 0);
	PQclear(r);
	return pg_commit(st);
}

/* ---- dependencies (store/deps_store.h) -------------------------------- */

static const char deps_state_sql[] = "SELECT state FROM jobs WHERE id = $1";
static const char deps_edge_sql[] =
	"INSERT INTO job_deps (child, parent, resolved) VALUES ($1, $2, $3) ON CONFLICT DO NOTHING";
static const char deps_columns_sql[] =
	"UPDATE jobs SET depends_on = $2, dep_policy = $3, deps_pending = $4 WHERE id = $1";
static const char deps_children_sql[] =
	"SELECT d.child, j.dep_policy FROM job_deps d JOIN jobs j ON j.id = d.child"
	" WHERE d.parent = $1 AND d.resolved = 0 AND j.state = " S_BLOCKED;
static const char deps_resolve_edge_sql[] =
	"UPDATE job_deps SET resolved = 1 WHERE child = $1 AND parent = $2 AND resolved = 0";
/* The last parent: runnable now (run_at from now on), or at a run_at
 * still ahead. */
static const char deps_count_down_sql[] =
	"UPDATE jobs SET deps_pending = deps_pending - 1,"
	" state = CASE WHEN deps_pending > 1 THEN " S_BLOCKED " WHEN run_at > $2::bigint THEN " S_SCHEDULED
	"   ELSE " S_QUEUED " END,"
	" run_at = CASE WHEN deps_pending <= 1 AND run_at < $2::bigint THEN $2::bigint ELSE run_at END"
	" WHERE id = $1 AND state = " S_BLOCKED
	" RETURNING state, queue, type, batch_id, attempts, run_at";
static const char deps_cancel_sql[] =
	"UPDATE jobs SET state = " S_CANCELED ", error = $2, finished_at = $3::bigint,"
	" expires_at = " EXPIRES("$3::bigint") "," CALLBACK_DUE("$3::bigint")
	" WHERE id = $1 AND state = " S_BLOCKED
	" RETURNING queue, type, batch_id, attempts, expires_at";
/* A parent gone (retention) counts as resolved: nothing could end it. */
static const char deps_reblock_edges_sql[] =
	"UPDATE job_deps SET resolved = coalesce((SELECT CASE WHEN state = " S_SUCCEEDED
	"   OR ($2::bigint = 1 AND state IN (" S_FAILED ", " S_CANCELED ")) THEN 1 ELSE 0 END"
	"   FROM jobs WHERE id = job_deps.parent), 1) WHERE child = $1";
static const char deps_reblock_job_sql[] =
	"UPDATE jobs SET deps_pending = (SELECT count(*) FROM job_deps WHERE child = $1 AND resolved = 0),"
	" state = CASE WHEN EXISTS (SELECT 1 FROM job_deps WHERE child = $1 AND resolved = 0)"
	"   THEN " S_BLOCKED " ELSE state END"
	" WHERE id = $1 RETURNING state, deps_pending";
static const char deps_stranded_sql[] =
	"SELECT DISTINCT d.parent, p.state FROM job_deps d"
	" JOIN jobs p ON p.id = d.parent JOIN jobs c ON c.id = d.child"
	" WHERE d.resolved = 0 AND c.state = " S_BLOCKED " AND p.state IN (" S_FINISHED ")"
	" AND (p.state = " S_SUCCEEDED " OR c.dep_policy <> " JOBQ_STR(DEP_WAIT_V) ") LIMIT $1";
static const char deps_any_sql[] = "SELECT EXISTS (SELECT 1 FROM job_deps WHERE resolved = 0)";

/* Whether some edge may wait for a parent: set once one is written here
 * or found, never cleared (per process, for every store it opens). */
static atomic_bool deps_seen;
static _Thread_local bool deps_checked;

/* Whether a job's end may have children to settle. A finish outside a
 * batch is one statement that may carry the group's COMMIT (pg_scope_none)
 * only when nothing can follow it: when no edge waits. With other nodes
 * alive they may write edges at any time, so then it always may; alone,
 * only this node writes them, and the table is looked at once. */
static bool deps_possible(struct pg_store *st)
{
	if (atomic_load(&deps_seen))
		return true;
	if (!pg_alone(st)) {
		atomic_store(&deps_seen, true);
		return true;
	}
	if (!deps_checked) {
		PGresult *r = NULL;
		if (pg_read(st, deps_any_sql, 0, NULL, &r) != 0)
			return true;
		deps_checked = true;
		if (PQntuples(r) == 1 && strcmp(PQgetvalue(r, 0, 0), "t") == 0)
			atomic_store(&deps_seen, true);
		PQclear(r);
	}
	return atomic_load(&deps_seen);
}

static int deps_state(void *be, const char *id, enum job_state *state, bool *found)
{
	struct pg_args a = {0};
	pg_arg_text(&a, id);
	PGresult *r = NULL;
	int rc = pg_query(be, deps_state_sql, a.n, a.v, &r);
	if (rc != 0)
		return rc;
	*found = PQntuples(r) == 1;
	int64_t v = *found ? pg_i64(r, 0, 0) : 0;
	*state = v >= 0 && v < JOB_STATE_COUNT ? (enum job_state)v : JOB_FAILED;
	PQclear(r);
	return 0;
}

static int deps_link(void *be, const struct job *child, const bool *resolved)
{
	struct pg_store *st = be;
	atomic_store(&deps_seen, true);
	int rc = 0;
	for (int i = 0; rc == 0 && i < child->deps.n; i++) {
		struct pg_args a = {0};
		pg_arg_text(&a, child->id);
		pg_arg_text(&a, child->deps.ids[i]);
		pg_arg_i64(&a, resolved[i]);
		rc = query_changes(st, deps_edge_sql, &a, NULL);
	}
	if (rc != 0)
		return rc;
	bool oom = false;
	char *text = deps_ids_text(&child->deps, &oom);
	if (oom)
		return PG_ERR_NOMEM;
	struct pg_args a = {0};
	pg_arg_text(&a, child->id);
	pg_arg_text(&a, text);
	pg_arg_i64(&a, child->deps.policy);
	pg_arg_i64(&a, child->deps.pending);
	rc = query_changes(st, deps_columns_sql, &a, NULL);
	free(text);
	return rc;
}

static int deps_children(void *be, const char *parent, struct deps_child **out, int *n, int *cap)
{
	struct pg_args a = {0};
	pg_arg_text(&a, parent);
	PGresult *r = NULL;
	int rc = pg_query(be, deps_children_sql, a.n, a.v, &r);
	for (int i = 0; rc == 0 && i < PQntuples(r); i++) {
		if (*n == *cap) {
			int grow = *cap ? *cap * 2 : 8;
			struct deps_child *g = realloc(*out, (size_t)grow * sizeof *g);
			if (!g) {
				rc = PG_ERR_NOMEM;
				break;
			}
			*out = g;
			*cap = grow;
		}
		struct deps_child *k = &(*out)[(*n)++];
		pg_copy(r, i, 0, k->id, sizeof k->id);
		int64_t policy = pg_i64(r, i, 1);
		k->policy = policy >= 0 && policy < DEP_POLICY_COUNT ? (enum dep_policy)policy : DEP_CANCEL;
	}
	PQclear(r);
	return rc;
}

/* Resolves the edge child -> parent; *edge when it was unresolved. */
static int resolve_edge(struct pg_store *st, const char *child, const char *parent, bool *edge)
{
	struct pg_args a = {0};
	pg_arg_text(&a, child);
	pg_arg_text(&a, parent);
	int64_t changed = 0;
	int rc = query_changes(st, deps_resolve_edge_sql, &a, &changed);
	*edge = rc == 0 && changed == 1;
	return rc;
}

static int deps_resolve(void *be, const char *child, const char *parent, int64_t now, struct store_cascaded *out,
                        bool *changed)
{
	struct pg_store *st = be;
	bool edge = false;
	*changed = false;
	int rc = resolve_edge(st, child, parent, &edge);
	if (rc != 0 || !edge)
		return rc;
	struct pg_args a = {0};
	pg_arg_text(&a, child);
	pg_arg_i64(&a, now);
	PGresult *r = NULL;
	if ((rc = pg_query(st, deps_count_down_sql, a.n, a.v, &r)) != 0)
		return rc;
	if (PQntuples(r) == 1) {
		*changed = true;
		snprintf(out->id, sizeof out->id, "%s", child);
		int64_t state = pg_i64(r, 0, 0);
		out->state = state >= 0 && state < JOB_STATE_COUNT ? (enum job_state)state : JOB_QUEUED;
		pg_copy(r, 0, 1, out->queue, sizeof out->queue);
		pg_copy(r, 0, 2, out->type, sizeof out->type);
		pg_copy(r, 0, 3, out->batch_id, sizeof out->batch_id);
		out->attempts = (int)pg_i64(r, 0, 4);
		if (out->state == JOB_SCHEDULED)
			note_scheduled(pg_i64(r, 0, 5));
	}
	PQclear(r);
	return 0;
}

static int deps_cancel(void *be, const char *child, const char *parent, const char *error, int64_t now,
                       struct store_cascaded *out, bool *changed, int64_t *expires_at)
{
	struct pg_store *st = be;
	bool edge = false;
	*changed = false;
	int rc = resolve_edge(st, child, parent, &edge);
	if (rc != 0)
		return rc;
	struct pg_args a = {0};
	pg_arg_text(&a, child);
	pg_arg_text(&a, error);
	pg_arg_i64(&a, now);
	PGresult *r = NULL;
	if ((rc = pg_query(st, deps_cancel_sql, a.n, a.v, &r)) != 0)
		return rc;
	if (PQntuples(r) == 1) {
		*changed = true;
		snprintf(out->id, sizeof out->id, "%s", child);
		out->state = JOB_CANCELED;
		pg_copy(r, 0, 0, out->queue, sizeof out->queue);
		pg_copy(r, 0, 1, out->type, sizeof out->type);
		pg_copy(r, 0, 2, out->batch_id, sizeof out->batch_id);
		out->attempts = (int)pg_i64(r, 0, 3);
		*expires_at = pg_i64(r, 0, 4);
	}
	PQclear(r);
	return 0;
}

static int deps_reblock(void *be, struct job *child, int64_t now)
{
	(void)now;
	struct pg_store *st = be;
	struct pg_args a = {0};
	pg_arg_text(&a, child->id);
	pg_arg_i64(&a, child->deps.policy == DEP_RUN);
	int rc = query_changes(st, deps_reblock_edges_sql, &a, NULL);
	if (rc != 0)
		return rc;
	struct pg_args b = {0};
	pg_arg_text(&b, child->id);
	PGresult *r = NULL;
	if ((rc = pg_query(st, deps_reblock_job_sql, b.n, b.v, &r)) != 0)
		return rc;
	if (PQntuples(r) == 1) {
		int64_t state = pg_i64(r, 0, 0);
		child->state = state >= 0 && state < JOB_STATE_COUNT ? (enum job_state)state : JOB_QUEUED;
		child->deps.pending = (int)pg_i64(r, 0, 1);
	}
	PQclear(r);
	return 0;
}

static int deps_batch_done(void *be, const char *batch_id, bool *done)
{
	return check_batch_done(be, batch_id, done);
}

static int deps_stranded(void *be, struct deps_parent *out, int max, int *n)
{
	struct pg_store *st = be;
	*n = 0;
	if (!deps_possible(st))
		return 0;
	struct pg_args a = {0};
	pg_arg_i64(&a, max);
	PGresult *r = NULL;
	int rc = pg_read(st, deps_stranded_sql, a.n, a.v, &r);
	if (rc != 0)
		return rc;
	for (int i = 0; i < PQntuples(r) && *n < max; i++) {
		pg_copy(r, i, 0, out[*n].id, sizeof out[*n].id);
		int64_t state = pg_i64(r, i, 1);
		out[(*n)++].state = state >= 0 && state < JOB_STATE_COUNT ? (enum job_state)state : JOB_FAILED;
	}
	PQclear(r);
	return 0;
}

const struct store_deps_ops store_pg_deps = {
	.nomem = PG_ERR_NOMEM,
	.state = deps_state,
	.link = deps_link,
	.children = deps_children,
	.resolve = deps_resolve,
	.cancel = deps_cancel,
	.reblock = deps_reblock,
	.batch_done = deps_batch_done,
	.stranded = deps_stranded,
};
