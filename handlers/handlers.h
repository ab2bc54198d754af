/* Every REST handler: one file per resource. Each parses and validates the
 * request, calls core/ and store/, and shapes the JSON reply. */
#ifndef JOBQ_HANDLERS_H
#define JOBQ_HANDLERS_H

#include "server/req.h"

/* handlers/jobs.c */
void jobs_create(struct req *r);
void jobs_get(struct req *r);
void jobs_list(struct req *r);
void jobs_cancel(struct req *r);
void jobs_retry(struct req *r);
void jobs_delete(struct req *r);

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
