/* The http job kind and the engine thread behind it.
 *
 * DESIGN. One thread owns a curl multi handle and every easy handle added
 * to it. Other threads hand it transfers through `pending` (a worker from
 * kind->start, any thread from http_post_async) and wake it with
 * curl_multi_wakeup. A run's stop hook (cancel, shutdown) only sets the
 * transfer's `stop` flag and wakes the engine, which aborts the transfer
 * (curl_multi_remove_handle closes the connection) and ends the attempt
 * with run_finish(RUN_STOPPED); the job's deadline is the engine's own
 * timer, so it needs no hook.
 *
 * SSRF: curl resolves, then calls open_socket for every address it tries
 * on every hop (redirects included); the socket is only created when the
 * host name and the address pass the rules, so a refused address never
 * sees a packet. A host name denied by a pattern is refused before it is
 * even resolved (resolver_start). Proxies are off (CURLOPT_PROXY ""),
 * since through one the callback would only see the proxy.
 *
 * Locking: engine.mu guards pending, stopping and multi's lifetime (the
 * stop hook wakes the engine under it). Lock order: run->mu, then
 * engine.mu; the engine never holds engine.mu while calling into a run.
 * Everything else in a transfer belongs to the thread that holds it: the
 * starter until it is queued, then the engine. */
#include "workers/http.h"

#include <arpa/inet.h>
#include <math.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>

#include <curl/curl.h>

#include "core/clock.h"
#include "core/kind.h"
#include "core/log.h"
#include "core/netaddr.h"
#include "core/run.h"
#include "core/text.h"
#include "workers/egress.h"

#define TIMEOUT_DEFAULT_S 30.0
#define TIMEOUT_MAX_S 3600.0
#define MAX_REDIRS 5L
#define URL_MAX 8192
#define HEADERS_MAX 100          /* payload.headers entries */
#define HEADER_NAME_MAX 256
#define HEADER_VALUE_MAX 8192
#define EXPECT_MAX 100           /* payload.expect_status entries */
#define RETRY_AFTER_MAX_S 86400  /* a longer Retry-After is capped */
#define IDLE_POLL_MS 1000
#define ERROR_MAX 512
#define USER_AGENT "jobqd"

static const char *const methods[] = {"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"};

static const char *const payload_fields[] = {
	"url", "method", "headers", "body", "json", "timeout_s", "expect_status", "follow_redirects",
};

/* ---- the engine ---- */

struct buf {
	char *p;   /* NUL-terminated when not NULL */
	size_t len, cap;
};

struct xfer {
	CURL *easy;
	struct curl_slist *headers;
	char *url;                /* without user info, for messages */
	char errbuf[CURL_ERROR_SIZE];
	char refused[ERROR_MAX];  /* why a host or address was refused; "" when none */
	struct buf body;          /* the final response's body (jobs only) */
	cJSON *resp_headers;      /* the final response's headers (jobs only) */
	cJSON *last_header;       /* for folded continuation lines */
	size_t header_bytes, body_bytes;
	bool too_large, oom;
	/* A job: */
	struct run *run;
	int expect[EXPECT_MAX];
	int nexpect;              /* 0: any 2xx */
	atomic_bool stop;         /* set by the stop hook */
	int64_t deadline;         /* monotonic ms; 0: none */
	/* A post: */
	void (*done)(void *arg, long status, const char *error);
	void *done_arg;
	struct xfer *next, *prev; /* pending (next only) or active list */
};

static struct {
	pthread_mutex_t mu;
	CURLM *multi;             /* mu for its lifetime; the engine uses it */
	struct xfer *pending;     /* mu; LIFO, order does not matter */
	bool stopping;            /* mu */
	bool started;             /* mu */
	pthread_t thread;
	atomic_bool stops_pending; /* some transfer's stop flag was set */
	/* Engine thread only: */
	struct xfer *active;
	int64_t next_deadline;    /* earliest active deadline; 0: none */
	/* Read-only while the engine runs: */
	struct egress_rules allow, deny;
	size_t max_response;
} engine = {.mu = PTHREAD_MUTEX_INITIALIZER};

static bool kind_registered;

static void xfer_free(struct xfer *x)
{
	if (!x)
		return;
	curl_easy_cleanup(x->easy);
	curl_slist_free_all(x->headers);
	free(x->url);
	free(x->body.p);
	cJSON_Delete(x->resp_headers);
	free(x);
}

/* The normalized host of the URL curl is on (the current redirect hop). */
static void current_host(struct xfer *x, char *out, size_t n)
{
	out[0] = '\0';
	char *url = NULL, *host = NULL;
	CURLU *u = curl_url();
	if (u && curl_easy_getinfo(x->easy, CURLINFO_EFFECTIVE_URL, &url) == CURLE_OK && url &&
	    curl_url_set(u, CURLUPART_URL, url, 0) == CURLUE_OK &&
	    curl_url_get(u, CURLUPART_HOST, &host, 0) == CURLUE_OK)
		egress_host_normalize(host, out, n);
	curl_free(host);
	curl_url_cleanup(u);
}

static int on_resolver_start(void *resolver_state, void *reserved, void *arg)
{
	(void)resolver_state;
	(void)reserved;
	struct xfer *x = arg;
	char host[256];
	current_host(x, host, sizeof host);
	return egress_vet(&engine.allow, &engine.deny, host[0] ? host : NULL, NULL, x->refused, sizeof x->refused) != 0;
}

