/* libmicrohttpd glue. Only this file includes microhttpd.h.
 *
 * The access handler is called once with the headers, once per body chunk,
 * and once at the end. The first call picks the route and refuses early
 * what can be refused from the headers (404, 405, 413 by Content-Length,
 * 415); chunks are appended to a buffer capped at --max-body (a chunked
 * body past the cap is drained and answered 413 at the end); the last call
 * runs the handler. A handler that suspends is called back through
 * on_resume when libmicrohttpd calls the access handler again after
 * MHD_resume_connection; responses are always queued from the HTTP thread.
 *
 * Suspended connections never time out and never see a disconnect, so
 * every suspend has a bounded deadline (the hub) and shutdown resumes them
 * all before MHD_stop_daemon.
 *
 * The first call also settles what every route shares: the client address
 * (behind --trust-proxy), the request id, the CORS origin, CORS preflights
 * and the API key check against the route's role. send_reply adds the
 * shared response headers and turns a matching If-None-Match into 304;
 * on_completed writes the request log line.
 *
 * Hostile clients. The first call also refuses framing that a proxy in
 * front could read another way (request smuggling): libmicrohttpd 0.9.75
 * takes duplicate Content-Length, Transfer-Encoding beside Content-Length
 * or other than chunked, a space before a header's colon, a CR or NUL
 * in a value and a request target with a space or a %00, so frame_check
 * walks what it parsed and answers 400 bad_request (and the connection
 * closes). Each connection has a deadline for its request line, headers
 * and body (--request-timeout): a watchdog thread walks the open
 * connections and ends a late one with a 408 written straight to its
 * socket, since libmicrohttpd can queue a response only from its own
 * thread and only before or after the body. The library's connection
 * limit is set above --max-connections: a connection past ours is served
 * a 503 too_many_connections as soon as its headers are in, where the
 * library would leave it in the listen backlog. */
#include "server/http.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <microhttpd.h>
#include <netdb.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "core/clock.h"
#include "core/digest.h"
#include "core/log.h"
#include "core/uuid.h"
#include "core/metrics.h"
#include "server/app.h"
#include "server/query.h"
#include "server/req.h"
#include "server/route.h"

/* Connections past --max-connections that still get their 503: the
 * library's own limit is this much higher. Past both, new connections
 * wait in the listen backlog. */
#define CONNECTION_HEADROOM(n) ((n) / 8 + 16)
/* A connection past --max-connections has this long to send its request. */
#define OVER_LIMIT_GRACE_MS 1000
#define WATCHDOG_STEP_MS 50
/* Each connection's pool holds its request line, headers and read buffer
 * (bodies are copied out as they arrive); libmicrohttpd's 32 KiB default is
 * zeroed on every reuse, which dominated answering 10,000 waiters at once.
 * 8 KiB fits any request this API expects. */
#define CONNECTION_MEMORY 8192
#define IDLE_TIMEOUT_S 60
#define LISTEN_BACKLOG 4096

#define REQUEST_ID_MAX 128
#define XFF_MAX 2048
#define CORS_MAX_AGE_S 600
#define CORS_ALLOW_HEADERS "Authorization, Content-Type, If-None-Match, Last-Event-ID, X-Request-Id"
#define CORS_EXPOSE_HEADERS "ETag, Location, X-Request-Id, Retry-After, Jobq-Node"
#define ETAG_HEX 32            /* 128 bits of the body's SHA-256 */

/* Where a connection's current request is. RECEIVING has a deadline; the
 * HTTP thread moves it to ANSWERING once the request is in (or refused),
 * the watchdog to EXPIRED when the deadline passes first. Whichever moves
 * it out of RECEIVING owns the socket's output for that request. */
enum conn_phase { CONN_RECEIVING, CONN_ANSWERING, CONN_EXPIRED };

/* One open TCP connection (libmicrohttpd's socket context). */
struct conn {
	struct conn *prev, *next;      /* http.conns, under http.conns_lock */
	int fd;
	atomic_int phase;              /* enum conn_phase */
	_Atomic int64_t deadline_ms;   /* clock_mono_ms(); read while RECEIVING */
	atomic_bool begun;             /* a request line has arrived: a 408 may be sent */
	bool over_limit;               /* opened past --max-connections */
};

struct http {
	struct app *app;
	/* Atomic: the main thread stores it when MHD_start_daemon returns, after
	 * the HTTP threads it started may have served a request (NULL then). */
	struct MHD_Daemon *_Atomic daemon;
	int quiesced_fd;         /* listen socket after quiesce; closed after stop */
	atomic_int suspended;    /* requests suspended now */
	atomic_int active;       /* requests begun and not completed */
	int64_t timeout_ms;      /* --request-timeout */
	int max_conns;           /* --max-connections */
	atomic_int nconns;       /* connections open now */
	pthread_mutex_t conns_lock;  /* guards conns and the list links */
	struct conn *conns;
	pthread_t watchdog;
	bool watchdog_started;
	atomic_bool watchdog_stop;
};

/* One request. req comes first: handlers see only it. */
struct exchange {
	struct req req;
	struct http *http;
	struct conn *conn;      /* NULL if the connection's context could not be made */
	const char *raw_target; /* the request target in the read buffer (unescaped in place later) */
	size_t raw_target_len;  /* before unescaping */
	const char *target_problem; /* why the raw target is refused, or NULL */
	bool seen;              /* the access handler has been called */
	const struct route *route;
	const char *route_pattern;  /* for the log: the route, or the preflight's */
	char *param;
	char client[NETADDR_TEXT_MAX];
	char request_id[REQUEST_ID_MAX + 1];
	const char *origin;     /* the request's Origin when CORS allows it */
	char etag[ETAG_HEX + 3];  /* "" or the quoted ETag of the reply */
	struct req_shared *shared; /* the reply's body when it is shared, or NULL */
	struct timespec started;
	uint64_t bytes;         /* body bytes handed to libmicrohttpd */
	double began;           /* metrics_clock() at the first call */
	size_t body_cap;
	bool too_large;
	bool handled;           /* the route's handler has been called */
	bool sent;              /* a response is queued */
};

/* ---- shared reply bodies ---------------------------------------------- */

struct req_shared {
	atomic_int refs;
	char *body;
	size_t len;
	char etag[ETAG_HEX + 3];  /* quoted */
};

struct req_shared *req_shared_new(char *body, size_t len)
{
	struct req_shared *s = malloc(sizeof *s);
	if (!s) {
		free(body);
		return NULL;
	}
	atomic_init(&s->refs, 1);
	s->body = body;
	s->len = len;
	char hex[DIGEST_HEX_LEN + 1];
	digest_sha256_hex(body, len, hex);
	snprintf(s->etag, sizeof s->etag, "\"%.*s\"", ETAG_HEX, hex);
	return s;
}

struct req_shared *req_shared_ref(struct req_shared *s)
{
	atomic_fetch_add(&s->refs, 1);
	return s;
}

void req_shared_put(struct req_shared *s)
{
	if (!s || atomic_fetch_sub(&s->refs, 1) != 1)
		return;
	free(s->body);
	free(s);
}

/* libmicrohttpd's free callback of a response made from a shared body. */
static void shared_sent(void *cls)
{
	req_shared_put(cls);
}

