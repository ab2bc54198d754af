/* Flag and environment parsing. One table lists every option: its flag,
 * its environment variable, and the function that parses its value. */
#include "server/config.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "store/store.h"

#define MAX_BODY_LIMIT ((size_t)64 << 20)

static int parse_int(const char *s, long min, long max, long *out)
{
	char *end;
	/* strtol would also take leading blanks and a plus sign. */
	if (!((*s >= '0' && *s <= '9') || (*s == '-' && s[1] >= '0' && s[1] <= '9')))
		return -1;
	errno = 0;
	long v = strtol(s, &end, 10);
	if (errno || end == s || *end || v < min || v > max)
		return -1;
	*out = v;
	return 0;
}

int config_parse_listen(struct config *cfg, const char *value)
{
	const char *colon = strrchr(value, ':');
	if (!colon || colon == value)
		return -1;
	const char *host = value;
	size_t hlen = (size_t)(colon - value);
	if (host[0] == '[') {
		if (hlen < 3 || host[hlen - 1] != ']')
			return -1;
		host++;
		hlen -= 2;
	} else if (memchr(host, ':', hlen)) {
		return -1; /* a bare IPv6 address needs brackets */
	}
	long port;
	if (hlen >= sizeof cfg->listen_host || parse_int(colon + 1, 0, 65535, &port) != 0)
		return -1;
	memcpy(cfg->listen_host, host, hlen);
	cfg->listen_host[hlen] = '\0';
	cfg->listen_port = (int)port;
	return 0;
}

static int opt_listen(struct config *cfg, const char *v)
{
	return config_parse_listen(cfg, v);
}

static int opt_db(struct config *cfg, const char *v)
{
	if (!*v || strlen(v) >= sizeof cfg->db_path - 8)
		return -1;
	snprintf(cfg->db_path, sizeof cfg->db_path, "%s", v);
	return 0;
}

bool config_db_is_pg(const struct config *cfg)
{
	return strncmp(cfg->db_path, "postgres://", 11) == 0 || strncmp(cfg->db_path, "postgresql://", 13) == 0;
}

/* [a-z_][a-z0-9_]{0,62}: a PostgreSQL identifier that needs no quoting. */
static int opt_db_schema(struct config *cfg, const char *v)
{
	size_t n = strlen(v);
	if (n < 1 || n > 63 || !((v[0] >= 'a' && v[0] <= 'z') || v[0] == '_'))
		return -1;
	if (v[strspn(v, "abcdefghijklmnopqrstuvwxyz0123456789_")] != '\0')
		return -1;
	snprintf(cfg->db_schema, sizeof cfg->db_schema, "%s", v);
	return 0;
}

static int opt_workers(struct config *cfg, const char *v)
{
	long n;
	if (parse_int(v, 1, 1024, &n) != 0)
		return -1;
	cfg->workers = (int)n;
	return 0;
}

static int opt_sync(struct config *cfg, const char *v)
{
	if (strcmp(v, "full") == 0)
		cfg->sync_full = true;
	else if (strcmp(v, "normal") == 0)
		cfg->sync_full = false;
	else
		return -1;
	return 0;
}

static int opt_max_body(struct config *cfg, const char *v)
{
	long n;
	if (parse_int(v, 1, (long)MAX_BODY_LIMIT, &n) != 0)
		return -1;
	cfg->max_body = (size_t)n;
	return 0;
}

static int opt_log_level(struct config *cfg, const char *v)
{
	return log_level_parse(v, &cfg->log_level);
}

/* Seconds: a plain decimal number in [min, max]. */
static int parse_seconds(const char *s, double min, double max, double *out)
{
	char *end;
	/* strtod would also take hex, exponents, inf and nan. */
	if (!*s || s[strspn(s, "0123456789.")] != '\0')
		return -1;
	double v = strtod(s, &end);
	if (end == s || *end || !(v >= min && v <= max))
		return -1;
	*out = v;
	return 0;
}

static int opt_request_timeout(struct config *cfg, const char *v)
{
	return parse_seconds(v, 0.1, 3600, &cfg->request_timeout_s);
}

static int opt_max_connections(struct config *cfg, const char *v)
{
	long n;
	if (parse_int(v, 1, CONFIG_MAX_CONNECTIONS, &n) != 0)
		return -1;
	cfg->max_connections = (int)n;
	return 0;
}