static curl_socket_t open_socket(void *arg, curlsocktype purpose, struct curl_sockaddr *a)
{
	struct xfer *x = arg;
	if (purpose != CURLSOCKTYPE_IPCXN)
		return CURL_SOCKET_BAD;
	char host[256];
	current_host(x, host, sizeof host);
	if (egress_vet(&engine.allow, &engine.deny, host[0] ? host : NULL, &a->addr, x->refused, sizeof x->refused) != 0)
		return CURL_SOCKET_BAD;
	int fd = socket(a->family, a->socktype | SOCK_CLOEXEC, a->protocol);
	if (fd < 0)
		return CURL_SOCKET_BAD;
	return fd;
}

static int buf_add(struct buf *b, const char *data, size_t n)
{
	if (b->cap - b->len <= n) {
		size_t cap = b->cap ? b->cap : 4096;
		while (cap - b->len <= n)
			cap *= 2;
		char *p = realloc(b->p, cap);
		if (!p)
			return -1;
		b->p = p;
		b->cap = cap;
	}
	memcpy(b->p + b->len, data, n);
	b->len += n;
	b->p[b->len] = '\0';
	return 0;
}

static size_t on_body(char *data, size_t size, size_t n, void *arg)
{
	struct xfer *x = arg;
	size_t len = size * n;
	x->body_bytes += len;
	if (x->body_bytes > engine.max_response) {
		x->too_large = true;
		return 0;
	}
	if (x->run && buf_add(&x->body, data, len) != 0) {
		x->oom = true;
		return 0;
	}
	return len;
}

/* Adds "name: value" to the response's headers, joining repeats. */
static int add_header(struct xfer *x, const char *line, size_t len)
{
	if (len > 0 && (line[0] == ' ' || line[0] == '\t')) {
		/* A folded line continues the previous value. */
		if (!x->last_header)
			return 0;
		while (len > 0 && (*line == ' ' || *line == '\t'))
			line++, len--;
		size_t old = strlen(x->last_header->valuestring);
		char *v = malloc(old + 1 + len + 1);
		if (!v)
			return -1;
		snprintf(v, old + 1 + len + 1, "%s %.*s", x->last_header->valuestring, (int)len, line);
		const char *set = cJSON_SetValuestring(x->last_header, v);
		free(v);
		return set ? 0 : -1;
	}
	const char *colon = memchr(line, ':', len);
	if (!colon || colon == line)
		return 0;
	char name[HEADER_NAME_MAX];
	size_t nlen = (size_t)(colon - line);
	if (nlen >= sizeof name)
		return 0;
	for (size_t i = 0; i < nlen; i++)
		name[i] = (char)(line[i] >= 'A' && line[i] <= 'Z' ? line[i] - 'A' + 'a' : line[i]);
	name[nlen] = '\0';
	const char *v = colon + 1, *end = line + len;
	while (v < end && (*v == ' ' || *v == '\t'))
		v++;
	while (end > v && (end[-1] == ' ' || end[-1] == '\t'))
		end--;
	int vlen = (int)(end - v);
	cJSON *old = cJSON_GetObjectItemCaseSensitive(x->resp_headers, name);
	if (old) {
		size_t olen = strlen(old->valuestring);
		char *joined = malloc(olen + 2 + (size_t)vlen + 1);
		if (!joined)
			return -1;
		snprintf(joined, olen + 2 + (size_t)vlen + 1, "%s, %.*s", old->valuestring, vlen, v);
		const char *set = cJSON_SetValuestring(old, joined);
		free(joined);
		x->last_header = old;
		return set ? 0 : -1;
	}
	char *value = strndup(v, (size_t)vlen);
	cJSON *item = value ? cJSON_CreateString(value) : NULL;
	free(value);
	if (!item)
		return -1;
	cJSON_AddItemToObject(x->resp_headers, name, item);
	x->last_header = item;
	return 0;
}

static size_t on_header(char *data, size_t size, size_t n, void *arg)
{
	struct xfer *x = arg;
	size_t len = size * n;
	x->header_bytes += len;
	if (x->header_bytes > engine.max_response) {
		x->too_large = true;
		return 0;
	}
	if (!x->run)
		return len;
	if (len >= 5 && memcmp(data, "HTTP/", 5) == 0) {
		/* A new response (after a 1xx or a redirect): only the last counts. */
		cJSON_Delete(x->resp_headers);
		x->last_header = NULL;
		x->body.len = 0;
		x->body_bytes = 0;
		if (x->body.p)
			x->body.p[0] = '\0';
		if (!(x->resp_headers = cJSON_CreateObject())) {
			x->oom = true;
			return 0;
		}
		return len;
	}
	size_t l = len;
	while (l > 0 && (data[l - 1] == '\r' || data[l - 1] == '\n'))
		l--;
	if (l > 0 && x->resp_headers && add_header(x, data, l) != 0) {
		x->oom = true;
		return 0;
	}
	return len;
}

/* Parses url for a request: 0 with *use (the URL curl is given) and
 * *shown (without user info), or -1 with why (then nothing is allocated).
 * Either output pointer may be NULL. */