/* ---- routing -------------------------------------------------------- */

/* Matches path against pattern; on success *param points at a malloc'd
 * copy of the {id} or {name} segment (or NULL). */
static bool route_match(const char *pattern, const char *path, char **param)
{
	char *captured = NULL;
	while (*pattern && *path) {
		if (*pattern == '{') {
			size_t n = strcspn(path, "/");
			if (n == 0 || captured)
				break;
			captured = strndup(path, n);
			pattern += strcspn(pattern, "}") + 1;
			path += n;
		} else if (*pattern == *path) {
			pattern++;
			path++;
		} else {
			break;
		}
	}
	if (*pattern || *path) {
		free(captured);
		return false;
	}
	*param = captured;
	return true;
}

/* Walks the routes whose pattern matches path, in table order: returns
 * the one for method, with *param its {id} or {name} segment (malloc'd) or
 * NULL, or NULL when none is for method (or method is NULL). allow (size
 * bytes) lists the methods of the other routes on path; *pattern is the
 * last matching pattern, or NULL when no route has path. */
static const struct route *route_find(const char *path, const char *method, char *allow, size_t size,
                                      const char **pattern, char **param)
{
	size_t nroutes;
	const struct route *routes = routes_table(&nroutes);
	allow[0] = '\0';
	*pattern = NULL;
	for (size_t i = 0; i < nroutes; i++) {
		const struct route *rt = &routes[i];
		char *captured = NULL;
		if (!route_match(rt->pattern, path, &captured))
			continue;
		*pattern = rt->pattern;
		if (method && strcmp(rt->method, method) == 0) {
			*param = captured;
			return rt;
		}
		free(captured);
		size_t len = strlen(allow);
		snprintf(allow + len, size - len, "%s%s", len ? ", " : "", rt->method);
	}
	return NULL;
}

/* Picks the route, or replies 404 / 405 with Allow. */
static void route_pick(struct exchange *x)
{
	char allow[128];
	const char *pattern;
	char *param = NULL;
	const struct route *rt = route_find(x->req.path, x->req.method, allow, sizeof allow, &pattern, &param);
	if (rt) {
		x->route = rt;
		x->route_pattern = rt->pattern;
		x->param = param;
		x->req.param = param;
		return;
	}
	if (allow[0]) {
		reply_header(&x->req, "Allow", "%s", allow);
		reply_error(&x->req, PROBLEM_METHOD_NOT_ALLOWED, NULL,
		            "%s is not allowed on %s; allowed: %s", x->req.method, x->req.path, allow);
	} else {
		reply_error(&x->req, PROBLEM_NOT_FOUND, NULL, "no resource at %s", x->req.path);
	}
}

/* ---- who is asking ---------------------------------------------------- */

struct xff_buf {
	char text[XFF_MAX];
	size_t len;
	bool overflow;
};

/* Joins every X-Forwarded-For line with commas. */
static enum MHD_Result collect_xff(void *cls, enum MHD_ValueKind kind, const char *key, const char *value)
{
	(void)kind;
	struct xff_buf *b = cls;
	if (!key || !value || strcasecmp(key, "X-Forwarded-For") != 0)
		return MHD_YES;
	size_t n = strlen(value);
	if (b->len + n + 2 > sizeof b->text) {
		b->overflow = true;
		return MHD_NO;
	}
	if (b->len)
		b->text[b->len++] = ',';
	memcpy(b->text + b->len, value, n + 1);
	b->len += n;
	return MHD_YES;
}

/* The right-most X-Forwarded-Proto value, when it is http or https. */
static const char *forwarded_proto(struct MHD_Connection *c)
{
	const char *v = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "X-Forwarded-Proto");
	if (!v)
		return NULL;
	const char *last = strrchr(v, ',');
	last = last ? last + 1 : v;
	last += strspn(last, " \t");
	size_t n = strcspn(last, " \t");
	if (n == 5 && strncasecmp(last, "https", 5) == 0 && last[5 + strspn(last + 5, " \t")] == '\0')
		return "https";
	if (n == 4 && strncasecmp(last, "http", 4) == 0 && last[4 + strspn(last + 4, " \t")] == '\0')
		return "http";
	return NULL;
}

/* 1-128 visible ASCII characters. */
static bool request_id_ok(const char *s)
{
	size_t n = 0;
	for (; s[n]; n++)
		if ((unsigned char)s[n] <= ' ' || (unsigned char)s[n] >= 0x7f)
			return false;
	return n >= 1 && n <= REQUEST_ID_MAX;
}

/* Client address, scheme, request id and CORS origin of the request. */
static void identify(struct exchange *x, struct MHD_Connection *c)
{
	const struct config *cfg = x->http->app->cfg;
	char peer[NETADDR_TEXT_MAX] = "-";
	const union MHD_ConnectionInfo *ci = MHD_get_connection_info(c, MHD_CONNECTION_INFO_CLIENT_ADDRESS);
	const struct sockaddr *sa = ci ? ci->client_addr : NULL;
	if (sa && sa->sa_family == AF_INET)
		inet_ntop(AF_INET, &((const struct sockaddr_in *)(const void *)sa)->sin_addr, peer, sizeof peer);
	else if (sa && sa->sa_family == AF_INET6)
		inet_ntop(AF_INET6, &((const struct sockaddr_in6 *)(const void *)sa)->sin6_addr, peer, sizeof peer);
	snprintf(x->client, sizeof x->client, "%s", peer);
	x->req.scheme = "http";
	int family;
	unsigned char addr[16];
	if (cfg->ntrust_proxy > 0 && netaddr_parse(peer, &family, addr) == 0 &&
	    netaddr_in(cfg->trust_proxy, cfg->ntrust_proxy, family, addr)) {
		struct xff_buf xff = {.len = 0};
		MHD_get_connection_values(c, MHD_HEADER_KIND, collect_xff, &xff);
		if (!xff.overflow)
			netaddr_client(cfg->trust_proxy, cfg->ntrust_proxy, peer, xff.text, x->client, sizeof x->client);
		const char *proto = forwarded_proto(c);
		if (proto)
			x->req.scheme = proto;
	}
	x->req.client = x->client;

	const char *rid = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "X-Request-Id");
	if (rid && request_id_ok(rid))
		snprintf(x->request_id, sizeof x->request_id, "%s", rid);
	else
		uuid_v7(x->request_id);
	x->req.request_id = x->request_id;

	const char *origin = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "Origin");
	for (int i = 0; origin && i < cfg->ncors_origins && !x->origin; i++)
		if (strcmp(origin, cfg->cors_origins[i]) == 0)
			x->origin = cfg->cors_origins[i];
}

/* The first query parameter whose name or value holds a NUL byte (%00). */
static enum MHD_Result find_nul(void *cls, enum MHD_ValueKind kind, const char *key, size_t key_size,
                                const char *value, size_t value_size)
{
	const char **name = cls;
	(void)kind;
	if ((key && strlen(key) != key_size) || (value && strlen(value) != value_size)) {
		*name = key ? key : "";
		return MHD_NO;
	}
	return MHD_YES;
}

