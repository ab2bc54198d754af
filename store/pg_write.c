/* The PostgreSQL backend's writes (stubs while they are written): every
 * op the shared writer applies, the claim's parts, leases, retention and
 * recovery, on the writer session (store/pg.h). */
#include "store/pg.h"

#include <stdio.h>

#define STUB(...) { (void)be; return PG_ERR_SQL; }

int pg_apply_submit(void *be, struct store_op *op, struct store_effects *fx) { (void)op; (void)fx; STUB() }
int pg_apply_batch(void *be, struct store_op *op, struct store_effects *fx) { (void)op; (void)fx; STUB() }
int pg_apply_callback(void *be, struct store_op *op, struct store_effects *fx) { (void)op; (void)fx; STUB() }
int pg_apply_finish(void *be, struct store_op *op, struct store_effects *fx) { (void)op; (void)fx; STUB() }
int pg_apply_cancel(void *be, struct store_op *op, struct store_effects *fx) { (void)op; (void)fx; STUB() }
int pg_apply_retry(void *be, struct store_op *op, struct store_effects *fx) { (void)op; (void)fx; STUB() }
int pg_apply_delete(void *be, struct store_op *op, struct store_effects *fx) { (void)op; (void)fx; STUB() }
int pg_apply_pause(void *be, struct store_op *op, struct store_effects *fx) { (void)op; (void)fx; STUB() }
int pg_apply_ping(void *be, struct store_op *op, struct store_effects *fx) { (void)op; (void)fx; STUB() }
int pg_apply_probe(void *be, struct store_op *op, struct store_effects *fx) { (void)op; (void)fx; STUB() }
int pg_apply_heartbeat(void *be, struct store_op *op, struct store_effects *fx) { (void)op; (void)fx; STUB() }
int pg_promote(void *be, int64_t now, struct store_promoted **out, int *n, int *cap)
{ (void)now; (void)out; (void)n; (void)cap; STUB() }
int pg_ready_queues(void *be, const char *after, int (*each)(void *arg, const char *queue), void *arg)
{ (void)after; (void)each; (void)arg; STUB() }
int pg_claim(void *be, const char *queue, int n, int64_t now, struct job **out, int *got)
{ (void)queue; (void)n; (void)now; (void)out; (void)got; STUB() }
int pg_next_due(void *be, int64_t *out) { (void)out; STUB() }
int pg_running(void *be, const char *queue, int64_t *n) { (void)queue; (void)n; STUB() }
int pg_lease_mark(void *be, const struct job *job, const char *lease_id, int64_t expires_at, int64_t lease_ms)
{ (void)job; (void)lease_id; (void)expires_at; (void)lease_ms; STUB() }
int pg_expired(void *be, int64_t now, struct job **out, char (*ids)[STORE_LEASE_ID_LEN + 1], int max, int *n,
               int64_t *next)
{ (void)now; (void)out; (void)ids; (void)max; (void)n; (void)next; STUB() }
int pg_sweep(void *be, int64_t now, int *deleted, int64_t *next) { (void)now; (void)deleted; (void)next; STUB() }
int pg_recover(struct pg_store *st, char *why, size_t whylen)
{
	(void)st;
	snprintf(why, whylen, "not written yet");
	return PG_ERR_SQL;
}