static int url_parse(const char *url, char **use, char **shown, const char **why)
{
	int rc = -1;
	char *scheme = NULL, *host = NULL;
	CURLU *u = curl_url();
	if (use)
		*use = NULL;
	if (shown)
		*shown = NULL;
	*why = "out of memory";
	if (!u)
		goto out;
	*why = "is not a valid URL";
	if (strlen(url) > URL_MAX || curl_url_set(u, CURLUPART_URL, url, 0) != CURLUE_OK)
		goto out;
	*why = "must be an http or https URL";
	if (curl_url_get(u, CURLUPART_SCHEME, &scheme, 0) != CURLUE_OK ||
	    (strcmp(scheme, "http") != 0 && strcmp(scheme, "https") != 0))
		goto out;
	*why = "has no host";
	if (curl_url_get(u, CURLUPART_HOST, &host, 0) != CURLUE_OK || !*host)
		goto out;
	*why = "out of memory";
	char *s = NULL;
	if (use) {
		if (curl_url_get(u, CURLUPART_URL, &s, 0) != CURLUE_OK)
			goto out;
		*use = strdup(s);
		curl_free(s);
		if (!*use)
			goto out;
	}
	if (shown) {
		curl_url_set(u, CURLUPART_USER, NULL, 0);
		curl_url_set(u, CURLUPART_PASSWORD, NULL, 0);
		if (curl_url_get(u, CURLUPART_URL, &s, 0) != CURLUE_OK || !(*shown = strdup(s))) {
			curl_free(s);
			if (use) {
				free(*use);
				*use = NULL;
			}
			goto out;
		}
		curl_free(s);
	}
	rc = 0;
out:
	curl_free(scheme);
	curl_free(host);
	curl_url_cleanup(u);
	return rc;
}

/* A new transfer for url with the options every request shares. NULL with
 * why on failure. */
static struct xfer *xfer_new(const char *url, double timeout_s, bool keep, const char **why)
{
	struct xfer *x = calloc(1, sizeof *x);
	char *use = NULL;
	*why = "out of memory";
	if (!x || url_parse(url, &use, &x->url, why) != 0 || !(x->easy = curl_easy_init()))
		goto fail;
	*why = "out of memory";
	if (keep && !(x->resp_headers = cJSON_CreateObject()))
		goto fail;
	CURL *e = x->easy;
	CURLcode rc = CURLE_OK;
	rc |= curl_easy_setopt(e, CURLOPT_URL, use);
	rc |= curl_easy_setopt(e, CURLOPT_PROTOCOLS_STR, "http,https");
	rc |= curl_easy_setopt(e, CURLOPT_REDIR_PROTOCOLS_STR, "http,https");
	rc |= curl_easy_setopt(e, CURLOPT_PROXY, "");
	rc |= curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
	rc |= curl_easy_setopt(e, CURLOPT_USERAGENT, USER_AGENT);
	rc |= curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, (long)llround(timeout_s * 1000));
	rc |= curl_easy_setopt(e, CURLOPT_MAXFILESIZE_LARGE, (curl_off_t)engine.max_response);
	rc |= curl_easy_setopt(e, CURLOPT_ERRORBUFFER, x->errbuf);
	rc |= curl_easy_setopt(e, CURLOPT_PRIVATE, x);
	rc |= curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, on_body);
	rc |= curl_easy_setopt(e, CURLOPT_WRITEDATA, x);
	rc |= curl_easy_setopt(e, CURLOPT_HEADERFUNCTION, on_header);
	rc |= curl_easy_setopt(e, CURLOPT_HEADERDATA, x);
	rc |= curl_easy_setopt(e, CURLOPT_OPENSOCKETFUNCTION, open_socket);
	rc |= curl_easy_setopt(e, CURLOPT_OPENSOCKETDATA, x);
	rc |= curl_easy_setopt(e, CURLOPT_RESOLVER_START_FUNCTION, on_resolver_start);
	rc |= curl_easy_setopt(e, CURLOPT_RESOLVER_START_DATA, x);
	free(use);
	use = NULL;
	if (rc != CURLE_OK) {
		*why = "cannot set up the transfer";
		goto fail;
	}
	return x;
fail:
	free(use);
	xfer_free(x);
	return NULL;
}

/* Appends line to *list; on failure *list is left as it was. */
static int slist_add(struct curl_slist **list, const char *line)
{
	struct curl_slist *l = curl_slist_append(*list, line);
	if (!l)
		return -1;
	*list = l;
	return 0;
}

/* Adds "Name: value" (or "Name;" for an empty value, which curl would
 * otherwise drop). */
static int header_append(struct curl_slist **list, const char *name, const char *value)
{
	size_t n = strlen(name) + strlen(value) + 3;
	char *line = malloc(n);
	if (!line)
		return -1;
	if (*value)
		snprintf(line, n, "%s: %s", name, value);
	else
		snprintf(line, n, "%s;", name);
	int rc = slist_add(list, line);
	free(line);
	return rc;
}

/* Queues x for the engine; -1 when it is not running (x is not taken). */
static int engine_submit(struct xfer *x)
{
	pthread_mutex_lock(&engine.mu);
	bool ok = engine.started && !engine.stopping;
	if (ok) {
		x->next = engine.pending;
		engine.pending = x;
		curl_multi_wakeup(engine.multi);
	}
	pthread_mutex_unlock(&engine.mu);
	return ok ? 0 : -1;
}

/* ---- the job kind ---- */