/* Every reader of a query value sees a C string, which %00 would cut
 * short: ?queue=default%00evil would list queue "default". Replies 400
 * naming the parameter and returns true when there is one; frame_check
 * refuses a %00 anywhere else in the target. */
static bool refuse_query_nul(struct exchange *x, struct MHD_Connection *c)
{
	const char *name = NULL;
	MHD_get_connection_values_n(c, MHD_GET_ARGUMENT_KIND, find_nul, &name);
	if (!name)
		return false;
	reply_error(&x->req, PROBLEM_INVALID_QUERY, name, "the query parameter %.60s holds a NUL byte (%%00)", name);
	return true;
}

/* Collects the query parameter names of a request, up to QUERY_NAMES_MAX. */
#define QUERY_NAMES_MAX 64
struct query_names {
	const char *v[QUERY_NAMES_MAX];
	size_t n;
	bool over;
};

static enum MHD_Result collect_query_name(void *cls, enum MHD_ValueKind kind, const char *key, size_t key_size,
                                          const char *value, size_t value_size)
{
	struct query_names *q = cls;
	(void)kind, (void)key_size, (void)value, (void)value_size;
	if (q->n == QUERY_NAMES_MAX) {
		q->over = true;
		return MHD_NO;
	}
	q->v[q->n++] = key ? key : "";
	return MHD_YES;
}

/* Refuses a query parameter the route does not take (server/query.c),
 * so a misspelt filter is an error, not every job. */
static void refuse_unknown_query(struct exchange *x, struct MHD_Connection *c)
{
	struct query_names q = {0};
	struct problem p;
	MHD_get_connection_values_n(c, MHD_GET_ARGUMENT_KIND, collect_query_name, &q);
	if (query_check_names(x->route->method, x->route->pattern, q.v, q.n, &p) != 0)
		reply_problem(&x->req, &p);
	else if (q.over && query_route_names(x->route->method, x->route->pattern))
		reply_error(&x->req, PROBLEM_INVALID_QUERY, NULL, "the query holds more than %d parameters",
		            QUERY_NAMES_MAX);
}

/* A CORS preflight (OPTIONS with an Origin): 204 with what the path allows
 * when the origin is allowed, 403 origin_not_allowed when not, 404 when no
 * route has the path. Needs no key: browsers send none with a preflight. */
static void preflight(struct exchange *x)
{
	char allow[128];
	const char *pattern;
	char *param = NULL;
	route_find(x->req.path, NULL, allow, sizeof allow, &pattern, &param);
	if (pattern)
		x->route_pattern = pattern;
	if (!allow[0]) {
		reply_error(&x->req, PROBLEM_NOT_FOUND, NULL, "no resource at %s", x->req.path);
		return;
	}
	if (!x->origin) {
		reply_error(&x->req, PROBLEM_ORIGIN_NOT_ALLOWED, "Origin",
		            "cross-origin requests from this origin are not allowed (see --cors-origin)");
		return;
	}
	reply_header(&x->req, "Access-Control-Allow-Methods", "%s", allow);
	reply_header(&x->req, "Access-Control-Allow-Headers", "%s", CORS_ALLOW_HEADERS);
	reply_header(&x->req, "Access-Control-Max-Age", "%d", CORS_MAX_AGE_S);
	reply_static(&x->req, 204, NULL, "", 0);
}

static enum auth_role access_role(enum access a, const struct config *cfg)
{
	switch (a) {
	case ACCESS_PUBLIC: return AUTH_NONE;
	case ACCESS_READ: return AUTH_READ;
	case ACCESS_SUBMIT: return AUTH_SUBMIT;
	case ACCESS_ADMIN: return AUTH_ADMIN;
	case ACCESS_METRICS: return cfg->metrics_public ? AUTH_NONE : AUTH_READ;
	case ACCESS_WORKER: return AUTH_WORKER;
	}
	return AUTH_ADMIN;
}

/* With API keys configured: 401 without a known key, 403 when its role is
 * below the route's. */
static void authorize(struct exchange *x)
{
	const struct config *cfg = x->http->app->cfg;
	enum auth_role need = access_role(x->route->access, cfg);
	if (cfg->api_keys.n == 0 || need == AUTH_NONE)
		return;
	const char *h = req_header(&x->req, "Authorization");
	enum auth_role have = auth_check(&cfg->api_keys, h);
	if (have == AUTH_NONE) {
		reply_header(&x->req, "WWW-Authenticate", "Bearer realm=\"jobq\"");
		reply_error(&x->req, PROBLEM_UNAUTHORIZED, "Authorization", "%s",
		            h ? "the API key is not valid" : "send an API key as Authorization: Bearer KEY");
	} else if (!auth_allows(have, need)) {
		reply_error(&x->req, PROBLEM_FORBIDDEN, "Authorization", "%s %s needs the %s role; the key has %s",
		            x->req.method, x->route->pattern, auth_role_name(need), auth_role_name(have));
	}
}

/* application/json, in any case, with or without parameters. */
static bool is_json_type(const char *ct)
{
	if (!ct)
		return false;
	while (*ct == ' ')
		ct++;
	size_t n = strlen("application/json");
	return strncasecmp(ct, "application/json", n) == 0 &&
	       (ct[n] == '\0' || ct[n] == ';' || ct[n] == ' ');
}

/* Refusals decided from the headers alone. */
static void early_checks(struct exchange *x, struct MHD_Connection *c)
{
	size_t max = x->http->app->cfg->max_body;
	const char *len = MHD_lookup_connection_value(c, MHD_HEADER_KIND, MHD_HTTP_HEADER_CONTENT_LENGTH);
	if (len && strtoull(len, NULL, 10) > max) {
		reply_error(&x->req, PROBLEM_BODY_TOO_LARGE, NULL,
		            "the body is %s bytes; the limit is %zu", len, max);
		return;
	}
	if (x->route->json_body) {
		const char *ct = MHD_lookup_connection_value(c, MHD_HEADER_KIND, MHD_HTTP_HEADER_CONTENT_TYPE);
		if (!is_json_type(ct))
			reply_error(&x->req, PROBLEM_UNSUPPORTED_MEDIA_TYPE, "Content-Type",
			            "send the body as application/json (got %.80s)", ct ? ct : "no Content-Type");
	}
}

static void body_append(struct exchange *x, const char *data, size_t n)
{
	size_t max = x->http->app->cfg->max_body;
	if (x->too_large || x->req.body_len + n > max) {
		x->too_large = true;
		return;
	}
	if (x->req.body_len + n + 1 > x->body_cap) {
		size_t cap = x->body_cap ? x->body_cap : 1024;
		while (cap < x->req.body_len + n + 1)
			cap *= 2;
		char *body = realloc(x->req.body, cap);
		if (!body) {
			x->too_large = true; /* answered 413: we cannot hold it */
			return;
		}
		x->req.body = body;
		x->body_cap = cap;
	}
	memcpy(x->req.body + x->req.body_len, data, n);
	x->req.body_len += n;
	x->req.body[x->req.body_len] = '\0';
}

/* ---- framing ---------------------------------------------------------- */

