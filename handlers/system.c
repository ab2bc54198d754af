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

static void ready_reply(struct req *r)
{
	struct store_op *op = r->ctx;
	if (op->rc != STORE_OK) {
		handler_reply_unavailable(r);
		return;
	}
	cJSON *o = cJSON_CreateObject();
	cJSON_AddStringToObject(o, "status", "ready");
	reply_json(r, 200, o);
}

/* Ready means a real write commits: the writer is alive and the disk
 * takes data. */
void system_readyz(struct req *r)
{
	if (handler_refuse_if_stopping(r))
		return;
	struct store_op *op = handler_new_op(r, STORE_OP_PING);
	if (op)
		handler_post(r, op, ready_reply);
}

void system_openapi(struct req *r)
{
	reply_static(r, 200, "application/yaml", openapi_yaml, (size_t)openapi_yaml_len);
}
