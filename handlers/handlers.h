/* Every REST handler: one file per resource. Each parses and validates the
 * request, calls core/ and store/, and shapes the JSON reply. */
#ifndef JOBQ_HANDLERS_H
#define JOBQ_HANDLERS_H

#include "server/req.h"
#include "store/store.h"

/* handlers/common.c */

/* 503 storage_unavailable with Retry-After. */
void handler_reply_unavailable(struct req *r);

/* A zeroed op of that kind, owned by the request (its ctx); NULL after
 * replying 500. */
struct store_op *handler_new_op(struct req *r, enum store_op_kind kind);

/* Suspends r and posts op; on_commit runs on the HTTP thread once the op
 * is committed or failed. op->done, when set, must end in req_resume. */
void handler_post(struct req *r, struct store_op *op, req_fn on_commit);

/* handlers/jobs.c */
void jobs_create(struct req *r);
void jobs_get(struct req *r);
void jobs_list(struct req *r);
void jobs_cancel(struct req *r);
void jobs_retry(struct req *r);
void jobs_delete(struct req *r);

/* handlers/batches.c */
void batches_create(struct req *r);
void batches_get(struct req *r);

/* handlers/queues.c */
void queues_list(struct req *r);
void queues_get(struct req *r);
void queues_pause(struct req *r);
void queues_resume(struct req *r);

/* handlers/system.c */
void system_healthz(struct req *r);
void system_readyz(struct req *r);
void system_openapi(struct req *r);

#endif
