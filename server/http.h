/* The HTTP server: libmicrohttpd in internal-polling, epoll, thread-pool
 * mode with suspend/resume, the routing table, body reading and limits,
 * and the reply glue behind server/req.h. */
#ifndef JOBQ_HTTP_H
#define JOBQ_HTTP_H

#include <stdbool.h>
#include <stdint.h>

struct app;
struct http;

/* The request threads http_start runs: one per core. Each may read the
 * store at once, so the store's reader pool is sized from it. */
unsigned http_threads(void);

/* Binds host:port (port 0 picks one), starts serving and prints
 * "jobqd: listening on http://HOST:PORT" on stderr. -1 on failure (logged). */
int http_start(struct app *app, const char *host, int port, struct http **out);

/* Stops accepting connections; open ones are still served. */
void http_quiesce(struct http *h);

/* Waits, up to max_ms, until no request is suspended or in progress. */
void http_drain(struct http *h, int64_t max_ms);

/* Stops the server. No request may be suspended. NULL is a no-op. */
void http_stop(struct http *h);

/* True when an If-None-Match value (NULL when absent) lists etag (weak
 * comparison, as RFC 9110 asks for If-None-Match) or is "*". */
bool http_etag_listed(const char *header, const char *etag);

#endif