/* RFC 9110 token characters: what a header name may hold. */
static bool is_tchar(unsigned char ch)
{
	return (ch >= '0' && ch <= '9') || (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') ||
	       (ch && strchr("!#$%&'*+-.^_`|~", ch));
}

struct frame_scan {
	const char *bad;          /* the first refusal, as a sentence */
	const char *field;        /* the header it is about */
	const char *content_length;
	size_t content_length_len;
	int ntransfer_encoding;
	bool chunked;
	bool host;
	uintptr_t gap_from;       /* end of the previous value in the read buffer, or 0 */
};

static void frame_refuse(struct frame_scan *f, const char *field, const char *why)
{
	if (!f->bad && why) {
		f->bad = why;
		f->field = field;
	}
}

/* In libmicrohttpd 0.9.75 each header line is parsed in place: the CR and
 * LF after a value become NULs and the next name starts right after, and
 * the value's length is its strlen. So anything but one or two NULs
 * between one value and the next name is a value cut short by a NUL byte
 * (a folded line is copied elsewhere and skipped here). The check is
 * compiled only against the versions whose layout it knows. */
#if MHD_VERSION <= 0x00097500
#define FRAME_CHECK_NUL 1
#else
#define FRAME_CHECK_NUL 0
#endif

static bool gap_has_data(uintptr_t from, uintptr_t to, size_t max_nuls)
{
	if (from == 0 || to < from || to - from > 4096)
		return false; /* not adjacent: nothing to tell */
	const char *p = (const char *)from;
	size_t n = (size_t)(to - from);
	for (size_t i = 0; i < n; i++)
		if (p[i] != '\0')
			return true;
	return n > max_nuls;
}

static enum MHD_Result scan_header(void *cls, enum MHD_ValueKind kind, const char *key, size_t key_len,
                                   const char *value, size_t value_len)
{
	(void)kind;
	struct frame_scan *f = cls;
	if (FRAME_CHECK_NUL && gap_has_data(f->gap_from, (uintptr_t)key, 2))
		frame_refuse(f, NULL, "a header value holds a NUL byte");
	f->gap_from = value ? (uintptr_t)(value + value_len) : 0;
	if (key_len == 0)
		frame_refuse(f, NULL, "a header line has no name");
	for (size_t i = 0; i < key_len; i++)
		if (!is_tchar((unsigned char)key[i])) {
			frame_refuse(f, key, "a header name holds a space or a character names may not have");
			break;
		}
	/* CR and LF end lines for some parsers and not others; the other
	 * control characters are left to the handler that reads the header. */
	if (value && memchr(value, '\r', value_len))
		frame_refuse(f, key, "a header value holds a bare CR");
	if (!value)
		return MHD_YES;
	if (strcasecmp(key, MHD_HTTP_HEADER_CONTENT_LENGTH) == 0) {
		if (f->content_length && (f->content_length_len != value_len ||
		                          memcmp(f->content_length, value, value_len) != 0))
			frame_refuse(f, MHD_HTTP_HEADER_CONTENT_LENGTH, "Content-Length is given twice with different values");
		f->content_length = value;
		f->content_length_len = value_len;
	} else if (strcasecmp(key, MHD_HTTP_HEADER_TRANSFER_ENCODING) == 0) {
		f->ntransfer_encoding++;
		f->chunked = strcasecmp(value, "chunked") == 0;
	} else if (strcasecmp(key, MHD_HTTP_HEADER_HOST) == 0) {
		f->host = true;
	}
	return MHD_YES;
}

/* 400 bad_request for framing a server in front could read another way,
 * before anything else is decided. */
static void frame_check(struct exchange *x, struct MHD_Connection *c, const char *version)
{
	struct frame_scan f = {.bad = NULL};
	frame_refuse(&f, NULL, x->target_problem); /* a NULL is no refusal */
	const char *t = x->raw_target;
	/* The target ends one space before the version unless a NUL cut it. */
	if (FRAME_CHECK_NUL && t && version && *version && t + x->raw_target_len + 1 != version)
		frame_refuse(&f, NULL, "the request line holds a NUL byte or extra spaces");
	if (FRAME_CHECK_NUL && version && *version)
		f.gap_from = (uintptr_t)(version + strlen(version));
	MHD_get_connection_values_n(c, MHD_HEADER_KIND, scan_header, &f);
	const union MHD_ConnectionInfo *hs = MHD_get_connection_info(c, MHD_CONNECTION_INFO_REQUEST_HEADER_SIZE);
	if (FRAME_CHECK_NUL && hs && x->req.method &&
	    gap_has_data(f.gap_from, (uintptr_t)(x->req.method + hs->header_size), 4))
		frame_refuse(&f, NULL, "a header value holds a NUL byte");
	if (f.ntransfer_encoding > 1)
		frame_refuse(&f, MHD_HTTP_HEADER_TRANSFER_ENCODING, "Transfer-Encoding is given more than once");
	else if (f.ntransfer_encoding == 1 && !f.chunked)
		frame_refuse(&f, MHD_HTTP_HEADER_TRANSFER_ENCODING, "the only Transfer-Encoding accepted is chunked");
	else if (f.ntransfer_encoding == 1 && f.content_length)
		frame_refuse(&f, MHD_HTTP_HEADER_TRANSFER_ENCODING, "send Content-Length or Transfer-Encoding: chunked, not both");
	if (!f.host && version && strcmp(version, MHD_HTTP_VERSION_1_1) == 0)
		frame_refuse(&f, MHD_HTTP_HEADER_HOST, "an HTTP/1.1 request must have a Host header");
	if (f.bad) {
		char field[96];
		snprintf(field, sizeof field, "%.*s", f.field ? (int)strcspn(f.field, " \t") : 0, f.field ? f.field : "");
		reply_header(&x->req, MHD_HTTP_HEADER_CONNECTION, "close");
		reply_error(&x->req, PROBLEM_BAD_REQUEST, field[0] ? field : NULL, "%s", f.bad);
	}
}

/* ---- connections: deadline and limit ------------------------------------ */

static char timeout_reply[512];   /* the 408 the watchdog writes */
static size_t timeout_reply_len;

/* The raw 408 response, built once from the problem table. */
static void timeout_reply_init(void)
{
	struct problem p = {.kind = PROBLEM_REQUEST_TIMEOUT};
	snprintf(p.detail, sizeof p.detail, "the request line, headers and body must all arrive within --request-timeout");
	cJSON *json = problem_to_json(&p);
	char *body = json ? cJSON_PrintUnformatted(json) : NULL;
	cJSON_Delete(json);
	int n = snprintf(timeout_reply, sizeof timeout_reply,
	                 "HTTP/1.1 408 Request Timeout\r\nConnection: close\r\n"
	                 "Content-Type: application/problem+json\r\nX-Content-Type-Options: nosniff\r\n"
	                 "Content-Length: %zu\r\n\r\n%s", body ? strlen(body) : 0, body ? body : "");
	timeout_reply_len = n > 0 && (size_t)n < sizeof timeout_reply ? (size_t)n : 0;
	free(body);
}

/* Ends a connection whose request is late: a 408 when a request had begun
 * (an idle keep-alive connection is just closed), then a shutdown that
 * makes libmicrohttpd close it. The caller keeps k's socket open: the HTTP
 * thread handling k, or the watchdog under conns_lock. */
static bool conn_expire(struct conn *k)
{
	int want = CONN_RECEIVING;
	if (!atomic_compare_exchange_strong(&k->phase, &want, CONN_EXPIRED))
		return false;
	if (atomic_load(&k->begun) && timeout_reply_len)
		(void)!send(k->fd, timeout_reply, timeout_reply_len, MSG_NOSIGNAL | MSG_DONTWAIT);
	shutdown(k->fd, SHUT_RDWR);
	return true;
}

/* True once the HTTP thread owns the answer to k's request. */
static bool conn_answer(struct conn *k)
{
	int want = CONN_RECEIVING;
	return !k || atomic_compare_exchange_strong(&k->phase, &want, CONN_ANSWERING) || want == CONN_ANSWERING;
}

/* The next request on a kept-alive connection has its own deadline. Till
 * its request line comes the connection is idle, and a proxy keeps idle
 * connections to reuse: they get the idle timeout, if it is longer. */
static void conn_rearm(struct http *h, struct conn *k)
{
	int64_t idle_ms = (int64_t)IDLE_TIMEOUT_S * 1000;
	atomic_store(&k->deadline_ms, clock_mono_ms() + (h->timeout_ms > idle_ms ? h->timeout_ms : idle_ms));
	atomic_store(&k->begun, false);
	int want = CONN_ANSWERING;
	atomic_compare_exchange_strong(&k->phase, &want, CONN_RECEIVING);
}

static bool conn_late(const struct conn *k, int64_t now)
{
	return atomic_load(&k->phase) == CONN_RECEIVING && now >= atomic_load(&k->deadline_ms);
}

static void on_connection(void *cls, struct MHD_Connection *c, void **socket_context,
                          enum MHD_ConnectionNotificationCode code)
{
	struct http *h = cls;
	struct conn *k = *socket_context;
	if (code == MHD_CONNECTION_NOTIFY_STARTED) {
		const union MHD_ConnectionInfo *ci = MHD_get_connection_info(c, MHD_CONNECTION_INFO_CONNECTION_FD);
		k = ci ? calloc(1, sizeof *k) : NULL;
		if (!k)
			return; /* served without a deadline */
		k->fd = ci->connect_fd;
		k->over_limit = atomic_fetch_add(&h->nconns, 1) >= h->max_conns;
		int64_t grace = k->over_limit && h->timeout_ms > OVER_LIMIT_GRACE_MS ? OVER_LIMIT_GRACE_MS : h->timeout_ms;
		atomic_store(&k->deadline_ms, clock_mono_ms() + grace);
		atomic_store(&k->phase, CONN_RECEIVING);
		pthread_mutex_lock(&h->conns_lock);
		k->next = h->conns;
		if (h->conns)
			h->conns->prev = k;
		h->conns = k;
		pthread_mutex_unlock(&h->conns_lock);
		*socket_context = k;
		return;
	}
	if (!k)
		return;
	/* Unlinked before libmicrohttpd closes the socket: the watchdog never
	 * touches a descriptor number that may have been reused. */
	pthread_mutex_lock(&h->conns_lock);
	if (k->prev)
		k->prev->next = k->next;
	else
		h->conns = k->next;
	if (k->next)
		k->next->prev = k->prev;
	pthread_mutex_unlock(&h->conns_lock);
	atomic_fetch_sub(&h->nconns, 1);
	free(k);
	*socket_context = NULL;
}

static void *watchdog_main(void *arg)
{
	struct http *h = arg;
	struct timespec step = {.tv_sec = 0, .tv_nsec = WATCHDOG_STEP_MS * 1000000L};
	while (!atomic_load(&h->watchdog_stop)) {
		nanosleep(&step, NULL);
		int64_t now = clock_mono_ms();
		pthread_mutex_lock(&h->conns_lock);
		for (struct conn *k = h->conns; k; k = k->next)
			if (conn_late(k, now))
				conn_expire(k);
		pthread_mutex_unlock(&h->conns_lock);
	}
	return NULL;
}

static struct conn *conn_of(struct MHD_Connection *c)
{
	const union MHD_ConnectionInfo *ci = MHD_get_connection_info(c, MHD_CONNECTION_INFO_SOCKET_CONTEXT);
	return ci ? ci->socket_context : NULL;
}

/* ---- responses ------------------------------------------------------ */

#define STREAM_BLOCK 4096

/* Content reader of a streamed reply. With nothing to send it suspends the
 * connection from inside the reader (returning 0 unsuspended would make
 * libmicrohttpd call it again at once, in a loop) and lets the handler arm
 * its wake-up; libmicrohttpd calls it again after the resume. */
static ssize_t stream_reader(void *cls, uint64_t pos, char *buf, size_t max)
{
	(void)pos;
	struct exchange *x = cls;
	long n = x->req.stream_fill(&x->req, buf, max);
	if (n < 0)
		return MHD_CONTENT_READER_END_OF_STREAM;
	if (n > 0) {
		x->bytes += (uint64_t)n;
		return (ssize_t)n;
	}
	atomic_fetch_add(&x->http->suspended, 1);
	MHD_suspend_connection(x->req.conn);
	x->req.stream_arm(&x->req);
	return 0;
}

/* True when an If-None-Match value lists etag (weak comparison, as RFC
 * 9110 asks for If-None-Match) or is "*". */
bool http_etag_listed(const char *header, const char *etag)
{
	size_t elen = strlen(etag);
	for (const char *p = header; p && *p;) {
		p += strspn(p, " \t,");
		if (*p == '*')
			return true;
		if (strncmp(p, "W/", 2) == 0)
			p += 2;
		size_t n = strcspn(p, ",");
		while (n > 0 && (p[n - 1] == ' ' || p[n - 1] == '\t'))
			n--;
		if (n == elen && strncmp(p, etag, n) == 0)
			return true;
		p += strcspn(p, ",");
	}
	return false;
}

static void reply_set(struct req *r, int status, const char *ctype, char *body, size_t len, bool is_static);

/* A 200 of an ETag route gets a strong ETag from its body; a request that
 * already holds it gets 304 with no body. */
static void etag_apply(struct exchange *x)
{
	struct req *r = &x->req;
	if (!x->route || !x->route->etag || r->status != 200 || r->stream_fill || !r->reply_body)
		return;
	if (x->shared) {
		memcpy(x->etag, x->shared->etag, sizeof x->etag); /* hashed once for every sharer */
	} else {
		char hex[DIGEST_HEX_LEN + 1];
		digest_sha256_hex(r->reply_body, r->reply_len, hex);
		snprintf(x->etag, sizeof x->etag, "\"%.*s\"", ETAG_HEX, hex);
	}
	if (http_etag_listed(req_header(r, "If-None-Match"), x->etag))
		reply_set(r, 304, NULL, (char *)"", 0, true);
}

/* Headers every reply carries: the request id, the node that answered,
 * nosniff, the ETag, CORS. */
static void add_common_headers(struct exchange *x, struct MHD_Response *resp)
{
	MHD_add_response_header(resp, "X-Request-Id", x->request_id);
	if (x->http->app->store) {
		char node[UUID_LEN + 1];
		store_node_id(x->http->app->store, node);
		MHD_add_response_header(resp, "Jobq-Node", node);
	}
	MHD_add_response_header(resp, "X-Content-Type-Options", "nosniff");
	if (x->etag[0])
		MHD_add_response_header(resp, MHD_HTTP_HEADER_ETAG, x->etag);
	if (x->http->app->cfg->ncors_origins > 0)
		MHD_add_response_header(resp, MHD_HTTP_HEADER_VARY, "Origin");
	if (x->origin) {
		MHD_add_response_header(resp, "Access-Control-Allow-Origin", x->origin);
		MHD_add_response_header(resp, "Access-Control-Expose-Headers", CORS_EXPOSE_HEADERS);
	}
}

static enum MHD_Result send_reply(struct exchange *x, struct MHD_Connection *c)
{
	struct req *r = &x->req;
	struct MHD_Response *resp;
	if (!conn_answer(x->conn))
		return MHD_NO; /* the watchdog has answered 408 */
	etag_apply(x);
	if (r->stream_fill)
		resp = MHD_create_response_from_callback(MHD_SIZE_UNKNOWN, STREAM_BLOCK, stream_reader, x, NULL);
	else if (x->shared)
		resp = MHD_create_response_from_buffer_with_free_callback_cls(r->reply_len, r->reply_body,
		                                                              shared_sent, x->shared);
	else if (r->reply_static)
		resp = MHD_create_response_from_buffer(r->reply_len, r->reply_body, MHD_RESPMEM_PERSISTENT);
	else
		resp = MHD_create_response_from_buffer(r->reply_len, r->reply_body, MHD_RESPMEM_MUST_FREE);
	if (!resp)
		return MHD_NO;
	r->reply_body = NULL; /* the response owns it now */
	x->shared = NULL;     /* and the reference to a shared body */
	x->bytes = r->stream_fill ? 0 : r->reply_len;
	add_common_headers(x, resp);
	if (r->content_type)
		MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, r->content_type);
	for (int i = 0; i < r->nheaders; i++)
		MHD_add_response_header(resp, r->headers[i].name, r->headers[i].value);
	enum MHD_Result ok = MHD_queue_response(c, (unsigned)r->status, resp);
	MHD_destroy_response(resp);
	x->sent = true;
	return ok;
}