static bool header_name_ok(const char *s)
{
	static const char tchar[] = "!#$%&'*+-.^_`|~";
	size_t n = strlen(s);
	if (n == 0 || n >= HEADER_NAME_MAX)
		return false;
	for (; *s; s++)
		if (!((*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z') || (*s >= '0' && *s <= '9') ||
		      strchr(tchar, *s)))
			return false;
	return true;
}

static bool header_value_ok(const char *s)
{
	if (strlen(s) >= HEADER_VALUE_MAX)
		return false;
	for (; *s; s++)
		if (*s == '\r' || *s == '\n')
			return false;
	return true;
}

static bool status_ok(const cJSON *v)
{
	return cJSON_IsNumber(v) && v->valuedouble >= 100 && v->valuedouble <= 599 &&
	       v->valuedouble == floor(v->valuedouble);
}

static const char *method_of(const cJSON *payload)
{
	const cJSON *m = cJSON_GetObjectItemCaseSensitive(payload, "method");
	if (!m)
		return "GET";
	for (size_t i = 0; i < sizeof methods / sizeof methods[0]; i++)
		if (cJSON_IsString(m) && strcasecmp(m->valuestring, methods[i]) == 0)
			return methods[i];
	return NULL;
}

static int http_validate(const struct job_kind *kind, const cJSON *payload, struct problem *p)
{
	(void)kind;
	if (!cJSON_IsObject(payload))
		return problem_set(p, PROBLEM_INVALID_PAYLOAD, "payload",
		                   "http needs a payload object like {\"url\": \"https://example.com/\"}");
	for (const cJSON *f = payload->child; f; f = f->next) {
		bool known = false;
		for (size_t i = 0; i < sizeof payload_fields / sizeof payload_fields[0]; i++)
			known |= strcmp(f->string, payload_fields[i]) == 0;
		if (!known) {
			char field[80];
			snprintf(field, sizeof field, "payload.%.64s", f->string);
			return problem_set(p, PROBLEM_INVALID_PAYLOAD, field, "%s is not a field of an http payload",
			                   field);
		}
	}
	const cJSON *url = cJSON_GetObjectItemCaseSensitive(payload, "url");
	const char *why = "must be a string";
	if (!url)
		return problem_set(p, PROBLEM_INVALID_PAYLOAD, "payload.url", "payload.url is required");
	if (!cJSON_IsString(url) || url_parse(url->valuestring, NULL, NULL, &why) != 0)
		return problem_set(p, PROBLEM_INVALID_PAYLOAD, "payload.url", "payload.url %s", why);
	const char *method = method_of(payload);
	if (!method)
		return problem_set(p, PROBLEM_INVALID_PAYLOAD, "payload.method",
		                   "payload.method must be one of GET, HEAD, POST, PUT, PATCH, DELETE, OPTIONS");
	const cJSON *h = cJSON_GetObjectItemCaseSensitive(payload, "headers");
	if (h && !cJSON_IsObject(h))
		return problem_set(p, PROBLEM_INVALID_PAYLOAD, "payload.headers",
		                   "payload.headers must be an object of strings");
	int nh = 0;
	for (const cJSON *e = h ? h->child : NULL; e; e = e->next) {
		if (++nh > HEADERS_MAX)
			return problem_set(p, PROBLEM_INVALID_PAYLOAD, "payload.headers",
			                   "payload.headers may hold at most %d headers", HEADERS_MAX);
		if (!header_name_ok(e->string))
			return problem_set(p, PROBLEM_INVALID_PAYLOAD, "payload.headers",
			                   "payload.headers: '%.40s' is not a valid header name", e->string);
		if (!cJSON_IsString(e) || !header_value_ok(e->valuestring))
			return problem_set(p, PROBLEM_INVALID_PAYLOAD, "payload.headers",
			                   "payload.headers.%.40s must be a string without line breaks", e->string);
	}
	const cJSON *body = cJSON_GetObjectItemCaseSensitive(payload, "body");
	const cJSON *json = cJSON_GetObjectItemCaseSensitive(payload, "json");
	if (body && !cJSON_IsString(body))
		return problem_set(p, PROBLEM_INVALID_PAYLOAD, "payload.body", "payload.body must be a string");
	if (body && json)
		return problem_set(p, PROBLEM_INVALID_PAYLOAD, "payload.json",
		                   "payload.body and payload.json cannot both be set");
	if ((body || json) && strcmp(method, "HEAD") == 0)
		return problem_set(p, PROBLEM_INVALID_PAYLOAD, body ? "payload.body" : "payload.json",
		                   "a HEAD request takes no body");
	const cJSON *t = cJSON_GetObjectItemCaseSensitive(payload, "timeout_s");
	if (t && (!cJSON_IsNumber(t) || !(t->valuedouble > 0) || t->valuedouble > TIMEOUT_MAX_S))
		return problem_set(p, PROBLEM_INVALID_PAYLOAD, "payload.timeout_s",
		                   "payload.timeout_s must be a number above 0 and at most %.0f", TIMEOUT_MAX_S);
	const cJSON *x = cJSON_GetObjectItemCaseSensitive(payload, "expect_status");
	if (x) {
		bool ok = status_ok(x);
		if (cJSON_IsArray(x)) {
			int n = cJSON_GetArraySize(x);
			ok = n > 0 && n <= EXPECT_MAX;
			for (const cJSON *e = x->child; ok && e; e = e->next)
				ok = status_ok(e);
		}
		if (!ok)
			return problem_set(p, PROBLEM_INVALID_PAYLOAD, "payload.expect_status",
			                   "payload.expect_status must be a status (100 to 599) or a non-empty "
			                   "array of at most %d of them", EXPECT_MAX);
	}
	const cJSON *fr = cJSON_GetObjectItemCaseSensitive(payload, "follow_redirects");
	if (fr && !cJSON_IsBool(fr))
		return problem_set(p, PROBLEM_INVALID_PAYLOAD, "payload.follow_redirects",
		                   "payload.follow_redirects must be true or false");
	return 0;
}

/* Sets the method, body and headers of a job's request. */
static int set_request(struct xfer *x, const cJSON *payload, const char **why)
{
	CURL *e = x->easy;
	const char *method = method_of(payload);
	const cJSON *h = cJSON_GetObjectItemCaseSensitive(payload, "headers");
	const cJSON *body = cJSON_GetObjectItemCaseSensitive(payload, "body");
	const cJSON *json = cJSON_GetObjectItemCaseSensitive(payload, "json");
	bool has_type = false;
	char *printed = NULL;
	*why = "out of memory";
	for (const cJSON *it = h ? h->child : NULL; it; it = it->next) {
		has_type |= strcasecmp(it->string, "Content-Type") == 0;
		if (header_append(&x->headers, it->string, it->valuestring) != 0)
			return -1;
	}
	const char *data = NULL;
	if (json) {
		if (!(data = printed = cJSON_PrintUnformatted(json)))
			return -1;
		if (!has_type && header_append(&x->headers, "Content-Type", "application/json") != 0)
			goto fail;
	} else if (body) {
		data = body->valuestring;
	}
	/* A body goes as it is: no form Content-Type made up, no Expect. */
	if (data && !has_type && !json && slist_add(&x->headers, "Content-Type:") != 0)
		goto fail;
	if (slist_add(&x->headers, "Expect:") != 0)
		goto fail;
	bool bodied = data || strcmp(method, "POST") == 0 || strcmp(method, "PUT") == 0 ||
	              strcmp(method, "PATCH") == 0;
	CURLcode rc = curl_easy_setopt(e, CURLOPT_HTTPHEADER, x->headers);
	if (strcmp(method, "HEAD") == 0) {
		/* No body comes: a large Content-Length must not fail it. */
		rc |= curl_easy_setopt(e, CURLOPT_NOBODY, 1L);
		rc |= curl_easy_setopt(e, CURLOPT_MAXFILESIZE_LARGE, (curl_off_t)0);
	} else if (bodied) {
		rc |= curl_easy_setopt(e, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)(data ? strlen(data) : 0));
		rc |= curl_easy_setopt(e, CURLOPT_COPYPOSTFIELDS, data ? data : "");
		if (strcmp(method, "POST") != 0)
			rc |= curl_easy_setopt(e, CURLOPT_CUSTOMREQUEST, method);
	} else if (strcmp(method, "GET") != 0) {
		rc |= curl_easy_setopt(e, CURLOPT_CUSTOMREQUEST, method);
	}
	bool follow = cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(payload, "follow_redirects"));
	rc |= curl_easy_setopt(e, CURLOPT_FOLLOWLOCATION, follow ? 1L : 0L);
	rc |= curl_easy_setopt(e, CURLOPT_MAXREDIRS, MAX_REDIRS);
	cJSON_free(printed);
	if (rc != CURLE_OK) {
		*why = "cannot set up the request";
		return -1;
	}
	const cJSON *ex = cJSON_GetObjectItemCaseSensitive(payload, "expect_status");
	if (cJSON_IsNumber(ex))
		x->expect[x->nexpect++] = ex->valueint;
	for (const cJSON *it = cJSON_IsArray(ex) ? ex->child : NULL; it && x->nexpect < EXPECT_MAX; it = it->next)
		x->expect[x->nexpect++] = it->valueint;
	return 0;