static int opt_max_attempts(struct config *cfg, const char *v)
{
	long n;
	if (parse_int(v, 1, JOB_MAX_ATTEMPTS_LIMIT, &n) != 0)
		return -1;
	cfg->defaults.max_attempts = (int)n;
	return 0;
}

static int opt_backoff(struct config *cfg, const char *v)
{
	return parse_seconds(v, 0.001, JOB_BACKOFF_LIMIT_S, &cfg->defaults.backoff_s);
}

static int opt_max_backoff(struct config *cfg, const char *v)
{
	return parse_seconds(v, 0.001, JOB_MAX_BACKOFF_LIMIT_S, &cfg->defaults.max_backoff_s);
}

static int opt_timeout(struct config *cfg, const char *v)
{
	return parse_seconds(v, 0.001, JOB_TIMEOUT_LIMIT_S, &cfg->defaults.timeout_s);
}

static int opt_retention(struct config *cfg, const char *v)
{
	return parse_seconds(v, 0, JOB_RETENTION_LIMIT_S, &cfg->defaults.retention_s);
}

static int opt_integrity_check(struct config *cfg, const char *v)
{
	return parse_seconds(v, 0, 86400, &cfg->integrity_check_s);
}

static int opt_node_timeout(struct config *cfg, const char *v)
{
	return parse_seconds(v, 2, 3600, &cfg->node_timeout_s);
}

static int opt_shutdown_grace(struct config *cfg, const char *v)
{
	return parse_seconds(v, 0, 3600, &cfg->shutdown_grace_s);
}

/* One NAME=N item of --queue. */
static int add_queue_limit(struct config *cfg, char *item)
{
	char *eq = strchr(item, '=');
	long limit;
	if (!eq)
		return -1;
	*eq = '\0';
	if (!job_queue_name_valid(item) || parse_int(eq + 1, 1, 1024, &limit) != 0)
		return -1;
	int i = 0;
	while (i < cfg->nqueues && strcmp(cfg->queues[i].name, item) != 0)
		i++;
	if (i == CONFIG_MAX_QUEUES)
		return -1;
	if (i == cfg->nqueues)
		cfg->nqueues++;
	snprintf(cfg->queues[i].name, sizeof cfg->queues[i].name, "%s", item);
	cfg->queues[i].limit = (int)limit;
	return 0;
}

/* NAME=N; the environment form is a comma-separated list of these. */
static int for_each_item(struct config *cfg, const char *v, int (*add)(struct config *cfg, char *item));

static int opt_queue(struct config *cfg, const char *v)
{
	return for_each_item(cfg, v, add_queue_limit);
}

/* One NAME=N item of --queue. */

/* Splits a comma-separated value and hands each item to add; the
 * environment form of repeatable options. */
static int for_each_item(struct config *cfg, const char *v, int (*add)(struct config *cfg, char *item))
{
	char *buf = strdup(v);
	if (!buf)
		return -1;
	char *save = NULL;
	int n = 0, rc = 0;
	for (char *item = strtok_r(buf, ",", &save); item && rc == 0; item = strtok_r(NULL, ",", &save), n++)
		rc = add(cfg, item);
	free(buf);
	return rc == 0 && n > 0 ? 0 : -1;
}

/* One NAME or PREFIX* of --external-queue. */
static int add_external_queue(struct config *cfg, char *item)
{
	size_t n = strlen(item);
	bool prefix = n > 0 && item[n - 1] == '*';
	if (prefix)
		item[--n] = '\0';
	if (cfg->nexternal_queues == CONFIG_MAX_LIST || (n > 0 && !job_queue_name_valid(item)) ||
	    (n == 0 && !prefix))
		return -1;
	snprintf(cfg->external_queues[cfg->nexternal_queues++], sizeof cfg->external_queues[0], "%s%s", item,
	         prefix ? "*" : "");
	return 0;
}

static int opt_external_queue(struct config *cfg, const char *v)
{
	return for_each_item(cfg, v, add_external_queue);
}

bool config_queue_external(const struct config *cfg, const char *queue)
{
	for (int i = 0; i < cfg->nexternal_queues; i++) {
		const char *pat = cfg->external_queues[i];
		size_t n = strlen(pat);
		if (pat[n - 1] == '*' ? strncmp(pat, queue, n - 1) == 0 : strcmp(pat, queue) == 0)
			return true;
	}
	return false;
}