static struct exchange *exchange_new(struct http *h, struct MHD_Connection *c)
{
	struct exchange *x = calloc(1, sizeof *x);
	if (!x)
		return NULL;
	atomic_fetch_add(&h->active, 1);
	x->http = h;
	x->conn = conn_of(c);
	x->began = metrics_clock();
	x->req.conn = c;
	snprintf(x->client, sizeof x->client, "-");
	clock_gettime(CLOCK_MONOTONIC, &x->started);
	return x;
}

/* libmicrohttpd's URI log callback: called once the request line is in,
 * with the target before unescaping (so a %00 can still be seen). Its
 * return value is the request's con_cls. */
static void *on_request_line(void *cls, const char *uri, struct MHD_Connection *c)
{
	struct http *h = cls;
	struct exchange *x = exchange_new(h, c);
	if (!x)
		return NULL;
	if (x->conn) {
		/* From the request line on, the rest must come within the timeout. */
		int64_t until = clock_mono_ms() + h->timeout_ms;
		if (until < atomic_load(&x->conn->deadline_ms))
			atomic_store(&x->conn->deadline_ms, until);
		atomic_store(&x->conn->begun, true);
	}
	if (!uri)
		return x;
	/* Read now: the library unescapes the target in place afterwards. */
	x->raw_target = uri;
	x->raw_target_len = strlen(uri);
	for (size_t i = 0; i < x->raw_target_len && !x->target_problem; i++) {
		unsigned char ch = (unsigned char)uri[i];
		if (ch <= ' ' || ch == 0x7f)
			x->target_problem = "the request target holds a space or a control character";
		else if (ch == '%' && uri[i + 1] == '0' && uri[i + 2] == '0')
			x->target_problem = "the request target holds an encoded NUL (%00)";
	}
	return x;
}

