/* The request as handlers see it, without libmicrohttpd: method, path,
 * path parameters, query, headers and body in; status, headers and body
 * out. A handler either replies before it returns or suspends the request
 * (req_suspend) and arranges for req_resume to be called exactly once;
 * then its on_resume function runs on the HTTP thread and replies or
 * suspends again. */
#ifndef JOBQ_REQ_H
#define JOBQ_REQ_H

#include <stdbool.h>
#include <stddef.h>

#include <cjson/cJSON.h>

#include "core/problem.h"

struct app;
struct req;

typedef void (*req_fn)(struct req *r);

/* A streamed body: writes up to max bytes into buf and returns how many;
 * 0 when there is nothing to send now (the request is then suspended and
 * arm runs, which must arrange exactly one req_resume, e.g. a hub waiter
 * with a deadline); -1 to end the stream. Runs on the HTTP thread. */
typedef long (*req_fill_fn)(struct req *r, char *buf, size_t max);

struct req_header {
	char *name, *value;
};

#define REQ_MAX_HEADERS 8

struct req {
	struct app *app;
	const char *method;
	const char *path;
	const char *param;            /* the {id} path segment, or NULL */
	const char *client;           /* client address (behind trusted proxies) */
	const char *scheme;           /* "http", or X-Forwarded-Proto from a trusted proxy */
	const char *request_id;       /* X-Request-Id, the client's or a new one */
	char *body;                   /* NUL-terminated, body_len bytes */
	size_t body_len;

	/* handler state, freed with the request by ctx_free */
	void *ctx;
	void (*ctx_free)(void *ctx);

	/* reply */
	bool replied;
	int status;
	const char *content_type;
	char *reply_body;             /* malloc'd */
	size_t reply_len;
	bool reply_static;            /* reply_body points to static data */
	struct req_header headers[REQ_MAX_HEADERS];
	int nheaders;

	/* glue (server/http.c) */
	void *conn;
	req_fn on_resume;
	req_fill_fn stream_fill;      /* set by reply_stream */
	req_fn stream_arm;
};

/* Request header or query parameter value; NULL when absent. */
const char *req_header(struct req *r, const char *name);
const char *req_query(struct req *r, const char *name);

/* Replies with JSON (takes json; NULL means out of memory -> 500). */
void reply_json(struct req *r, int status, cJSON *json);

/* Replies with a problem+json body. */
void reply_problem(struct req *r, const struct problem *p);

/* Shorthand: reply_problem with kind, field and detail. */
void reply_error(struct req *r, enum problem_kind kind, const char *field,
                 const char *fmt, ...) __attribute__((format(printf, 4, 5)));

/* Replies with static bytes (not copied, not freed). */
void reply_static(struct req *r, int status, const char *content_type,
                  const char *body, size_t len);

/* Replies with a malloc'd body (taken, freed with the request). */
void reply_text(struct req *r, int status, const char *content_type, char *body, size_t len);

/* A reply body shared by many requests (every long-poll woken by one job's
 * end): the text and its ETag are made once, and each reply sends the same
 * bytes, holding a reference until libmicrohttpd has sent them. */
struct req_shared;

/* Takes body (malloc'd, len bytes) and hashes it for the ETag; NULL when
 * out of memory (body is freed then). The caller holds one reference. */
struct req_shared *req_shared_new(char *body, size_t len);

/* Another reference to s. */
struct req_shared *req_shared_ref(struct req_shared *s);

/* Drops a reference; the last frees s. NULL is a no-op. Any thread. */
void req_shared_put(struct req_shared *s);

/* Replies with s's bytes and its ETag (takes the caller's reference). */
void reply_shared(struct req *r, int status, const char *content_type, struct req_shared *s);

/* Connections the HTTP server has open now. */
unsigned req_connections(struct req *r);

/* Replies 200 with a body produced by fill as the client reads it (see
 * req_fill_fn), e.g. Server-Sent Events. */
void reply_stream(struct req *r, const char *content_type, req_fill_fn fill, req_fn arm);

/* Adds a response header (copied). */
void reply_header(struct req *r, const char *name, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

/* Suspends the request now; on_resume runs after req_resume. Call before
 * publishing the request anywhere another thread could resume it. */
void req_suspend(struct req *r, req_fn on_resume);

/* Resumes a suspended request. Any thread; exactly once per suspend. */
void req_resume(struct req *r);

/* For hub waiters: req_resume with a void pointer. */
void req_resume_cb(void *r);

#endif