/* For job_from_submission: the job defaults carry the predicate. */
static bool defaults_external(const void *arg, const char *queue)
{
	return config_queue_external(arg, queue);
}

static int add_command(struct config *cfg, char *item)
{
	char *eq = strchr(item, '=');
	if (!eq || cfg->ncommands == CONFIG_MAX_LIST)
		return -1;
	*eq = '\0';
	const char *path = eq + 1;
	if (!job_queue_name_valid(item) || !*path || strlen(path) >= sizeof cfg->commands[0].path)
		return -1;
	struct command_spec *c = &cfg->commands[cfg->ncommands++];
	snprintf(c->name, sizeof c->name, "%s", item);
	snprintf(c->path, sizeof c->path, "%s", path);
	return 0;
}

static int opt_command(struct config *cfg, const char *v)
{
	return for_each_item(cfg, v, add_command);
}

static int opt_command_grace(struct config *cfg, const char *v)
{
	return parse_seconds(v, 0, 600, &cfg->command_grace_s);
}

static int opt_http_max_response(struct config *cfg, const char *v)
{
	long n;
	if (parse_int(v, 1, 1L << 30, &n) != 0)
		return -1;
	cfg->http_max_response = (size_t)n;
	return 0;
}

/* A CIDR or host pattern; checked for shape here, for meaning by the
 * http kind when it starts. */
static int add_rule(char (*list)[256], int *n, const char *item)
{
	if (*n == CONFIG_MAX_LIST || !*item || strlen(item) >= 256 || strpbrk(item, " \t/,") == item)
		return -1;
	snprintf(list[(*n)++], 256, "%s", item);
	return 0;
}

static int add_allow(struct config *cfg, char *item)
{
	return add_rule(cfg->http_allow, &cfg->nhttp_allow, item);
}

static int add_deny(struct config *cfg, char *item)
{
	return add_rule(cfg->http_deny, &cfg->nhttp_deny, item);
}

static int opt_http_allow(struct config *cfg, const char *v)
{
	return for_each_item(cfg, v, add_allow);
}

static int opt_http_deny(struct config *cfg, const char *v)
{
	return for_each_item(cfg, v, add_deny);
}

static int opt_callback_secret(struct config *cfg, const char *v)
{
	if (!*v || strlen(v) >= sizeof cfg->callback_secret)
		return -1;
	snprintf(cfg->callback_secret, sizeof cfg->callback_secret, "%s", v);
	return 0;
}

static int opt_sse_heartbeat(struct config *cfg, const char *v)
{
	return parse_seconds(v, 0.05, 3600, &cfg->sse_heartbeat_s);
}

static int opt_log_format(struct config *cfg, const char *v)
{
	return log_format_parse(v, &cfg->log_format);
}

static int opt_api_key_file(struct config *cfg, const char *v)
{
	if (!*v || strlen(v) >= sizeof cfg->api_key_file)
		return -1;
	snprintf(cfg->api_key_file, sizeof cfg->api_key_file, "%s", v);
	return 0;
}

/* A switch: the flag alone sets it; its variable takes 1/0, true/false,
 * yes/no, and nothing else (a typo must not turn a switch off). */
#define SWITCH_VALUES "1, true, yes, 0, false or no"

static int parse_switch(const char *v, bool *out)
{
	if (strcmp(v, "1") == 0 || strcmp(v, "true") == 0 || strcmp(v, "yes") == 0)
		*out = true;
	else if (strcmp(v, "0") == 0 || strcmp(v, "false") == 0 || strcmp(v, "no") == 0)
		*out = false;
	else
		return -1;
	return 0;
}

static int opt_insecure_no_auth(struct config *cfg, const char *v)
{
	return parse_switch(v, &cfg->insecure_no_auth);
}

static int opt_metrics_public(struct config *cfg, const char *v)
{
	return parse_switch(v, &cfg->metrics_public);
}

/* An origin as browsers send it: scheme://host[:port], nothing after. */
static int add_cors_origin(struct config *cfg, char *item)
{
	const char *rest = strncmp(item, "http://", 7) == 0 ? item + 7
	                 : strncmp(item, "https://", 8) == 0 ? item + 8 : NULL;
	if (!rest || !*rest || strpbrk(rest, "/?#@ \t") || strlen(item) >= sizeof cfg->cors_origins[0] ||
	    cfg->ncors_origins == CONFIG_MAX_LIST)
		return -1;
	snprintf(cfg->cors_origins[cfg->ncors_origins++], sizeof cfg->cors_origins[0], "%s", item);
	return 0;
}