fail:
	cJSON_free(printed);
	return -1;
}

static void on_stop(void *arg)
{
	struct xfer *x = arg;
	atomic_store(&x->stop, true);
	atomic_store(&engine.stops_pending, true);
	pthread_mutex_lock(&engine.mu);
	if (engine.multi)
		curl_multi_wakeup(engine.multi);
	pthread_mutex_unlock(&engine.mu);
}

static int http_start_job(const struct job_kind *kind, struct run *run, const cJSON *payload, char **error)
{
	struct problem p;
	const char *why = NULL;
	if (http_validate(kind, payload, &p) != 0) {
		/* Stored before this jobqd's rules: retrying cannot help. */
		run_finish(run, RUN_FAILED_FINAL, NULL, strdup(p.detail));
		return 0;
	}
	const cJSON *t = cJSON_GetObjectItemCaseSensitive(payload, "timeout_s");
	double timeout_s = cJSON_IsNumber(t) ? t->valuedouble : TIMEOUT_DEFAULT_S;
	const char *url = cJSON_GetObjectItemCaseSensitive(payload, "url")->valuestring;
	struct xfer *x = xfer_new(url, timeout_s, true, &why);
	if (!x || set_request(x, payload, &why) != 0)
		goto fail;
	x->run = run;
	int64_t left = run_time_left_ms(run);
	x->deadline = left == INT64_MAX ? 0 : clock_mono_ms() + left;
	log_debug("job %s: http %s", run->job->id, x->url);
	/* The hook first: once queued, the engine may end the run and free
	 * x at any moment. */
	run_set_stop_hook(run, on_stop, x);
	if (engine_submit(x) != 0) {
		run_set_stop_hook(run, NULL, NULL);
		why = "the http engine is not running";
		goto fail;
	}
	return 0;
fail:
	xfer_free(x);
	*error = strdup(why);
	return -1;
}

