/* Configuration: built-in defaults, then JOBQ_* environment variables, then
 * command-line flags (flags win). */
#ifndef JOBQ_CONFIG_H
#define JOBQ_CONFIG_H

#include <stdbool.h>
#include <stddef.h>

#include "core/log.h"

struct config {
	char listen_host[256];
	int listen_port;          /* 0: pick a free port */
	char db_path[4096];
	int workers;
	bool sync_full;
	size_t max_body;          /* bytes */
	enum log_level log_level;
	bool help, version;
};

enum config_rc { CONFIG_OK, CONFIG_EXIT_OK, CONFIG_ERROR };

/* Parses env (via getenv) and argv into cfg. On CONFIG_ERROR, err holds a
 * one-line message naming the flag or variable. --help and --version print
 * to stdout and return CONFIG_EXIT_OK. */
enum config_rc config_load(struct config *cfg, int argc, char **argv, char *err, size_t errlen);

/* Splits "HOST:PORT" or "[V6]:PORT" into cfg's listen fields; -1 if bad. */
int config_parse_listen(struct config *cfg, const char *value);

#endif