static int opt_cors_origin(struct config *cfg, const char *v)
{
	return for_each_item(cfg, v, add_cors_origin);
}

static int add_trust_proxy(struct config *cfg, char *item)
{
	if (cfg->ntrust_proxy == CONFIG_MAX_LIST)
		return -1;
	return netaddr_cidr_parse(item, &cfg->trust_proxy[cfg->ntrust_proxy++]);
}

static int opt_trust_proxy(struct config *cfg, const char *v)
{
	return for_each_item(cfg, v, add_trust_proxy);
}

struct option_def {
	const char *flag;
	const char *env;
	const char *arg;            /* NULL: a switch, the flag takes no value */
	const char *help;
	int (*parse)(struct config *cfg, const char *value);
};

static const struct option_def options[] = {
	{"--listen", "JOBQ_LISTEN", "HOST:PORT", "address to listen on (default 127.0.0.1:8080; [::1]:PORT for IPv6; port 0 picks one)", opt_listen},
	{"--db", "JOBQ_DB", "PATH|URL", "SQLite database file, or a postgres:// (postgresql://) URL to run on PostgreSQL (default ./jobq.db)", opt_db},
	{"--db-schema", "JOBQ_DB_SCHEMA", "NAME", "on PostgreSQL, the schema of jobq's tables, [a-z_][a-z0-9_]* (default jobq)", opt_db_schema},
	{"--workers", "JOBQ_WORKERS", "N", "worker threads, 1-1024 (default: number of cores)", opt_workers},
	{"--sync", "JOBQ_SYNC", "full|normal", "full: a 201 survives power loss; normal: survives a crash (default full)", opt_sync},
	{"--node-timeout", "JOBQ_NODE_TIMEOUT", "SECONDS", "on PostgreSQL, a node whose heartbeat is older than this is dead and its running jobs are rescued, 2-3600 (default 30)", opt_node_timeout},
	{"--integrity-check", "JOBQ_INTEGRITY_CHECK", "SECONDS", "at start, check the database for damage for at most this long, 0-86400; 0 skips it (default 10)", opt_integrity_check},
	{"--max-body", "JOBQ_MAX_BODY", "BYTES", "largest request body accepted, 1-67108864 (default 1048576)", opt_max_body},
	{"--request-timeout", "JOBQ_REQUEST_TIMEOUT", "SECONDS", "a request's line, headers and body must arrive within this, else 408; 0.1-3600 (default 30)", opt_request_timeout},
	{"--max-connections", "JOBQ_MAX_CONNECTIONS", "N", "open connections served; past it a new one gets 503; 1-1000000 (default 10000)", opt_max_connections},
	{"--log-level", "JOBQ_LOG_LEVEL", "LEVEL", "error, warn, info or debug (default info)", opt_log_level},
	{"--max-attempts", "JOBQ_MAX_ATTEMPTS", "N", "attempts a job gets unless it says (1-100, default 3)", opt_max_attempts},
	{"--backoff", "JOBQ_BACKOFF", "SECONDS", "retry backoff base unless the job says, 0.001-86400 (default 1)", opt_backoff},
	{"--max-backoff", "JOBQ_MAX_BACKOFF", "SECONDS", "retry backoff cap unless the job says, 0.001-604800 (default 300)", opt_max_backoff},
	{"--timeout", "JOBQ_TIMEOUT", "SECONDS", "attempt time limit unless the job says, 0.001-604800 (default 3600)", opt_timeout},
	{"--retention", "JOBQ_RETENTION", "SECONDS", "keep finished jobs this long unless the job says, 0-315360000 (default 604800)", opt_retention},
	{"--shutdown-grace", "JOBQ_SHUTDOWN_GRACE", "SECONDS", "on SIGTERM, let running jobs finish this long, 0-3600 (default 30)", opt_shutdown_grace},
	{"--queue", "JOBQ_QUEUE", "NAME=N", "run at most N (1-1024) jobs of queue NAME at once; repeatable (env: a=1,b=2)", opt_queue},
	{"--external-queue", "JOBQ_EXTERNAL_QUEUES", "NAME", "queue NAME (or every queue starting PREFIX, as PREFIX*) is run by external workers over the lease API; repeatable (env: a,b)", opt_external_queue},
	{"--command", "JOBQ_COMMAND", "NAME=PATH", "register executable PATH as job type NAME; repeatable (env: a=/p,b=/q)", opt_command},
	{"--command-grace", "JOBQ_COMMAND_GRACE", "SECONDS", "after SIGTERM, wait this long before SIGKILL, 0-600 (default 5)", opt_command_grace},
	{"--http-max-response", "JOBQ_HTTP_MAX_RESPONSE", "BYTES", "largest response an http job keeps, 1-1073741824 (default 1048576)", opt_http_max_response},
	{"--http-allow", "JOBQ_HTTP_ALLOW", "RULE", "CIDR or host pattern http jobs may reach despite a deny rule; repeatable", opt_http_allow},
	{"--http-deny", "JOBQ_HTTP_DENY", "RULE", "CIDR or host pattern http jobs may not reach (metadata ranges are denied by default); repeatable", opt_http_deny},
	{"--callback-secret", "JOBQ_CALLBACK_SECRET", "SECRET", "sign callbacks with HMAC-SHA256 in X-Jobq-Signature", opt_callback_secret},
	{"--sse-heartbeat", "JOBQ_SSE_HEARTBEAT", "SECONDS", "idle event streams get a keep-alive comment this often, 0.05-3600 (default 15)", opt_sse_heartbeat},
	{"--log-format", "JOBQ_LOG_FORMAT", "logfmt|json", "log lines as logfmt or JSON objects (default logfmt)", opt_log_format},
	{"--api-key-file", "JOBQ_API_KEY_FILE", "PATH", "API keys, one ROLE:KEY per line (roles admin, submit, worker, read); also JOBQ_API_KEYS", opt_api_key_file},
	{"--insecure-no-auth", "JOBQ_INSECURE_NO_AUTH", NULL, "allow listening beyond loopback with no API key", opt_insecure_no_auth},
	{"--metrics-public", "JOBQ_METRICS_PUBLIC", NULL, "serve /metrics without a key", opt_metrics_public},
	{"--cors-origin", "JOBQ_CORS_ORIGIN", "ORIGIN", "let browser pages from ORIGIN (https://host[:port]) call the API; repeatable", opt_cors_origin},
	{"--trust-proxy", "JOBQ_TRUST_PROXY", "CIDR", "take the client address from X-Forwarded-For when the peer is in CIDR; repeatable", opt_trust_proxy},
};

