/* The PostgreSQL backend's rate limits (store_rate): the queue_rates row
 * of each limited queue, read and written on the writer session inside
 * the group, under the queue's lock (the writer takes it), so one bucket
 * serves every node; and the reads, on a reader session. */
#include "store/pg.h"

#include <stdlib.h>
#include <string.h>

#define RATE_COLUMNS "queue, rate_limit, period_ms, burst, retry_after, tokens, refilled_at, paused_until"

static const char rate_load_sql[] = "SELECT " RATE_COLUMNS " FROM queue_rates WHERE queue = $1";
static const char rate_save_sql[] =
	"INSERT INTO queue_rates (" RATE_COLUMNS ") VALUES ($1, $2, $3, $4, $5, $6, $7, $8)"
	" ON CONFLICT (queue) DO UPDATE SET rate_limit = excluded.rate_limit, period_ms = excluded.period_ms,"
	" burst = excluded.burst, retry_after = excluded.retry_after, tokens = excluded.tokens,"
	" refilled_at = excluded.refilled_at, paused_until = excluded.paused_until";
static const char rate_delete_sql[] = "DELETE FROM queue_rates WHERE queue = $1";
static const char rate_names_sql[] = "SELECT queue FROM queue_rates ORDER BY queue";
static const char rate_list_sql[] = "SELECT " RATE_COLUMNS " FROM queue_rates ORDER BY queue";

static void rate_row(const PGresult *r, int row, struct store_rate *out)
{
	memset(out, 0, sizeof *out);
	pg_copy(r, row, 0, out->queue, sizeof out->queue);
	out->bucket.limit = pg_f64(r, row, 1);
	out->bucket.period_ms = pg_i64(r, row, 2);
	out->bucket.burst = pg_f64(r, row, 3);
	out->retry_after = pg_i64(r, row, 4) != 0;
	out->bucket.tokens = pg_f64(r, row, 5);
	out->bucket.refilled_at = pg_i64(r, row, 6);
	out->bucket.paused_until = pg_i64(r, row, 7);
}

int pg_rate_load(void *be, const char *queue, struct store_rate *out, bool *found)
{
	struct pg_args a = {0};
	pg_arg_text(&a, queue);
	PGresult *r = NULL;
	*found = false;
	int rc = pg_query(be, rate_load_sql, a.n, a.v, &r);
	if (rc != 0)
		return rc;
	if (PQntuples(r) == 1) {
		rate_row(r, 0, out);
		*found = true;
	}
	PQclear(r);
	return 0;
}

int pg_rate_save(void *be, const struct store_rate *rate)
{
	if (store_fault_hit())
		return PG_ERR_NOMEM;
	struct pg_args a = {0};
	pg_arg_text(&a, rate->queue);
	pg_arg_f64(&a, rate->bucket.limit);
	pg_arg_i64(&a, rate->bucket.period_ms);
	pg_arg_f64(&a, rate->bucket.burst);
	pg_arg_i64(&a, rate->retry_after ? 1 : 0);
	pg_arg_f64(&a, rate->bucket.tokens);
	pg_arg_i64(&a, rate->bucket.refilled_at);
	pg_arg_i64(&a, rate->bucket.paused_until);
	return pg_query(be, rate_save_sql, a.n, a.v, NULL);
}

int pg_rate_delete(void *be, const char *queue, bool *found)
{
	struct pg_args a = {0};
	pg_arg_text(&a, queue);
	PGresult *r = NULL;
	int rc = pg_query(be, rate_delete_sql, a.n, a.v, &r);
	if (rc != 0)
		return rc;
	*found = pg_changes(r) > 0;
	PQclear(r);
	return 0;
}

/* A read: it opens no transaction of its own (pg_read). */
int pg_rate_names(void *be, int (*each)(void *arg, const char *queue), void *arg)
{
	PGresult *r = NULL;
	int rc = pg_read(be, rate_names_sql, 0, NULL, &r);
	if (rc != 0)
		return rc;
	rc = pg_each_name(r, each, arg);
	PQclear(r);
	return rc;
}

/* Reads queue's limit (or every one, queue NULL) into a new array. */
static enum store_rc rate_read(struct pg_store *st, const char *queue, struct store_rate **out, size_t *n)
{
	const char *params[] = {queue};
	PGresult *r = queue ? pg_reader_query(st, rate_load_sql, 1, params) : pg_reader_query(st, rate_list_sql, 0, NULL);
	if (!r)
		return STORE_UNAVAILABLE;
	int rows = PQntuples(r);
	struct store_rate *rates = rows > 0 ? calloc((size_t)rows, sizeof *rates) : NULL;
	if (rows > 0 && !rates) {
		PQclear(r);
		return STORE_UNAVAILABLE;
	}
	for (int i = 0; i < rows; i++)
		rate_row(r, i, &rates[i]);
	PQclear(r);
	*out = rates;
	*n = (size_t)rows;
	return STORE_OK;
}

enum store_rc pg_get_rate(void *be, const char *queue, struct store_rate *out, bool *found)
{
	struct store_rate *rates = NULL;
	size_t n = 0;
	enum store_rc rc = rate_read(be, queue, &rates, &n);
	*found = rc == STORE_OK && n > 0;
	if (*found)
		*out = rates[0];
	free(rates);
	return rc;
}

enum store_rc pg_list_rates(void *be, struct store_rate **out, size_t *n)
{
	return rate_read(be, NULL, out, n);
}
