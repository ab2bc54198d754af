/* Flag and environment parsing. One table lists every option: its flag,
 * its environment variable, and the function that parses its value. */
#include "server/config.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define JOBQ_VERSION "0.1.0"

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

struct option_def {
	const char *flag;
	const char *env;
	const char *arg;
	const char *help;
	int (*parse)(struct config *cfg, const char *value);
};

static const struct option_def options[] = {
	{"--listen", "JOBQ_LISTEN", "HOST:PORT", "address to listen on (default 127.0.0.1:8080; [::1]:PORT for IPv6; port 0 picks one)", opt_listen},
	{"--db", "JOBQ_DB", "PATH", "SQLite database file (default ./jobq.db)", opt_db},
	{"--workers", "JOBQ_WORKERS", "N", "worker threads, 1-1024 (default: number of cores)", opt_workers},
	{"--sync", "JOBQ_SYNC", "full|normal", "full: a 201 survives power loss; normal: survives a crash (default full)", opt_sync},
	{"--max-body", "JOBQ_MAX_BODY", "BYTES", "largest request body accepted (default 1048576)", opt_max_body},
	{"--log-level", "JOBQ_LOG_LEVEL", "LEVEL", "error, warn, info or debug (default info)", opt_log_level},
};

#define NOPTIONS (sizeof options / sizeof options[0])

static void usage(void)
{
	printf("usage: jobqd [options]\n\n"
	       "A durable job queue that speaks HTTP/JSON.\n\noptions:\n");
	for (size_t i = 0; i < NOPTIONS; i++) {
		char left[64];
		snprintf(left, sizeof left, "%s %s", options[i].flag, options[i].arg);
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
	long cores = sysconf(_SC_NPROCESSORS_ONLN);
	cfg->workers = cores > 0 ? (int)cores : 1;
	cfg->sync_full = true;
	cfg->max_body = 1 << 20;
	cfg->log_level = LOG_INFO;
}

enum config_rc config_load(struct config *cfg, int argc, char **argv, char *err, size_t errlen)
{
	defaults(cfg);
	const char *given[NOPTIONS] = {0};
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
		if (arg[n] == '=') {
			given[i] = arg + n + 1;
		} else if (a + 1 < argc) {
			given[i] = argv[++a];
		} else {
			snprintf(err, errlen, "option %s needs a value: %s", options[i].flag, options[i].arg);
			return CONFIG_ERROR;
		}
	}
	/* Flags win: a variable is read only for options no flag set. */
	for (size_t i = 0; i < NOPTIONS; i++) {
		const char *v = given[i] ? given[i] : getenv(options[i].env);
		if (v && options[i].parse(cfg, v) != 0) {
			if (given[i])
				snprintf(err, errlen, "invalid %s %.100s: expected %s", options[i].flag, v, options[i].arg);
			else
				snprintf(err, errlen, "invalid %s=%.100s: expected %s", options[i].env, v, options[i].arg);
			return CONFIG_ERROR;
		}
	}
	return CONFIG_OK;
}
