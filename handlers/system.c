/* Operational endpoints: liveness, readiness and the API description. */
#include "handlers/handlers.h"
#include "server/app.h"
#include "store/store.h"

/* openapi.yaml, embedded at build time (build/gen/openapi.c). */
extern const char openapi_yaml[];
extern const unsigned long openapi_yaml_len;

void system_healthz(struct req *r)
{
	cJSON *o = cJSON_CreateObject();
	cJSON_AddStringToObject(o, "status", "ok");
	reply_json(r, 200, o);
}

/* A damaged file does not heal by itself: the detail says what to do,
 * and Retry-After asks for patience. */
static void reply_damaged(struct req *r)
{
	reply_header(r, "Retry-After", "60");
	reply_error(r, PROBLEM_STORAGE_UNAVAILABLE, NULL,
	            "the database file is damaged; restore it from a backup (see the log)");
}

static void ready_reply(struct req *r)
{
	struct store_op *op = r->ctx;
	if (store_damaged(r->app->store)) {
		reply_damaged(r);
		return;
	}
	if (op->rc != STORE_OK) {
		handler_reply_unavailable(r);
		return;
	}
	cJSON *o = cJSON_CreateObject();
	cJSON_AddStringToObject(o, "status", "ready");
	reply_json(r, 200, o);
}

/* Ready means a submission would be accepted now: the file is not known
 * to be damaged, and a synced commit of more than a job's pages goes
 * through (STORE_OP_PROBE). A smaller write can fit where a job does not:
 * on a full disk SQLite reuses the WAL space a failed commit left behind. */
void system_readyz(struct req *r)
{
	if (handler_refuse_if_stopping(r))
		return;
	if (store_damaged(r->app->store)) {
		reply_damaged(r);
		return;
	}
	struct store_op *op = handler_new_op(r, STORE_OP_PROBE);
	if (op)
		handler_post(r, op, ready_reply);
}

void system_openapi(struct req *r)
{
	reply_static(r, 200, "application/yaml", openapi_yaml, (size_t)openapi_yaml_len);
}
