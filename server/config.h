/* Configuration: built-in defaults, then JOBQ_* environment variables, then
 * command-line flags (flags win). */
#ifndef JOBQ_CONFIG_H
#define JOBQ_CONFIG_H

#include <stdbool.h>
#include <stddef.h>

#include "core/job.h"
#include "core/log.h"
#include "server/auth.h"
#include "core/netaddr.h"

#define JOBQ_VERSION "0.1.0"

#define CONFIG_MAX_QUEUES 64
#define CONFIG_MAX_LIST 64       /* --command, --http-allow, --http-deny */
#define CONFIG_MAX_CONNECTIONS 1000000

struct queue_limit {
	char name[JOB_NAME_MAX + 1];
	int limit;                /* jobs of this queue running at once */
};

struct command_spec {
	char name[JOB_NAME_MAX + 1];
	char path[1024];
};

struct config {
	char listen_host[256];
	int listen_port;          /* 0: pick a free port */
	char db_path[4096];       /* a SQLite file, or a postgres:// URL (may carry a password) */
	char db_schema[64];       /* pg: the schema of jobq's tables */
	int workers;
	bool sync_full;
	double integrity_check_s; /* start-up quick_check budget; 0: none */
	double node_timeout_s;    /* pg: a node silent this long is dead */
	size_t max_body;          /* bytes */
	double request_timeout_s; /* request line, headers and body must all arrive within it */
	int max_connections;      /* past it, a new connection is answered 503 */
	enum log_level log_level;
	struct job_defaults defaults; /* for submissions that leave them out */
	double shutdown_grace_s;
	struct queue_limit queues[CONFIG_MAX_QUEUES];
	int nqueues;
	/* queues served by external workers over the lease API: a name, or a
	 * prefix ending in '*' (py.* matches py.fast) */
	char external_queues[CONFIG_MAX_LIST][JOB_NAME_MAX + 2];
	int nexternal_queues;
	struct command_spec commands[CONFIG_MAX_LIST];
	int ncommands;
	double command_grace_s;
	size_t http_max_response;
	char http_allow[CONFIG_MAX_LIST][256];
	int nhttp_allow;
	char http_deny[CONFIG_MAX_LIST][256];
	int nhttp_deny;
	char callback_secret[256];   /* empty: callbacks are not signed */
	double sse_heartbeat_s;      /* idle event streams get a comment this often */
	enum log_format log_format;

	/* access: --api-key-file and JOBQ_API_KEYS; no keys means auth is off */
	struct auth_keys api_keys;
	char api_key_file[4096];     /* "" when not given */
	bool insecure_no_auth;       /* allow a non-loopback listen without keys */
	bool metrics_public;         /* /metrics needs no key */
	char cors_origins[CONFIG_MAX_LIST][256];
	int ncors_origins;
	struct netaddr_cidr trust_proxy[CONFIG_MAX_LIST];
	int ntrust_proxy;
};

enum config_rc { CONFIG_OK, CONFIG_EXIT_OK, CONFIG_ERROR };

/* Parses env (via getenv) and argv into cfg. On CONFIG_ERROR, err holds a
 * one-line message naming the flag or variable. --help and --version print
 * to stdout and return CONFIG_EXIT_OK. */
enum config_rc config_load(struct config *cfg, int argc, char **argv, char *err, size_t errlen);

/* The safe default: with no API key, jobqd listens only on a loopback
 * address unless --insecure-no-auth. -1 with a one-line err otherwise. */
int config_check_exposure(const struct config *cfg, char *err, size_t errlen);

/* Whether --db names a PostgreSQL database (postgres:// or postgresql://)
 * rather than a SQLite file. */
bool config_db_is_pg(const struct config *cfg);

/* Whether queue is served by external workers (--external-queue). */
bool config_queue_external(const struct config *cfg, const char *queue);

/* Splits "HOST:PORT" or "[V6]:PORT" into cfg's listen fields; -1 if bad. */
int config_parse_listen(struct config *cfg, const char *value);

#endif