#define NOPTIONS (sizeof options / sizeof options[0])

/* A rejected value as an error shows it: at most 100 bytes, and a --db
 * URL with its password masked. */
static void shown_value(const struct option_def *o, const char *v, char *out, size_t outlen)
{
	char masked[4096];
	if (o->parse == opt_db) {
		store_mask_uri(v, masked, sizeof masked);
		v = masked;
	}
	snprintf(out, outlen, "%.100s", v);
}

static void usage(void)
{
	printf("usage: jobqd [options]\n\n"
	       "A durable job queue that speaks HTTP/JSON.\n\noptions:\n");
	for (size_t i = 0; i < NOPTIONS; i++) {
		char left[64];
		snprintf(left, sizeof left, "%s %s", options[i].flag, options[i].arg ? options[i].arg : "");
		printf("  %-24s %s [env %s]\n", left, options[i].help, options[i].env);
	}
	printf("  %-24s %s\n  %-24s %s\n", "--help", "show this help and exit",
	       "--version", "show the version and exit");
}

static void defaults(struct config *cfg)
{
	memset(cfg, 0, sizeof *cfg);
	snprintf(cfg->listen_host, sizeof cfg->listen_host, "127.0.0.1");
	cfg->listen_port = 8080;
	snprintf(cfg->db_path, sizeof cfg->db_path, "./jobq.db");
	snprintf(cfg->db_schema, sizeof cfg->db_schema, "jobq");
	long cores = sysconf(_SC_NPROCESSORS_ONLN);
	cfg->workers = cores > 0 ? (int)cores : 1;
	cfg->sync_full = true;
	cfg->integrity_check_s = 10;
	cfg->node_timeout_s = 30;
	cfg->max_body = 1 << 20;
	cfg->request_timeout_s = 30;
	cfg->max_connections = 10000;
	cfg->log_level = LOG_INFO;
	cfg->defaults = (struct job_defaults){
		.max_attempts = 3, .backoff_s = 1, .max_backoff_s = 300,
		.timeout_s = 3600, .retention_s = 604800,
	};
	cfg->shutdown_grace_s = 30;
	cfg->command_grace_s = 5;
	cfg->http_max_response = 1 << 20;
	cfg->sse_heartbeat_s = 15;
}