/* The first call, with the headers: settle who asks, then refuse what can
 * be refused before the body. */
static void first_call(struct exchange *x, struct MHD_Connection *c, const char *url, const char *method,
                       const char *version)
{
	x->seen = true;
	x->req.app = x->http->app;
	x->req.method = method;
	x->req.path = url;
	identify(x, c);
	if (x->conn && x->conn->over_limit) {
		reply_header(&x->req, "Retry-After", "1");
		reply_header(&x->req, MHD_HTTP_HEADER_CONNECTION, "close");
		reply_error(&x->req, PROBLEM_TOO_MANY_CONNECTIONS, NULL,
		            "jobqd serves %d connections at most (--max-connections); try again shortly",
		            x->http->max_conns);
		return;
	}
	if (refuse_query_nul(x, c))
		return;
	frame_check(x, c, version);
	if (x->req.replied)
		return;
	if (strcmp(method, "OPTIONS") == 0 && req_header(&x->req, "Origin")) {
		preflight(x);
		return;
	}
	route_pick(x);
	if (x->route)
		authorize(x);
	if (x->route && !x->req.replied)
		refuse_unknown_query(x, c);
	if (x->route && !x->req.replied)
		early_checks(x, c);
}

static enum MHD_Result on_access(void *cls, struct MHD_Connection *c, const char *url,
                                 const char *method, const char *version,
                                 const char *upload, size_t *upload_size, void **con_cls)
{
	struct http *h = cls;
	struct exchange *x = *con_cls;
	if (!x) {
		x = exchange_new(h, c);
		if (!x)
			return MHD_NO;
		*con_cls = x;
	}
	if (!x->seen) {
		first_call(x, c, url, method, version);
		return x->req.replied ? send_reply(x, c) : MHD_YES;
	}
	if (*upload_size) {
		/* A body that trickles in meets the deadline here, between the
		 * watchdog's rounds. */
		if (x->conn && conn_late(x->conn, clock_mono_ms()) && conn_expire(x->conn))
			return MHD_NO;
		if (!x->sent)
			body_append(x, upload, *upload_size);
		*upload_size = 0;
		return MHD_YES;
	}
	if (x->sent)
		return MHD_YES;
	if (x->req.on_resume) {
		req_fn fn = x->req.on_resume;
		x->req.on_resume = NULL;
		fn(&x->req);
	} else if (!x->handled) {
		/* The whole request is in: from here on the handler's time
		 * (long-polls, streams) is not bounded by the deadline. */
		if (!conn_answer(x->conn))
			return MHD_NO;
		x->handled = true;
		if (x->too_large)
			reply_error(&x->req, PROBLEM_BODY_TOO_LARGE, NULL, "the body is larger than the limit of %zu bytes",
			            h->app->cfg->max_body);
		else
			x->route->fn(&x->req);
	}
	if (x->req.on_resume)
		return MHD_YES; /* suspended */
	if (!x->req.replied)
		reply_error(&x->req, PROBLEM_INTERNAL, NULL, "the handler gave no reply");
	return send_reply(x, c);
}

