/* The query parameters of each route (see query.h). One table, kept in
 * step with openapi.yaml's parameters; a new route that takes query
 * parameters gets a row here, or each of them is refused. */
#include "server/query.h"

#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "core/job.h"
#include "core/text.h"

struct query_route {
	const char *method;
	const char *pattern;
	const char *names; /* space-separated; NULL: the query is ignored */
};

static const struct query_route query_routes[] = {
	{"GET", "/v1/jobs", "state queue type batch_id ids limit cursor"},
	{"GET", "/v1/jobs/{id}", "wait"},
	{"GET", "/v1/batches/{id}", "wait include limit cursor"},
	{"GET", "/v1/events", "queue type ids batch_id"},
	{"GET", "/v1/queues", "limit cursor"},
	{"GET", "/v1/schedules", "limit cursor"},
	{"GET", "/v1/leases", "queue limit"},
	/* Ignored on purpose: static files get cache-busters (?v=3), and
	 * probes are configured by people who cannot read our errors. */
	{"GET", "/", NULL},
	{"GET", "/app.js", NULL},
	{"GET", "/style.css", NULL},
	{"GET", "/openapi.yaml", NULL},
	{"GET", "/healthz", NULL},
	{"GET", "/readyz", NULL},
};

/* Words other queues use for ours: the hint "did you mean". */
static const struct {
	const char *given, *meant;
} query_aliases[] = {
	{"status", "state"}, {"states", "state"}, {"page_size", "limit"}, {"per_page", "limit"},
	{"size", "limit"},   {"count", "limit"},  {"max", "limit"},       {"after", "cursor"},
	{"page", "cursor"},  {"offset", "cursor"}, {"before", "cursor"},  {"id", "ids"},
	{"job_id", "ids"},   {"job_ids", "ids"},  {"batch", "batch_id"},  {"timeout", "wait"},
	{"wait_s", "wait"},  {"kind", "type"},    {"job_type", "type"},   {"queue_name", "queue"},
	{"queues", "queue"}, {"types", "type"},   {"expand", "include"},
};

#define QUERY_ROUTES (sizeof query_routes / sizeof query_routes[0])
#define QUERY_ALIASES (sizeof query_aliases / sizeof query_aliases[0])

const char *query_route_names(const char *method, const char *pattern)
{
	for (size_t i = 0; i < QUERY_ROUTES; i++)
		if (strcmp(query_routes[i].method, method) == 0 && strcmp(query_routes[i].pattern, pattern) == 0)
			return query_routes[i].names;
	return "";
}

/* Is word one of the space-separated names? With fold, ignoring case. */
static bool names_have(const char *names, const char *word, bool fold)
{
	size_t len = strlen(word);
	for (const char *c = names; *c;) {
		size_t n = strcspn(c, " ");
		if (n == len && (fold ? strncasecmp(c, word, n) : strncmp(c, word, n)) == 0)
			return true;
		c += n;
		c += strspn(c, " ");
	}
	return false;
}

/* The name the client probably meant, among names; NULL when none. */
static const char *meant(const char *names, const char *given, char *buf, size_t size)
{
	for (const char *c = names; *c;) {
		size_t n = strcspn(c, " ");
		if (n == strlen(given) && strncasecmp(c, given, n) == 0 && n < size) {
			memcpy(buf, c, n);
			buf[n] = '\0';
			return buf;
		}
		c += n;
		c += strspn(c, " ");
	}
	for (size_t i = 0; i < QUERY_ALIASES; i++)
		if (strcasecmp(query_aliases[i].given, given) == 0 && names_have(names, query_aliases[i].meant, false))
			return query_aliases[i].meant;
	return NULL;
}

/* "state, queue and type" from "state queue type", into buf. */
static void list_names(const char *names, char *buf, size_t size)
{
	size_t count = 0, at = 0;
	buf[0] = '\0';
	for (const char *c = names; *c; c += strspn(c, " "), count++)
		c += strcspn(c, " ");
	size_t i = 0;
	for (const char *c = names; *c && at < size; i++) {
		size_t n = strcspn(c, " ");
		const char *sep = i == 0 ? "" : i + 1 == count ? " and " : ", ";
		int w = snprintf(buf + at, size - at, "%s%.*s", sep, (int)n, c);
		if (w < 0)
			break;
		at += (size_t)w;
		c += n;
		c += strspn(c, " ");
	}
}

/* The name as the reply shows it: as given when it is up to 60 bytes of
 * UTF-8 text without control characters, else in ASCII with each other byte
 * (and %) as %XX, cut to fit, so that a problem body stays valid UTF-8. */
static const char *shown(const char *name, char *buf, size_t size)
{
	size_t len = strlen(name);
	bool plain = len <= 60 && utf8_valid(name, len); /* longer ones are cut: in ASCII */
	for (size_t i = 0; plain && i < len; i++)
		plain = (unsigned char)name[i] >= 0x20 && name[i] != 0x7f;
	if (plain)
		return name;
	size_t at = 0;
	for (size_t i = 0; i < len && at + 4 <= size; i++) {
		unsigned char c = (unsigned char)name[i];
		if (c < 0x20 || c >= 0x7f || c == '%')
			at += (size_t)snprintf(buf + at, size - at, "%%%02X", c);
		else
			buf[at++] = (char)c;
	}
	buf[at] = '\0';
	return buf;
}

int query_check_names(const char *method, const char *pattern, const char *const *names, size_t n,
                      struct problem *p)
{
	const char *takes = query_route_names(method, pattern);
	if (!takes)
		return 0;
	char list[160], hint[32];
	list_names(takes, list, sizeof list);
	for (size_t i = 0; i < n; i++) {
		char safe[91]; /* whole %XX escapes that fit a problem's field */
		if (!names[i][0])
			continue;
		const char *name = shown(names[i], safe, sizeof safe);
		if (!names_have(takes, names[i], false)) {
			const char *m = meant(takes, names[i], hint, sizeof hint);
			if (!takes[0])
				return problem_set(p, PROBLEM_INVALID_QUERY, name,
				                   "%.60s is not a query parameter: %s %s takes none", name, method, pattern);
			return problem_set(p, PROBLEM_INVALID_QUERY, name, "%.60s is not a query parameter of %s %s%s%s%s; it takes %s",
			                   name, method, pattern, m ? " (did you mean " : "", m ? m : "", m ? "?)" : "", list);
		}
		for (size_t j = 0; j < i; j++)
			if (strcmp(names[j], names[i]) == 0)
				return problem_set(p, PROBLEM_INVALID_QUERY, name, "%.60s is given more than once; give it once",
				                   name);
	}
	return 0;
}