enum config_rc config_load(struct config *cfg, int argc, char **argv, char *err, size_t errlen)
{
	defaults(cfg);
	/* The values given for each option, in order (several for --queue). */
	const char *given[NOPTIONS][CONFIG_MAX_QUEUES];
	int ngiven[NOPTIONS] = {0};
	for (int a = 1; a < argc; a++) {
		const char *arg = argv[a];
		if (strcmp(arg, "--help") == 0 || strcmp(arg, "-h") == 0) {
			usage();
			return CONFIG_EXIT_OK;
		}
		if (strcmp(arg, "--version") == 0) {
			printf("jobqd %s\n", JOBQ_VERSION);
			return CONFIG_EXIT_OK;
		}
		size_t i = 0, n = 0;
		for (; i < NOPTIONS; i++) {
			n = strlen(options[i].flag);
			if (strncmp(arg, options[i].flag, n) == 0 && (arg[n] == '\0' || arg[n] == '='))
				break;
		}
		if (i == NOPTIONS) {
			snprintf(err, errlen, "unknown option %.100s (see --help)", arg);
			return CONFIG_ERROR;
		}
		const char *value = !options[i].arg ? (arg[n] == '=' ? arg + n + 1 : "1")
		                  : arg[n] == '=' ? arg + n + 1 : a + 1 < argc ? argv[++a] : NULL;
		if (value && ngiven[i] < CONFIG_MAX_QUEUES) {
			given[i][ngiven[i]++] = value;
		} else if (value) {
			snprintf(err, errlen, "too many %s options", options[i].flag);
			return CONFIG_ERROR;
		} else {
			snprintf(err, errlen, "option %s needs a value: %s", options[i].flag, options[i].arg);
			return CONFIG_ERROR;
		}
	}
	/* Flags win: a variable is read only for options no flag set. */
	for (size_t i = 0; i < NOPTIONS; i++) {
		const char *env = ngiven[i] ? NULL : getenv(options[i].env);
		if (env && options[i].parse(cfg, env) != 0) {
			char shown[128];
			shown_value(&options[i], env, shown, sizeof shown);
			snprintf(err, errlen, "invalid %s=%s: expected %s: %s", options[i].env, shown,
			         options[i].arg ? options[i].arg : SWITCH_VALUES, options[i].help);
			return CONFIG_ERROR;
		}
		for (int k = 0; k < ngiven[i]; k++) {
			if (options[i].parse(cfg, given[i][k]) != 0) {
				char shown[128];
				shown_value(&options[i], given[i][k], shown, sizeof shown);
				snprintf(err, errlen, "invalid %s %s: expected %s: %s", options[i].flag, shown,
				         options[i].arg ? options[i].arg : SWITCH_VALUES, options[i].help);
				return CONFIG_ERROR;
			}
		}
	}
	if (cfg->defaults.max_backoff_s < cfg->defaults.backoff_s) {
		snprintf(err, errlen, "invalid --max-backoff %g: below --backoff %g",
		         cfg->defaults.max_backoff_s, cfg->defaults.backoff_s);
		return CONFIG_ERROR;
	}
	cfg->defaults.external = defaults_external;
	cfg->defaults.external_arg = cfg;
	if (cfg->api_key_file[0] && auth_load_file(&cfg->api_keys, cfg->api_key_file, err, errlen) != 0)
		return CONFIG_ERROR;
	const char *keys = getenv("JOBQ_API_KEYS");
	if (keys && *keys && auth_load_list(&cfg->api_keys, keys, "JOBQ_API_KEYS", err, errlen) != 0)
		return CONFIG_ERROR;
	return CONFIG_OK;
}

int config_check_exposure(const struct config *cfg, char *err, size_t errlen)
{
	if (cfg->api_keys.n > 0 || cfg->insecure_no_auth || netaddr_is_loopback_host(cfg->listen_host))
		return 0;
	snprintf(err, errlen, "refusing to listen on %.200s with no API key: set --api-key-file or "
	         "JOBQ_API_KEYS, or pass --insecure-no-auth", cfg->listen_host[0] ? cfg->listen_host : "all addresses");
	return -1;
}
