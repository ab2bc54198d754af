/* The outbound HTTP engine shared by http jobs (workers/http.c) and
 * callbacks (http_post_async, declared in workers/http.h): one thread
 * owns a curl multi handle and drives every transfer; every connection
 * is vetted against the egress rules (workers/egress.h) before a socket
 * exists.
 *
 * A user makes a transfer with engine_xfer_new, sets its request on
 * x->easy and x->headers, sets finish (and deadline), and queues it with
 * engine_submit; from then on the transfer belongs to the engine thread,
 * which calls finish exactly once and frees nothing itself: finish ends
 * with engine_xfer_free. */
#ifndef JOBQ_WORKERS_ENGINE_H
#define JOBQ_WORKERS_ENGINE_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <cjson/cJSON.h>
#include <curl/curl.h>

#include "workers/http.h"

#define ENGINE_MAX_REDIRS 5L
#define ENGINE_HEADER_NAME_MAX 256
#define ENGINE_HEADER_VALUE_MAX 8192
#define ENGINE_ERROR_MAX 512

struct engine_buf {
	char *p;   /* NUL-terminated when not NULL */
	size_t len, cap;
};

struct xfer {
	CURL *easy;
	struct curl_slist *headers;
	char *url;                /* without user info, for messages */
	char errbuf[CURL_ERROR_SIZE];
	char refused[ENGINE_ERROR_MAX];  /* why a host or address was refused; "" when none */
	bool keep;                /* keep the final response's headers and body */
	struct engine_buf body;   /* the final response's body (keep only) */
	cJSON *resp_headers;      /* the final response's headers (keep only) */
	cJSON *last_header;       /* for folded continuation lines */
	size_t header_bytes, body_bytes;
	bool too_large, oom;
	atomic_bool stop;         /* engine_xfer_stop: abort at once */
	int64_t deadline;         /* monotonic ms the transfer is aborted at; 0: none */
	/* Called once on the engine thread, x off the multi: rc is how the
	 * transfer ended, aborted says why it was cut short (stop, deadline,
	 * shutdown) or is NULL. Must free x (engine_xfer_free). */
	void (*finish)(struct xfer *x, CURLcode rc, const char *aborted);
	/* A post's (http_post_async): */
	void (*done)(void *arg, long status, const char *error);
	void *done_arg;
	struct xfer *next, *prev; /* pending (next only) or active list */
};

/* Checks the rules and starts the engine thread; 0, or -1 with a
 * one-line message in err (nothing is left running). */
int engine_start(const struct http_options *o, char *err, size_t errlen);

/* Ends every transfer still queued or running (finish with aborted "jobqd
 * is shutting down") and joins the thread. Safe if never started. */
void engine_stop(void);

/* Parses url for a request: 0 with *use (the URL curl is given) and
 * *shown (without user info), or -1 with why (then nothing is allocated).
 * Either output pointer may be NULL. */
int engine_url_parse(const char *url, char **use, char **shown, const char **why);

/* A new transfer of size bytes (at least sizeof(struct xfer), so that a
 * user can put its own fields after one), zeroed, for url with the
 * options every request shares; keep says whether the final response is
 * kept. NULL with why on failure. */
struct xfer *engine_xfer_new(size_t size, const char *url, double timeout_s, bool keep, const char **why);

/* Frees x and what it holds; NULL is a no-op. */
void engine_xfer_free(struct xfer *x);

/* Queues x for the engine; -1 when it is not running (x is not taken). */
int engine_submit(struct xfer *x);

/* Asks the engine to abort x (any thread; x must be queued or running
 * and not yet finished: the caller's lock ensures it). */
void engine_xfer_stop(struct xfer *x);

/* Appends line to *list; on failure *list is left as it was. */
int engine_slist_add(struct curl_slist **list, const char *line);

/* Adds "Name: value" (or "Name;" for an empty value, which curl would
 * otherwise drop). */
int engine_header_append(struct curl_slist **list, const char *name, const char *value);

/* Whether s may be a request header's value: shorter than
 * ENGINE_HEADER_VALUE_MAX, no line break. */
bool engine_header_value_ok(const char *s);

/* The error of a transfer that ended with rc: NULL when it got a response.
 * *final says whether retrying cannot help. Engine thread (finish). */
char *engine_transfer_error(struct xfer *x, CURLcode rc, bool *final);

/* A malloc'd message of at most about ENGINE_ERROR_MAX bytes; NULL when
 * out of memory. */
char *engine_error_text(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

#endif
