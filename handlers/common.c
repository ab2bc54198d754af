/* What every handler shares: posting a write to the store and resuming
 * when it commits, and the reply when the store is unavailable. */
#include <stdlib.h>

#include "handlers/handlers.h"
#include "server/app.h"
#include "store/store.h"

void handler_reply_unavailable(struct req *r)
{
	reply_header(r, "Retry-After", "1");
	reply_error(r, PROBLEM_STORAGE_UNAVAILABLE, NULL, "the database could not be read or written; try again");
}

/* Writer thread: the op is committed (or failed); wake the request. */
static void resume_on_commit(struct store_op *op)
{
	req_resume(op->arg);
}

void handler_post(struct req *r, struct store_op *op, req_fn on_commit)
{
	if (!op->done)
		op->done = resume_on_commit;
	op->arg = r;
	req_suspend(r, on_commit);
	store_post(r->app->store, op);
}

struct store_op *handler_new_op(struct req *r, enum store_op_kind kind)
{
	struct store_op *op = calloc(1, sizeof *op);
	if (!op) {
		reply_error(r, PROBLEM_INTERNAL, NULL, "out of memory");
		return NULL;
	}
	op->kind = kind;
	r->ctx = op;
	r->ctx_free = free;
	return op;
}