static const struct job_kind http_kind = {
	.name = "http", .validate = http_validate, .start = http_start_job,
};

/* ---- ending transfers (engine thread) ---- */

static bool json_type(const char *ct)
{
	if (!ct)
		return false;
	size_t n = strcspn(ct, "; \t");
	return (n == 16 && strncasecmp(ct, "application/json", 16) == 0) ||
	       (n > 5 && strncasecmp(ct + n - 5, "+json", 5) == 0);
}

/* Whether s[0..n) is UTF-8 text without NUL bytes. */
static bool utf8_text(const unsigned char *s, size_t n)
{
	return !memchr(s, 0, n) && utf8_valid((const char *)s, n);
}

static char *base64(const unsigned char *s, size_t n)
{
	static const char abc[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
	char *out = malloc((n + 2) / 3 * 4 + 1), *o = out;
	if (!out)
		return NULL;
	for (size_t i = 0; i < n; i += 3) {
		uint32_t v = (uint32_t)s[i] << 16 | (i + 1 < n ? (uint32_t)s[i + 1] << 8 : 0) |
		             (i + 2 < n ? s[i + 2] : 0);
		*o++ = abc[v >> 18 & 63];
		*o++ = abc[v >> 12 & 63];
		*o++ = i + 1 < n ? abc[v >> 6 & 63] : '=';
		*o++ = i + 2 < n ? abc[v & 63] : '=';
	}
	*o = '\0';
	return out;
}

/* {"status", "headers", and "json", "body" or "body" + "body_base64"}; NULL
 * when out of memory. Takes the headers. */
static cJSON *job_result(struct xfer *x, long status)
{
	cJSON *r = cJSON_CreateObject();
	if (!r)
		return NULL;
	cJSON_AddNumberToObject(r, "status", (double)status);
	cJSON *h = x->resp_headers ? x->resp_headers : cJSON_CreateObject();
	x->resp_headers = NULL;
	if (!h)
		goto fail;
	cJSON_AddItemToObject(r, "headers", h);
	const cJSON *ct = cJSON_GetObjectItemCaseSensitive(h, "content-type");
	const char *data = x->body.p ? x->body.p : "";
	size_t len = x->body.len;
	const char *end = NULL;
	cJSON *parsed = json_type(cJSON_IsString(ct) ? ct->valuestring : NULL) && len > 0
	        ? cJSON_ParseWithLengthOpts(data, len, &end, false) : NULL;
	if (parsed) {
		while (end < data + len && (*end == ' ' || *end == '\t' || *end == '\r' || *end == '\n'))
			end++;
		if (end != data + len) {
			cJSON_Delete(parsed);
			parsed = NULL;
		}
	}
	if (parsed) {
		cJSON_AddItemToObject(r, "json", parsed);
	} else if (utf8_text((const unsigned char *)data, len)) {
		if (!cJSON_AddStringToObject(r, "body", data))
			goto fail;
	} else {
		char *b64 = base64((const unsigned char *)data, len);
		cJSON *item = b64 ? cJSON_AddStringToObject(r, "body", b64) : NULL;
		free(b64);
		if (!item || !cJSON_AddTrueToObject(r, "body_base64"))
			goto fail;
	}
	return r;
fail:
	cJSON_Delete(r);
	return NULL;
}

static bool status_expected(const struct xfer *x, long status)
{
	if (x->nexpect == 0)
		return status >= 200 && status <= 299;
	for (int i = 0; i < x->nexpect; i++)
		if (x->expect[i] == status)
			return true;
	return false;
}

static char *error_text(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static char *error_text(const char *fmt, ...)
{
	char text[ERROR_MAX + 64];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(text, sizeof text, fmt, ap);
	va_end(ap);
	return strdup(text);
}

/* The error of a transfer that ended with rc: NULL when it got a response.
 * *final says whether retrying cannot help. */
static char *transfer_error(struct xfer *x, CURLcode rc, bool *final)
{
	*final = true;
	if (rc == CURLE_OK && !x->oom)
		return NULL;
	if (x->too_large || rc == CURLE_FILESIZE_EXCEEDED)
		return error_text("response larger than %zu bytes", engine.max_response);
	if (x->refused[0])
		return strdup(x->refused);
	if (rc == CURLE_TOO_MANY_REDIRECTS)
		return error_text("more than %ld redirects from %s", MAX_REDIRS, x->url);
	if (rc == CURLE_UNSUPPORTED_PROTOCOL)
		return error_text("refused: a redirect from %s left http and https", x->url);
	*final = false;
	if (x->oom)
		return strdup("out of memory reading the response");
	return error_text("%s", x->errbuf[0] ? x->errbuf : curl_easy_strerror(rc));
}

/* Ends a job's attempt; x is freed. Caller removed x from the multi. */
static void finish_job(struct xfer *x, CURLcode rc, bool stopped)
{
	struct run *run = x->run;
	cJSON *result = NULL;
	char *error = NULL;
	enum run_outcome outcome;
	long status = 0;
	bool final;
	if (stopped) {
		outcome = RUN_STOPPED;
	} else if ((error = transfer_error(x, rc, &final))) {
		outcome = final ? RUN_FAILED_FINAL : RUN_FAILED;
	} else if (curl_easy_getinfo(x->easy, CURLINFO_RESPONSE_CODE, &status) == CURLE_OK &&
	           status_expected(x, status)) {
		result = job_result(x, status);
		outcome = result ? RUN_SUCCEEDED : RUN_FAILED;
		if (!result)
			error = strdup("out of memory building the result");
	} else {
		error = error_text("HTTP %ld from %s", status, x->url);
		outcome = RUN_FAILED_FINAL;
		if (status >= 500 || status == 429) {
			outcome = RUN_FAILED;
			curl_off_t after = 0;
			if (curl_easy_getinfo(x->easy, CURLINFO_RETRY_AFTER, &after) == CURLE_OK && after > 0) {
				int64_t ms = (after < RETRY_AFTER_MAX_S ? after : RETRY_AFTER_MAX_S) * 1000;
				run_retry_after(run, ms);
				if (status == 429) /* the queue's rate limit may pause for it */
					run_throttled(run, clock_now_ms() + ms);
			}
		}
	}
	log_debug("job %s: http %s ended: %s", run->job->id, x->url,
	          error ? error : stopped ? "stopped" : "ok");
	run_set_stop_hook(run, NULL, NULL);
	xfer_free(x);
	run_finish(run, outcome, result, error);
}

/* Ends a post; x is freed. Caller removed x from the multi. */
static void finish_post(struct xfer *x, CURLcode rc, const char *why)
{
	long status = 0;
	bool final;
	char *error = why ? strdup(why) : transfer_error(x, rc, &final);
	if (!why && !error) {
		curl_easy_getinfo(x->easy, CURLINFO_RESPONSE_CODE, &status);
		if (status < 200 || status > 299)
			error = error_text("HTTP %ld from %s", status, x->url);
	}
	void (*done)(void *, long, const char *) = x->done;
	void *arg = x->done_arg;
	xfer_free(x);
	done(arg, status, error ? error : (status >= 200 && status <= 299) ? NULL : "out of memory");
	free(error);
}

static void active_unlink(struct xfer *x)
{
	if (x->prev)
		x->prev->next = x->next;
	else
		engine.active = x->next;
	if (x->next)
		x->next->prev = x->prev;
	x->next = x->prev = NULL;
	curl_multi_remove_handle(engine.multi, x->easy);
}

/* Ends an active transfer now (stop, deadline or shutdown). */
static void abort_xfer(struct xfer *x, const char *why)
{
	active_unlink(x);
	if (x->run)
		finish_job(x, CURLE_OK, true);
	else
		finish_post(x, CURLE_OK, why);
}

/* Adds what other threads queued. Returns whether anything was added. */
static bool take_pending(bool *stopping)
{
	pthread_mutex_lock(&engine.mu);
	struct xfer *list = engine.pending;
	engine.pending = NULL;
	*stopping = engine.stopping;
	pthread_mutex_unlock(&engine.mu);
	bool added = list != NULL;
	while (list) {
		struct xfer *x = list;
		list = x->next;
		x->prev = NULL;
		x->next = engine.active;
		if (curl_multi_add_handle(engine.multi, x->easy) != CURLM_OK) {
			x->next = NULL;
			if (x->run)
				finish_job(x, CURLE_OUT_OF_MEMORY, false);
			else
				finish_post(x, CURLE_OUT_OF_MEMORY, NULL);
			continue;
		}
		if (engine.active)
			engine.active->prev = x;
		engine.active = x;
	}
	return added;
}

/* Aborts the jobs asked to stop or past their deadline; recomputes
 * next_deadline. */
static void check_stops(void)
{
	int64_t now = clock_mono_ms();
	engine.next_deadline = 0;
	for (struct xfer *x = engine.active, *next; x; x = next) {
		next = x->next;
		if (!x->run)
			continue;
		if (atomic_load(&x->stop) || (x->deadline && now >= x->deadline)) {
			abort_xfer(x, NULL);
			continue;
		}
		if (x->deadline && (!engine.next_deadline || x->deadline < engine.next_deadline))
			engine.next_deadline = x->deadline;
	}
}

static void *engine_main(void *unused)
{
	(void)unused;
	for (;;) {
		bool stopping;
		bool added = take_pending(&stopping);
		if (stopping)
			break;
		if (added || atomic_exchange(&engine.stops_pending, false) ||
		    (engine.next_deadline && clock_mono_ms() >= engine.next_deadline))
			check_stops();
		int running = 0;
		curl_multi_perform(engine.multi, &running);
		CURLMsg *msg;
		int left;
		while ((msg = curl_multi_info_read(engine.multi, &left))) {
			if (msg->msg != CURLMSG_DONE)
				continue;
			char *priv = NULL;
			CURLcode rc = msg->data.result;
			curl_easy_getinfo(msg->easy_handle, CURLINFO_PRIVATE, &priv);
			struct xfer *x = (struct xfer *)(void *)priv;
			active_unlink(x);
			if (x->run)
				finish_job(x, rc, false);
			else
				finish_post(x, rc, NULL);
		}
		int64_t wait = IDLE_POLL_MS;
		if (engine.next_deadline) {
			int64_t until = engine.next_deadline - clock_mono_ms();
			wait = until < 0 ? 0 : until < wait ? until : wait;
		}
		curl_multi_poll(engine.multi, NULL, 0, (int)wait, NULL);
	}
	/* Shutting down: whatever is left ends now. */
	while (engine.active)
		abort_xfer(engine.active, "jobqd is shutting down");
	pthread_mutex_lock(&engine.mu);
	struct xfer *list = engine.pending;
	engine.pending = NULL;
	pthread_mutex_unlock(&engine.mu);
	while (list) {
		struct xfer *x = list;
		list = x->next;
		if (x->run)
			finish_job(x, CURLE_OK, true);
		else
			finish_post(x, CURLE_OK, "jobqd is shutting down");
	}
	return NULL;
}

/* ---- public ---- */

int http_rules_check(const struct http_options *o, char *err, size_t errlen)
{
	struct egress_rules allow = {0}, deny = {0};
	int rc = egress_rules_add(&deny, o->deny, o->ndeny, "--http-deny", err, errlen) != 0 ||
	         egress_rules_add(&allow, o->allow, o->nallow, "--http-allow", err, errlen) != 0 ? -1 : 0;
	egress_rules_free(&allow);
	egress_rules_free(&deny);
	return rc;
}

int http_engine_start(const struct http_options *o, char *err, size_t errlen)
{
	struct egress_rules allow = {0}, deny = {0};
	CURLM *multi = NULL;
	pthread_mutex_lock(&engine.mu);
	bool started = engine.started;
	pthread_mutex_unlock(&engine.mu);
	if (started) {
		snprintf(err, errlen, "the http engine is already running");
		return -1;
	}
	if (egress_rules_add_builtin(&deny, err, errlen) != 0 ||
	    egress_rules_add(&deny, o->deny, o->ndeny, "--http-deny", err, errlen) != 0 ||
	    egress_rules_add(&allow, o->allow, o->nallow, "--http-allow", err, errlen) != 0)
		goto fail;
	if (!(multi = curl_multi_init())) {
		snprintf(err, errlen, "cannot create a curl multi handle");
		goto fail;
	}
	engine.allow = allow;
	engine.deny = deny;
	engine.max_response = o->max_response ? o->max_response : HTTP_DEFAULT_MAX_RESPONSE;
	engine.active = NULL;
	engine.next_deadline = 0;
	atomic_store(&engine.stops_pending, false);
	pthread_mutex_lock(&engine.mu);
	engine.multi = multi;
	engine.stopping = false;
	engine.started = true;
	pthread_mutex_unlock(&engine.mu);
	if (pthread_create(&engine.thread, NULL, engine_main, NULL) != 0) {
		snprintf(err, errlen, "cannot start the http engine thread");
		pthread_mutex_lock(&engine.mu);
		engine.started = false;
		engine.multi = NULL;
		pthread_mutex_unlock(&engine.mu);
		goto fail;
	}
	if (!kind_registered && kind_register(&http_kind) != 0) {
		snprintf(err, errlen, "cannot register job type http (name taken or table full)");
		http_engine_stop();
		return -1;
	}
	kind_registered = true;
	log_debug("http engine: max response %zu bytes, %d deny and %d allow rules", engine.max_response,
	          engine.deny.n, engine.allow.n);
	return 0;
fail:
	curl_multi_cleanup(multi);
	egress_rules_free(&allow);
	egress_rules_free(&deny);
	return -1;
}

void http_engine_stop(void)
{
	pthread_mutex_lock(&engine.mu);
	bool started = engine.started && !engine.stopping;
	if (started) {
		engine.stopping = true;
		curl_multi_wakeup(engine.multi);
	}
	pthread_mutex_unlock(&engine.mu);
	if (!started)
		return;
	pthread_join(engine.thread, NULL);
	pthread_mutex_lock(&engine.mu);
	CURLM *multi = engine.multi;
	engine.multi = NULL;
	engine.started = false;
	pthread_mutex_unlock(&engine.mu);
	curl_multi_cleanup(multi);
	egress_rules_free(&engine.allow);
	egress_rules_free(&engine.deny);
}

int http_post_async(const char *url, const char *const *headers, int nheaders,
                    const char *body, size_t len, double timeout_s,
                    void (*done)(void *arg, long status, const char *error), void *arg)
{
	const char *why = NULL;
	if (!url || !done || !(timeout_s > 0) || nheaders < 0)
		return -1;
	if (!body)
		len = 0;
	struct xfer *x = xfer_new(url, timeout_s, false, &why);
	if (!x)
		goto fail;
	for (int i = 0; i < nheaders; i++)
		if (!header_value_ok(headers[i]) || slist_add(&x->headers, headers[i]) != 0)
			goto fail;
	if (slist_add(&x->headers, "Expect:") != 0)
		goto fail;
	CURLcode rc = curl_easy_setopt(x->easy, CURLOPT_HTTPHEADER, x->headers);
	rc |= curl_easy_setopt(x->easy, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)len);
	rc |= curl_easy_setopt(x->easy, CURLOPT_COPYPOSTFIELDS, body ? body : "");
	if (rc != CURLE_OK)
		goto fail;
	x->done = done;
	x->done_arg = arg;
	if (engine_submit(x) != 0)
		goto fail;
	return 0;
fail:
	if (why)
		log_debug("http post to %s: %s", url, why);
	xfer_free(x);
	return -1;
}