/* The request line of the log: one per request, at info. */
static void log_request(const struct exchange *x, int code)
{
	if (log_threshold < LOG_INFO)
		return;
	struct timespec now;
	clock_gettime(CLOCK_MONOTONIC, &now);
	double ms = (double)(now.tv_sec - x->started.tv_sec) * 1e3 +
	            (double)(now.tv_nsec - x->started.tv_nsec) / 1e6;
	char status[16], bytes[32], duration[32];
	snprintf(status, sizeof status, "%d", code);
	snprintf(bytes, sizeof bytes, "%llu", (unsigned long long)x->bytes);
	snprintf(duration, sizeof duration, "%.3f", ms);
	const struct log_field f[] = {
		{"method", x->req.method ? x->req.method : "-", false},
		{"route", x->route_pattern ? x->route_pattern : "-", false},
		{"path", x->req.path ? x->req.path : "-", false},
		{"status", status, true},
		{"bytes", bytes, true},
		{"duration_ms", duration, true},
		{"client", x->client, false},
		{"request_id", x->request_id[0] ? x->request_id : "-", false},
	};
	log_fields(LOG_INFO, "request", f, sizeof f / sizeof f[0]);
}

static void on_completed(void *cls, struct MHD_Connection *c, void **con_cls,
                         enum MHD_RequestTerminationCode why)
{
	(void)why;
	struct http *h = cls;
	struct exchange *x = *con_cls;
	if (!x)
		return;
	*con_cls = NULL;
	/* What was sent: ours, the watchdog's 408, or one libmicrohttpd wrote
	 * itself (a request it refused before the access handler). */
	int code = x->sent ? x->req.status : 0;
	bool expired = x->conn && atomic_load(&x->conn->phase) == CONN_EXPIRED;
	const union MHD_ConnectionInfo *ci = x->sent || expired ? NULL
	                                   : MHD_get_connection_info(c, MHD_CONNECTION_INFO_HTTP_STATUS);
	if (expired && !x->sent)
		code = 408;
	else if (ci)
		code = (int)ci->http_status;
	log_request(x, code);
	if (code && x->seen)
		metrics_http(h->app->metrics, x->req.method, x->route ? x->route->pattern : NULL, code,
		             metrics_clock() - x->began);
	if (x->conn && !expired)
		conn_rearm(h, x->conn);
	if (x->req.ctx_free)
		x->req.ctx_free(x->req.ctx);
	if (!x->req.reply_static)
		free(x->req.reply_body);
	req_shared_put(x->shared);
	for (int i = 0; i < x->req.nheaders; i++) {
		free(x->req.headers[i].name);
		free(x->req.headers[i].value);
	}
	free(x->req.body);
	free(x->param);
	free(x);
	atomic_fetch_sub(&h->active, 1);
}

/* ---- req.h ---------------------------------------------------------- */

const char *req_header(struct req *r, const char *name)
{
	return MHD_lookup_connection_value(r->conn, MHD_HEADER_KIND, name);
}

const char *req_query(struct req *r, const char *name)
{
	return MHD_lookup_connection_value(r->conn, MHD_GET_ARGUMENT_KIND, name);
}

static void reply_set(struct req *r, int status, const char *ctype, char *body, size_t len, bool is_static)
{
	struct exchange *x = (struct exchange *)r;
	req_shared_put(x->shared);
	x->shared = NULL;
	if (!r->reply_static)
		free(r->reply_body);
	r->replied = true;
	r->status = status;
	r->content_type = ctype;
	r->reply_body = body;
	r->reply_len = len;
	r->reply_static = is_static;
}

static const char oom_body[] =
	"{\"type\":\"urn:jobq:problem:internal\",\"title\":\"Internal error\",\"status\":500,"
	"\"detail\":\"out of memory\",\"code\":\"internal\"}";

static void reply_body_json(struct req *r, int status, const char *ctype, cJSON *json)
{
	char *text = json ? cJSON_PrintUnformatted(json) : NULL;
	cJSON_Delete(json);
	if (!text) {
		reply_set(r, 500, "application/problem+json", (char *)oom_body, sizeof oom_body - 1, true);
		return;
	}
	reply_set(r, status, ctype, text, strlen(text), false);
}

void reply_json(struct req *r, int status, cJSON *json)
{
	reply_body_json(r, status, "application/json", json);
}

void reply_problem(struct req *r, const struct problem *p)
{
	if (p->kind == PROBLEM_INTERNAL)
		log_error("%s %s: %s", r->method, r->path, p->detail);
	reply_body_json(r, problem_info(p->kind)->status, "application/problem+json", problem_to_json(p));
}

void reply_error(struct req *r, enum problem_kind kind, const char *field, const char *fmt, ...)
{
	struct problem p = {.kind = kind};
	snprintf(p.field, sizeof p.field, "%s", field ? field : "");
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(p.detail, sizeof p.detail, fmt, ap);
	va_end(ap);
	reply_problem(r, &p);
}

void reply_stream(struct req *r, const char *content_type, req_fill_fn fill, req_fn arm)
{
	reply_set(r, 200, content_type, NULL, 0, true);
	r->stream_fill = fill;
	r->stream_arm = arm;
}

void reply_static(struct req *r, int status, const char *content_type, const char *body, size_t len)
{
	reply_set(r, status, content_type, (char *)body, len, true);
}

void reply_text(struct req *r, int status, const char *content_type, char *body, size_t len)
{
	reply_set(r, status, content_type, body, len, false);
}

void reply_shared(struct req *r, int status, const char *content_type, struct req_shared *s)
{
	reply_set(r, status, content_type, s->body, s->len, true);
	((struct exchange *)r)->shared = s;
}

unsigned req_connections(struct req *r)
{
	struct exchange *x = (struct exchange *)r;
	struct MHD_Daemon *daemon = x->http->daemon;
	const union MHD_DaemonInfo *info =
		daemon ? MHD_get_daemon_info(daemon, MHD_DAEMON_INFO_CURRENT_CONNECTIONS) : NULL;
	return info ? info->num_connections : 0;
}

void reply_header(struct req *r, const char *name, const char *fmt, ...)
{
	if (r->nheaders == REQ_MAX_HEADERS)
		return;
	char value[256];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(value, sizeof value, fmt, ap);
	va_end(ap);
	struct req_header *hd = &r->headers[r->nheaders];
	hd->name = strdup(name);
	hd->value = strdup(value);
	if (!hd->name || !hd->value) {
		free(hd->name);
		free(hd->value);
		return;
	}
	r->nheaders++;
}

void req_suspend(struct req *r, req_fn on_resume)
{
	struct exchange *x = (struct exchange *)r;
	r->on_resume = on_resume;
	atomic_fetch_add(&x->http->suspended, 1);
	MHD_suspend_connection(r->conn);
}

void req_resume(struct req *r)
{
	struct exchange *x = (struct exchange *)r;
	atomic_fetch_sub(&x->http->suspended, 1);
	MHD_resume_connection(r->conn);
}

void req_resume_cb(void *r)
{
	req_resume(r);
}

/* ---- daemon --------------------------------------------------------- */

static void mhd_log(void *cls, const char *fmt, va_list ap)
{
	(void)cls;
	char msg[512];
	vsnprintf(msg, sizeof msg, fmt, ap);
	msg[strcspn(msg, "\n")] = '\0';
	log_debug("http: %s", msg); /* about clients: closed streams, bad requests */
}

