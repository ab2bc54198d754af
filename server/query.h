/* Which query parameters each route takes. Anything else is refused with
 * 400 invalid_query naming the parameter, so that a misspelt filter
 * (?status=failed) never silently lists every job. Public files and probes
 * ignore their query on purpose (cache-busters, probe configs). */
#ifndef JOBQ_QUERY_H
#define JOBQ_QUERY_H

#include <stddef.h>

#include "core/problem.h"

/* Checks the n query parameter names of a request to the route
 * (method, pattern): 0 when the route takes each of them, once; else -1
 * with p set to invalid_query, field = the first offending name, and a
 * detail that says what the route takes (and the likely intended name).
 * Empty names (a stray `&`) are skipped. A route missing from the table
 * takes no query parameters. */
int query_check_names(const char *method, const char *pattern, const char *const *names, size_t n,
                      struct problem *p);

/* The names the route takes, space-separated ("" for none), or NULL when
 * the route ignores its query. */
const char *query_route_names(const char *method, const char *pattern);

#endif
