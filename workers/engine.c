/* The curl multi engine shared by http jobs and callbacks (workers/engine.h).
 *
 * DESIGN. One thread owns a curl multi handle and every easy handle added
 * to it. Other threads hand it transfers through `pending` (a worker from
 * the http kind's start, any thread from http_post_async) and wake it with
 * curl_multi_wakeup. engine_xfer_stop (cancel, shutdown) only sets the
 * transfer's `stop` flag and wakes the engine, which aborts the transfer
 * (curl_multi_remove_handle closes the connection) and calls its finish;
 * a transfer's deadline is the engine's own timer.
 *
 * SSRF: curl resolves, then calls open_socket for every address it tries
 * on every hop (redirects included); the socket is only created when the
 * host name and the address pass the egress rules, so a refused address
 * never sees a packet. A host name denied by a pattern is refused before
 * it is even resolved (resolver_start). Proxies are off (CURLOPT_PROXY
 * ""), since through one the callback would only see the proxy.
 *
 * Locking: engine.mu guards pending, stopping and multi's lifetime (a stop
 * wakes the engine under it). Lock order: run->mu, then engine.mu; the
 * engine never holds engine.mu while calling a finish. Everything else in
 * a transfer belongs to the thread that holds it: the starter until it is
 * queued, then the engine. */
#include "workers/engine.h"

#include <math.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "core/clock.h"
#include "core/log.h"
#include "workers/egress.h"

#define URL_MAX 8192
#define IDLE_POLL_MS 1000
#define USER_AGENT "jobqd"

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

void engine_xfer_free(struct xfer *x)
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

static int buf_add(struct engine_buf *b, const char *data, size_t n)
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
	if (x->keep && buf_add(&x->body, data, len) != 0) {
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
	char name[ENGINE_HEADER_NAME_MAX];
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
	if (!x->keep)
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

int engine_url_parse(const char *url, char **use, char **shown, const char **why)
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

struct xfer *engine_xfer_new(size_t size, const char *url, double timeout_s, bool keep, const char **why)
{
	struct xfer *x = size >= sizeof *x ? calloc(1, size) : NULL;
	char *use = NULL;
	*why = "out of memory";
	if (!x || engine_url_parse(url, &use, &x->url, why) != 0 || !(x->easy = curl_easy_init()))
		goto fail;
	x->keep = keep;
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
	engine_xfer_free(x);
	return NULL;
}

int engine_slist_add(struct curl_slist **list, const char *line)
{
	struct curl_slist *l = curl_slist_append(*list, line);
	if (!l)
		return -1;
	*list = l;
	return 0;
}

int engine_header_append(struct curl_slist **list, const char *name, const char *value)
{
	size_t n = strlen(name) + strlen(value) + 3;
	char *line = malloc(n);
	if (!line)
		return -1;
	if (*value)
		snprintf(line, n, "%s: %s", name, value);
	else
		snprintf(line, n, "%s;", name);
	int rc = engine_slist_add(list, line);
	free(line);
	return rc;
}

int engine_submit(struct xfer *x)
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

bool engine_header_value_ok(const char *s)
{
	if (strlen(s) >= ENGINE_HEADER_VALUE_MAX)
		return false;
	for (; *s; s++)
		if (*s == '\r' || *s == '\n')
			return false;
	return true;
}

void engine_xfer_stop(struct xfer *x)
{
	atomic_store(&x->stop, true);
	atomic_store(&engine.stops_pending, true);
	pthread_mutex_lock(&engine.mu);
	if (engine.multi)
		curl_multi_wakeup(engine.multi);
	pthread_mutex_unlock(&engine.mu);
}

char *engine_error_text(const char *fmt, ...)
{
	char text[ENGINE_ERROR_MAX + 64];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(text, sizeof text, fmt, ap);
	va_end(ap);
	return strdup(text);
}

char *engine_transfer_error(struct xfer *x, CURLcode rc, bool *final)
{
	*final = true;
	if (rc == CURLE_OK && !x->oom)
		return NULL;
	if (x->too_large || rc == CURLE_FILESIZE_EXCEEDED)
		return engine_error_text("response larger than %zu bytes", engine.max_response);
	if (x->refused[0])
		return strdup(x->refused);
	if (rc == CURLE_TOO_MANY_REDIRECTS)
		return engine_error_text("more than %ld redirects from %s", ENGINE_MAX_REDIRS, x->url);
	if (rc == CURLE_UNSUPPORTED_PROTOCOL)
		return engine_error_text("refused: a redirect from %s left http and https", x->url);
	*final = false;
	if (x->oom)
		return strdup("out of memory reading the response");
	return engine_error_text("%s", x->errbuf[0] ? x->errbuf : curl_easy_strerror(rc));
}

/* Ends a post; x is freed. Caller removed x from the multi. */
static void finish_post(struct xfer *x, CURLcode rc, const char *why)
{
	long status = 0;
	bool final;
	char *error = why ? strdup(why) : engine_transfer_error(x, rc, &final);
	if (!why && !error) {
		curl_easy_getinfo(x->easy, CURLINFO_RESPONSE_CODE, &status);
		if (status < 200 || status > 299)
			error = engine_error_text("HTTP %ld from %s", status, x->url);
	}
	void (*done)(void *, long, const char *) = x->done;
	void *arg = x->done_arg;
	engine_xfer_free(x);
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
	x->finish(x, CURLE_OK, why);
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
			x->finish(x, CURLE_OUT_OF_MEMORY, NULL);
			continue;
		}
		if (engine.active)
			engine.active->prev = x;
		engine.active = x;
	}
	return added;
}

/* Aborts the transfers asked to stop or past their deadline; recomputes
 * next_deadline. */
static void check_stops(void)
{
	int64_t now = clock_mono_ms();
	engine.next_deadline = 0;
	for (struct xfer *x = engine.active, *next; x; x = next) {
		next = x->next;
		if (atomic_load(&x->stop) || (x->deadline && now >= x->deadline)) {
			abort_xfer(x, atomic_load(&x->stop) ? "stopped" : "past its deadline");
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
			x->finish(x, rc, NULL);
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
		x->finish(x, CURLE_OK, "jobqd is shutting down");
	}
	return NULL;
}

/* ---- public ---- */

int engine_start(const struct http_options *o, char *err, size_t errlen)
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
	log_debug("http engine: max response %zu bytes, %d deny and %d allow rules", engine.max_response,
	          engine.deny.n, engine.allow.n);
	return 0;
fail:
	curl_multi_cleanup(multi);
	egress_rules_free(&allow);
	egress_rules_free(&deny);
	return -1;
}

void engine_stop(void)
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
	struct xfer *x = engine_xfer_new(sizeof *x, url, timeout_s, false, &why);
	if (!x)
		goto fail;
	for (int i = 0; i < nheaders; i++)
		if (!engine_header_value_ok(headers[i]) || engine_slist_add(&x->headers, headers[i]) != 0)
			goto fail;
	if (engine_slist_add(&x->headers, "Expect:") != 0)
		goto fail;
	CURLcode rc = curl_easy_setopt(x->easy, CURLOPT_HTTPHEADER, x->headers);
	rc |= curl_easy_setopt(x->easy, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)len);
	rc |= curl_easy_setopt(x->easy, CURLOPT_COPYPOSTFIELDS, body ? body : "");
	if (rc != CURLE_OK)
		goto fail;
	x->finish = finish_post;
	x->done = done;
	x->done_arg = arg;
	if (engine_submit(x) != 0)
		goto fail;
	return 0;
fail:
	if (why)
		log_debug("http post to %s: %s", url, why);
	engine_xfer_free(x);
	return -1;
}