/* Creates, binds and listens on host:port; fills the printable address. */
static int listen_on(const char *host, int port, char *shown, size_t shown_len)
{
	struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM,
	                         .ai_flags = AI_PASSIVE | AI_NUMERICSERV};
	struct addrinfo *res = NULL;
	char portstr[16];
	snprintf(portstr, sizeof portstr, "%d", port);
	int rc = getaddrinfo(host, portstr, &hints, &res);
	if (rc != 0) {
		log_error("cannot resolve listen address %s: %s", host, gai_strerror(rc));
		return -1;
	}
	int fd = -1;
	for (struct addrinfo *ai = res; ai && fd < 0; ai = ai->ai_next) {
		fd = socket(ai->ai_family, ai->ai_socktype | SOCK_CLOEXEC | SOCK_NONBLOCK, ai->ai_protocol);
		if (fd < 0)
			continue;
		int one = 1;
		setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
		if (ai->ai_family == AF_INET6)
			setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof one);
		if (bind(fd, ai->ai_addr, ai->ai_addrlen) != 0 || listen(fd, LISTEN_BACKLOG) != 0) {
			log_errno("cannot listen on %s:%d", host, port);
			close(fd);
			fd = -1;
		}
	}
	freeaddrinfo(res);
	if (fd < 0)
		return -1;
	union {
		struct sockaddr sa;
		struct sockaddr_in in;
		struct sockaddr_in6 in6;
		struct sockaddr_storage ss;
	} a = {.sa.sa_family = AF_UNSPEC};  /* stays so if getsockname fails */
	socklen_t sl = sizeof a;
	char addr[INET6_ADDRSTRLEN] = "?";
	int actual = port;
	if (getsockname(fd, &a.sa, &sl) == 0) {
		if (a.sa.sa_family == AF_INET6) {
			inet_ntop(AF_INET6, &a.in6.sin6_addr, addr, sizeof addr);
			actual = ntohs(a.in6.sin6_port);
		} else {
			inet_ntop(AF_INET, &a.in.sin_addr, addr, sizeof addr);
			actual = ntohs(a.in.sin_port);
		}
	}
	snprintf(shown, shown_len, a.sa.sa_family == AF_INET6 ? "[%s]:%d" : "%s:%d", addr, actual);
	return fd;
}

/* Each connection costs a descriptor: lift the soft limit to the hard one
 * and size the library's connection limit below it: --max-connections
 * plus the headroom that still gets a 503. */
static unsigned connection_limit(int max_conns)
{
	rlim_t want = (rlim_t)max_conns + CONNECTION_HEADROOM((rlim_t)max_conns);
	struct rlimit rl;
	if (getrlimit(RLIMIT_NOFILE, &rl) != 0)
		return 1000;
	if (rl.rlim_cur < rl.rlim_max) {
		rl.rlim_cur = rl.rlim_max;
		setrlimit(RLIMIT_NOFILE, &rl);
		getrlimit(RLIMIT_NOFILE, &rl);
	}
	rlim_t room = rl.rlim_cur > 256 ? rl.rlim_cur - 128 : rl.rlim_cur / 2;
	return room < want ? (unsigned)room : (unsigned)want;
}

unsigned http_threads(void)
{
	long cores = sysconf(_SC_NPROCESSORS_ONLN);
	return cores > 0 ? (unsigned)cores : 1;
}

int http_start(struct app *app, const char *host, int port, struct http **out)
{
	struct http *h = calloc(1, sizeof *h);
	if (!h)
		return -1;
	h->app = app;
	h->quiesced_fd = -1;
	h->timeout_ms = (int64_t)(app->cfg->request_timeout_s * 1000);
	h->max_conns = app->cfg->max_connections;
	pthread_mutex_init(&h->conns_lock, NULL);
	timeout_reply_init();
	char shown[300];
	int fd = listen_on(host, port, shown, sizeof shown);
	if (fd < 0) {
		free(h);
		return -1;
	}
	unsigned threads = http_threads();
	unsigned limit = connection_limit(h->max_conns);
	unsigned headroom = CONNECTION_HEADROOM(limit) < limit / 2 ? CONNECTION_HEADROOM(limit) : limit / 2;
	if (limit < (unsigned)h->max_conns + CONNECTION_HEADROOM((unsigned)h->max_conns)) {
		/* Too few descriptors: keep room for the 503s below them. */
		h->max_conns = (int)(limit - headroom);
		log_warn("only %u descriptors for connections: serving %d at once, not %d (--max-connections)",
		         limit, h->max_conns, app->cfg->max_connections);
	}
	h->daemon = MHD_start_daemon(
		MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_EPOLL | MHD_ALLOW_SUSPEND_RESUME | MHD_USE_ERROR_LOG,
		0, NULL, NULL, on_access, h,
		MHD_OPTION_EXTERNAL_LOGGER, mhd_log, NULL,
		MHD_OPTION_LISTEN_SOCKET, fd,
		MHD_OPTION_THREAD_POOL_SIZE, threads,
		MHD_OPTION_CONNECTION_LIMIT, limit,
		MHD_OPTION_CONNECTION_MEMORY_LIMIT, (size_t)CONNECTION_MEMORY,
		MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)IDLE_TIMEOUT_S,
		MHD_OPTION_NOTIFY_COMPLETED, on_completed, h,
		MHD_OPTION_NOTIFY_CONNECTION, on_connection, h,
		MHD_OPTION_URI_LOG_CALLBACK, on_request_line, h,
		MHD_OPTION_END);
	if (!h->daemon) {
		log_error("cannot start the HTTP server on %s", shown);
		close(fd);
		pthread_mutex_destroy(&h->conns_lock);
		free(h);
		return -1;
	}
	if (pthread_create(&h->watchdog, NULL, watchdog_main, h) != 0) {
		log_errno("cannot start the request watchdog");
		http_stop(h);
		return -1;
	}
	h->watchdog_started = true;
	fprintf(stderr, "jobqd: listening on http://%s\n", shown);
	*out = h;
	return 0;
}

/* In thread-pool epoll mode each worker removes the listen socket from its
 * own epoll set after quiesce, in its own time: closing the socket before
 * MHD_stop_daemon makes that removal fail, and libmicrohttpd aborts. */
void http_quiesce(struct http *h)
{
	MHD_socket fd = MHD_quiesce_daemon(h->daemon);
	if (fd != MHD_INVALID_SOCKET)
		h->quiesced_fd = fd;
}

void http_drain(struct http *h, int64_t max_ms)
{
	int64_t until = clock_mono_ms() + max_ms;
	struct timespec step = {.tv_sec = 0, .tv_nsec = 5 * 1000000};
	while ((atomic_load(&h->suspended) > 0 || atomic_load(&h->active) > 0) &&
	       clock_mono_ms() < until)
		nanosleep(&step, NULL);
}

void http_stop(struct http *h)
{
	if (!h)
		return;
	if (atomic_load(&h->suspended) > 0)
		log_error("%d request(s) still suspended at shutdown", atomic_load(&h->suspended));
	if (h->watchdog_started) {
		atomic_store(&h->watchdog_stop, true);
		pthread_join(h->watchdog, NULL);
	}
	MHD_stop_daemon(h->daemon);
	if (h->quiesced_fd >= 0)
		close(h->quiesced_fd);
	pthread_mutex_destroy(&h->conns_lock);
	free(h);
}
