/* Operational endpoints: liveness, readiness, what this jobqd is (version,
 * backend, what a 201 guarantees) and the API description. */
#include <stdlib.h>

#include "core/clock.h"
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

/* What a 201 means under each --sync, in one sentence a client can show.
 * The ack comes after the store's commit at the store's durability, which
 * main derives from --sync, so the setting read here is the one in force. */
static const char *const ack_full =
	"a 201 is sent once the job's commit is fsynced: the job survives a crash "
	"of jobqd or of the machine, and power loss";
static const char *const ack_normal =
	"a 201 is sent once the job's commit is in the write-ahead log, not yet "
	"fsynced: the job survives a crash of jobqd, but the last commits before a crash of "
	"the machine or power loss can be lost";

/* On PostgreSQL the server makes the commit durable: jobqd waits for
 * COMMIT to return, and --sync normal turns synchronous_commit off for
 * its writing session only. */
static const char *const ack_pg_full =
	"a 201 is sent after COMMIT returns: how durable the commit is beyond that is the "
	"PostgreSQL server's synchronous_commit setting (on by default: flushed to its write-ahead log)";
static const char *const ack_pg_normal =
	"a 201 is sent after COMMIT returns, with synchronous_commit off for jobqd's writing session: "
	"the job survives a crash of jobqd, but the last commits before a crash of the PostgreSQL "
	"server or its machine can be lost";

/* The backend is the one --db names (main opened the store from it). */
void system_info(struct req *r)
{
	bool full = r->app->cfg->sync_full;
	bool pg = config_db_is_pg(r->app->cfg);
	cJSON *o = cJSON_CreateObject();
	cJSON_AddStringToObject(o, "version", JOBQ_VERSION);
	cJSON_AddStringToObject(o, "backend", pg ? "pg" : "sqlite");
	cJSON *d = cJSON_AddObjectToObject(o, "durability");
	cJSON_AddStringToObject(d, "sync", full ? "full" : "normal");
	const char *ack = pg ? (full ? ack_pg_full : ack_pg_normal) : (full ? ack_full : ack_normal);
	if (!cJSON_AddStringToObject(d, "ack", ack) ||
	    cJSON_GetArraySize(o) != 3 || cJSON_GetArraySize(d) != 2) {
		cJSON_Delete(o); /* out of memory: a 500, not half an answer */
		o = NULL;
	}
	reply_json(r, 200, o);
}

static void add_rfc3339(cJSON *o, const char *name, int64_t ms)
{
	char t[32];
	clock_rfc3339(ms, t);
	cJSON_AddStringToObject(o, name, t);
}

/* The nodes sharing the store, as the database sees them: on SQLite this
 * process alone. */
void system_cluster(struct req *r)
{
	struct store_cluster *c = malloc(sizeof *c);
	if (!c) {
		reply_json(r, 200, NULL); /* out of memory: a 500 */
		return;
	}
	if (store_cluster(r->app->store, c) != STORE_OK) {
		free(c);
		handler_reply_unavailable(r);
		return;
	}
	cJSON *o = cJSON_CreateObject();
	cJSON_AddStringToObject(o, "node", c->node);
	if (c->leader[0])
		cJSON_AddStringToObject(o, "leader", c->leader);
	else
		cJSON_AddNullToObject(o, "leader");
	cJSON_AddStringToObject(o, "backend", c->backend);
	cJSON *nodes = cJSON_AddArrayToObject(o, "nodes");
	for (int i = 0; i < c->nnodes; i++) {
		const struct store_node *n = &c->nodes[i];
		cJSON *e = cJSON_CreateObject();
		cJSON_AddStringToObject(e, "id", n->id);
		add_rfc3339(e, "started_at", n->started_at);
		add_rfc3339(e, "heartbeat_at", n->heartbeat_at);
		cJSON_AddBoolToObject(e, "alive", n->alive);
		cJSON_AddBoolToObject(e, "leader", n->leader);
		cJSON_AddStringToObject(e, "host", n->host);
		cJSON_AddNumberToObject(e, "pid", (double)n->pid);
		if (n->running >= 0)
			cJSON_AddNumberToObject(e, "running", (double)n->running);
		cJSON_AddItemToArray(nodes, e);
	}
	free(c);
	reply_json(r, 200, o);
}

void system_openapi(struct req *r)
{
	reply_static(r, 200, "application/yaml", openapi_yaml, (size_t)openapi_yaml_len);
}
