/* What the server needs of a route: its method and pattern, the handler,
 * what the first call checks (JSON body, the key's role) and whether the
 * reply carries an ETag. The table itself lives with the handlers
 * (handlers/routes.c); the server only reads it through routes_table. */
#ifndef JOBQ_ROUTE_H
#define JOBQ_ROUTE_H

#include <stdbool.h>
#include <stddef.h>

#include "server/req.h"

/* Who may call a route when API keys are configured. */
enum access {
	ACCESS_PUBLIC,         /* no key: probes, the API description, the dashboard */
	ACCESS_READ,
	ACCESS_SUBMIT,
	ACCESS_ADMIN,
	ACCESS_METRICS,        /* read, or public with --metrics-public */
	ACCESS_WORKER,         /* the lease API: worker or admin */
};

struct route {
	const char *method;
	const char *pattern;   /* "{id}" or "{name}" matches one non-empty segment */
	req_fn fn;
	bool json_body;        /* requires Content-Type: application/json */
	enum access access;
	bool etag;             /* a 200 carries an ETag; If-None-Match may give 304 */
};

/* Every route jobqd serves, in match order, with their number in *n. The
 * table is static: the pointer stays valid for the program's life. */
const struct route *routes_table(size_t *n);

#endif
