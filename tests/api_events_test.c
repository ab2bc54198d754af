/* Black-box API tests for the Server-Sent Event streams (issue 5): the
 * per-job stream GET /v1/jobs/{id}/events, the global stream GET /v1/events
 * with its filters, Last-Event-ID resume and replay, heartbeats, cancel,
 * many concurrent streams and clients that hang up. Streams are read by
 * libcurl multi handles on a reader thread while the test acts; each test
 * starts its own jobqd via tests/harness.c and every wait is bounded. */
#include <dirent.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/wait.h>
#include <time.h>

#include <check.h>
#include <cjson/cJSON.h>
#include <curl/curl.h>

#include "harness.h"

#define ARGS(...) ((const char *const[]){ __VA_ARGS__, NULL })
#define UNKNOWN_ID "01890000-0000-7000-8000-000000000000"
#define TEST_TIMEOUT_S 60
#define tcase(s, name) harness_tcase((s), (name), TEST_TIMEOUT_S)
#define POLL_MS 5              /* reader loop and waits poll this often */
#define MANY_STREAMS 200
#define MANY_THREADS_SLACK 4   /* threads jobqd may add for 199 more streams */
#define WAITERS 50             /* long-polls, and as many streams, that hang up */
#define FD_SLACK 10

/* ---- small helpers ---- */

/* Entries of /proc/<pid>/<sub> (threads under "task", descriptors under "fd"). */
static int proc_count(pid_t pid, const char *sub)
{
	char path[64];
	struct dirent *de;
	DIR *dir;
	int n = 0;

	snprintf(path, sizeof path, "/proc/%d/%s", (int)pid, sub);
	dir = opendir(path);
	ck_assert_msg(dir != NULL, "cannot open %s", path);
	while ((de = readdir(dir)) != NULL)
		if (de->d_name[0] != '.')
			n++;
	closedir(dir);
	return n;
}

/* ---- SSE streams: a group of transfers on one reader thread ----
 * The reader thread owns the curl handles; every field a test reads while
 * the group runs is guarded by group.mu. After group_join the test reads
 * freely. */

struct sbuf {
	char *p;
	size_t len, cap;
};

static void sbuf_add(struct sbuf *b, const char *s, size_t n)
{
	if (b->len + n + 1 > b->cap) {
		size_t cap = b->cap ? b->cap : 256;

		while (cap < b->len + n + 1)
			cap *= 2;
		b->p = realloc(b->p, cap);
		if (b->p == NULL)
			abort();
		b->cap = cap;
	}
	memcpy(b->p + b->len, s, n);
	b->len += n;
	b->p[b->len] = '\0';
}

struct sse_event {
	long long id;     /* -1 when the event had no numeric "id:" */
	char name[32];    /* the "event:" value, "" when absent */
	char *data;       /* "data:" lines joined with '\n' */
	cJSON *json;      /* data parsed, or NULL */
};

struct stream;
typedef int (*stream_pred)(const struct stream *s, const void *arg);

struct stream {
	/* set before the group starts */
	char path[512];
	char last_id[32];          /* Last-Event-ID value; "" sends none */
	stream_pred done;          /* the client hangs up once it is true */
	const void *done_arg;
	/* filled by the reader thread */
	struct group *g;
	CURL *easy;
	struct curl_slist *hl;
	struct sbuf headers, body;
	size_t line_off;           /* body bytes already split into lines */
	char cur_id[32], cur_name[32];
	struct sbuf cur_data;
	int cur_has;               /* the pending event has a field */
	struct sse_event *ev;
	size_t nev, cap;
	int comments, keepalives;  /* comment lines; those reading ": keep-alive" */
	int got_headers;
	int finished;              /* the transfer is over */
	int hung_up;               /* ... because the client ended it */
	int timed_out;             /* ... because the group's bound passed */
	int close_req;
	CURLcode rc;               /* CURLE_OK: the server ended the response */
	long status;
};

struct group {
	pthread_mutex_t mu;
	pthread_t th;
	int started;
	char base[64];
	struct stream *s;
	size_t n, nfinished;
	double bound_ms;           /* the reader ends every transfer after this */
	int close_all;
};

static struct group *group_new(const struct jobqd *d, size_t n, double bound_ms)
{
	struct group *g = calloc(1, sizeof *g);
	size_t i;

	ck_assert_msg(g != NULL, "out of memory");
	g->s = calloc(n, sizeof *g->s);
	ck_assert_msg(g->s != NULL, "out of memory");
	g->n = n;
	g->bound_ms = bound_ms;
	snprintf(g->base, sizeof g->base, "%s", d->base);
	pthread_mutex_init(&g->mu, NULL);
	for (i = 0; i < n; i++)
		g->s[i].g = g;
	return g;
}

static void stream_set(struct group *g, size_t i, const char *path,
		       const char *last_id, stream_pred done, const void *arg)
{
	struct stream *s = &g->s[i];

	snprintf(s->path, sizeof s->path, "%s", path);
	snprintf(s->last_id, sizeof s->last_id, "%s", last_id ? last_id : "");
	s->done = done;
	s->done_arg = arg;
}

static void group_free(struct group *g)
{
	size_t i, k;

	if (g == NULL)
		return;
	for (i = 0; i < g->n; i++) {
		struct stream *s = &g->s[i];

		for (k = 0; k < s->nev; k++) {
			free(s->ev[k].data);
			cJSON_Delete(s->ev[k].json);
		}
		free(s->ev);
		free(s->headers.p);
		free(s->body.p);
		free(s->cur_data.p);
	}
	pthread_mutex_destroy(&g->mu);
	free(g->s);
	free(g);
}

/* Called with g->mu held. */
static void stream_dispatch(struct stream *s)
{
	struct sse_event *e;
	char *end = NULL;

	if (!s->cur_has)
		return;
	if (s->nev == s->cap) {
		s->cap = s->cap ? s->cap * 2 : 16;
		s->ev = realloc(s->ev, s->cap * sizeof *s->ev);
		if (s->ev == NULL)
			abort();
	}
	e = &s->ev[s->nev++];
	e->id = -1;
	if (s->cur_id[0] != '\0') {
		e->id = strtoll(s->cur_id, &end, 10);
		if (*end != '\0')
			e->id = -1;
	}
	snprintf(e->name, sizeof e->name, "%s", s->cur_name);
	e->data = strdup(s->cur_data.p != NULL ? s->cur_data.p : "");
	if (e->data == NULL)
		abort();
	e->json = cJSON_Parse(e->data);
	s->cur_id[0] = '\0';
	s->cur_name[0] = '\0';
	s->cur_data.len = 0;
	if (s->cur_data.p != NULL)
		s->cur_data.p[0] = '\0';
	s->cur_has = 0;
}

/* One line of the event stream (without its end of line). */
static void stream_line(struct stream *s, const char *line, size_t n)
{
	const char *colon, *v;
	size_t fl, vl;

	if (n == 0) {
		stream_dispatch(s);
		return;
	}
	if (line[0] == ':') {
		s->comments++;
		v = line + 1;
		vl = n - 1;
		if (vl > 0 && *v == ' ') {
			v++;
			vl--;
		}
		if (vl == strlen("keep-alive") && memcmp(v, "keep-alive", vl) == 0)
			s->keepalives++;
		return;
	}
	colon = memchr(line, ':', n);
	fl = colon != NULL ? (size_t)(colon - line) : n;
	v = colon != NULL ? colon + 1 : line + n;
	vl = (size_t)(line + n - v);
	if (vl > 0 && *v == ' ') {
		v++;
		vl--;
	}
	if (fl == 2 && memcmp(line, "id", 2) == 0) {
		snprintf(s->cur_id, sizeof s->cur_id, "%.*s", (int)vl, v);
	} else if (fl == 5 && memcmp(line, "event", 5) == 0) {
		snprintf(s->cur_name, sizeof s->cur_name, "%.*s", (int)vl, v);
	} else if (fl == 4 && memcmp(line, "data", 4) == 0) {
		if (s->cur_data.len > 0)
			sbuf_add(&s->cur_data, "\n", 1);
		sbuf_add(&s->cur_data, v, vl);
	} else {
		return; /* retry: or an unknown field */
	}
	s->cur_has = 1;
}

static size_t on_stream_body(char *data, size_t size, size_t nmemb, void *ud)
{
	struct stream *s = ud;
	size_t n = size * nmemb;
	int stop = 0;

	pthread_mutex_lock(&s->g->mu);
	sbuf_add(&s->body, data, n);
	for (;;) {
		char *start = s->body.p + s->line_off;
		char *eol = memchr(start, '\n', s->body.len - s->line_off);
		size_t len;

		if (eol == NULL)
			break;
		len = (size_t)(eol - start);
		if (len > 0 && start[len - 1] == '\r')
			len--;
		stream_line(s, start, len);
		s->line_off = (size_t)(eol - s->body.p) + 1;
		if (s->done != NULL && s->done(s, s->done_arg)) {
			stop = 1;
			break;
		}
	}
	if (stop)
		s->hung_up = 1;
	pthread_mutex_unlock(&s->g->mu);
	return stop ? 0 : n;
}

static size_t on_stream_header(char *data, size_t size, size_t nmemb, void *ud)
{
	struct stream *s = ud;
	size_t n = size * nmemb;

	pthread_mutex_lock(&s->g->mu);
	if (n >= 5 && strncmp(data, "HTTP/", 5) == 0)
		s->headers.len = 0;
	sbuf_add(&s->headers, data, n);
	if ((n == 2 && data[0] == '\r') || (n == 1 && data[0] == '\n'))
		s->got_headers = 1;
	pthread_mutex_unlock(&s->g->mu);
	return n;
}

static void stream_easy(struct stream *s, CURLM *m)
{
	char url[700], hdr[64];

	snprintf(url, sizeof url, "%s%s", s->g->base, s->path);
	s->easy = curl_easy_init();
	if (s->easy == NULL)
		abort();
	s->hl = curl_slist_append(NULL, "Accept: text/event-stream");
	if (s->last_id[0] != '\0') {
		snprintf(hdr, sizeof hdr, "Last-Event-ID: %s", s->last_id);
		s->hl = curl_slist_append(s->hl, hdr);
	}
	curl_easy_setopt(s->easy, CURLOPT_URL, url);
	curl_easy_setopt(s->easy, CURLOPT_PROXY, "");
	curl_easy_setopt(s->easy, CURLOPT_NOPROXY, "*");
	curl_easy_setopt(s->easy, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(s->easy, CURLOPT_FORBID_REUSE, 1L);
	curl_easy_setopt(s->easy, CURLOPT_CONNECTTIMEOUT_MS, 5000L);
	curl_easy_setopt(s->easy, CURLOPT_TIMEOUT_MS, (long)s->g->bound_ms + 1000L);
	curl_easy_setopt(s->easy, CURLOPT_HTTPHEADER, s->hl);
	curl_easy_setopt(s->easy, CURLOPT_WRITEFUNCTION, on_stream_body);
	curl_easy_setopt(s->easy, CURLOPT_WRITEDATA, s);
	curl_easy_setopt(s->easy, CURLOPT_HEADERFUNCTION, on_stream_header);
	curl_easy_setopt(s->easy, CURLOPT_HEADERDATA, s);
	curl_easy_setopt(s->easy, CURLOPT_PRIVATE, s);
	curl_multi_add_handle(m, s->easy);
}

/* Ends the transfer of s (closing its connection); g->mu held. */
static void stream_finish(struct stream *s, CURLM *m, CURLcode rc)
{
	if (s->finished)
		return;
	curl_easy_getinfo(s->easy, CURLINFO_RESPONSE_CODE, &s->status);
	curl_multi_remove_handle(m, s->easy);
	curl_easy_cleanup(s->easy);
	curl_slist_free_all(s->hl);
	s->easy = NULL;
	s->hl = NULL;
	s->rc = rc;
	s->finished = 1;
	s->g->nfinished++;
}

static void *group_main(void *arg)
{
	struct group *g = arg;
	CURLM *m = curl_multi_init();
	double end = mono_ms() + g->bound_ms;
	size_t i;
	int left = 1, still;

	if (m == NULL)
		abort();
	for (i = 0; i < g->n; i++)
		stream_easy(&g->s[i], m);
	while (left) {
		CURLMsg *msg;
		int q;

		curl_multi_perform(m, &still);
		pthread_mutex_lock(&g->mu);
		while ((msg = curl_multi_info_read(m, &q)) != NULL) {
			struct stream *s = NULL;

			if (msg->msg != CURLMSG_DONE)
				continue;
			curl_easy_getinfo(msg->easy_handle, CURLINFO_PRIVATE, (char **)&s);
			stream_finish(s, m, msg->data.result);
		}
		for (i = 0; i < g->n; i++) {
			struct stream *s = &g->s[i];

			if (s->finished)
				continue;
			if (g->close_all || s->close_req) {
				s->hung_up = 1;
				stream_finish(s, m, CURLE_ABORTED_BY_CALLBACK);
			} else if (mono_ms() > end) {
				s->timed_out = 1;
				stream_finish(s, m, CURLE_OPERATION_TIMEDOUT);
			}
		}
		left = g->nfinished < g->n;
		pthread_mutex_unlock(&g->mu);
		if (left)
			curl_multi_poll(m, NULL, 0, POLL_MS, NULL);
	}
	curl_multi_cleanup(m);
	return NULL;
}

static void group_start(struct group *g)
{
	ck_assert_msg(pthread_create(&g->th, NULL, group_main, g) == 0,
		      "pthread_create failed");
	g->started = 1;
}

/* Returns once every transfer is over (the reader bounds that). */
static void group_join(struct group *g)
{
	if (g->started)
		pthread_join(g->th, NULL);
	g->started = 0;
}

static void group_run(struct group *g)
{
	group_start(g);
	group_join(g);
}

static void group_close(struct group *g)
{
	pthread_mutex_lock(&g->mu);
	g->close_all = 1;
	pthread_mutex_unlock(&g->mu);
}

/* The events of s as "id event data" lines, for failure messages. */
static const char *dump(const struct stream *s)
{
	static char bufs[2][6000];  /* two, for messages that show two streams */
	static int turn;
	char *out = bufs[turn ^= 1];
	size_t len = 0, i;

	out[0] = '\0';
	len += (size_t)snprintf(out, sizeof bufs[0],
				"[%s: status %ld, rc %d%s%s%s, %zu events, %d keep-alives]\n",
				s->path, s->status, (int)s->rc,
				s->finished ? "" : ", open",
				s->hung_up ? ", client hung up" : "",
				s->timed_out ? ", TIMED OUT" : "", s->nev,
				s->keepalives);
	for (i = 0; i < s->nev && len < sizeof bufs[0] - 1; i++)
		len += (size_t)snprintf(out + len, sizeof bufs[0] - len,
					"  %lld %s %.300s\n", s->ev[i].id,
					s->ev[i].name, s->ev[i].data);
	if (s->nev == 0 && s->body.len > 0 && len < sizeof bufs[0] - 1)
		snprintf(out + len, sizeof bufs[0] - len, "  body: %.800s\n",
			 s->body.p);
	return out;
}

/* Waits (bounded) until pred holds for stream i; fails the test with the
 * stream's events otherwise. */
static void stream_wait(struct group *g, size_t i, stream_pred pred,
			const void *arg, double bound_ms, const char *what)
{
	double end = mono_ms() + bound_ms;
	char msg[6200];
	int ok;

	for (;;) {
		pthread_mutex_lock(&g->mu);
		ok = pred(&g->s[i], arg);
		if (ok || g->s[i].finished || mono_ms() > end) {
			if (!ok)
				snprintf(msg, sizeof msg, "%s", dump(&g->s[i]));
			pthread_mutex_unlock(&g->mu);
			break;
		}
		pthread_mutex_unlock(&g->mu);
		nap_ms(POLL_MS);
	}
	ck_assert_msg(ok, "stream %zu never showed %s within %.0f ms:\n%s", i,
		      what, bound_ms, msg);
}

/* Same for every stream of g from first on. */
static void group_wait(struct group *g, size_t first, stream_pred pred,
		       const void *arg, double bound_ms, const char *what)
{
	double end = mono_ms() + bound_ms;
	size_t i;

	for (i = first; i < g->n; i++)
		stream_wait(g, i, pred, arg,
			    end - mono_ms() > 0 ? end - mono_ms() : 0, what);
}

/* ---- predicates (called with the group's mutex held) ---- */

static int has_events(const struct stream *s, const void *arg)
{
	return s->nev >= *(const size_t *)arg;
}

static int has_headers(const struct stream *s, const void *arg)
{
	(void)arg;
	return s->got_headers;
}

static int has_keepalives(const struct stream *s, const void *arg)
{
	return s->keepalives >= *(const int *)arg;
}

/* A "job" event whose state is arg. */
static int has_state(const struct stream *s, const void *arg)
{
	size_t i;

	for (i = 0; i < s->nev; i++)
		if (str_eq(s->ev[i].name, "job") &&
		    str_eq(jstr(s->ev[i].json, "state"), arg))
			return 1;
	return 0;
}

/* A terminal "job" event for each id of the NULL-terminated list arg. */
static int has_terminals(const struct stream *s, const void *arg)
{
	const char *const *ids = arg;
	size_t i, k;

	for (k = 0; ids[k] != NULL; k++) {
		int seen = 0;

		for (i = 0; i < s->nev && !seen; i++)
			seen = str_eq(s->ev[i].name, "job") &&
			       str_eq(jstr(s->ev[i].json, "id"), ids[k]) &&
			       is_terminal(jstr(s->ev[i].json, "state"));
		if (!seen)
			return 0;
	}
	return 1;
}

/* ---- reading one stream synchronously ---- */

static struct group *read_stream(const struct jobqd *d, const char *path,
				 const char *last_id, stream_pred done,
				 const void *arg, double bound_ms)
{
	struct group *g = group_new(d, 1, bound_ms);

	stream_set(g, 0, path, last_id, done, arg);
	group_run(g);
	return g;
}

/* The finished stream s as a harness response (for assert_problem). */
static void stream_resp(const struct stream *s, struct resp *r)
{
	memset(r, 0, sizeof *r);
	r->status = s->rc == CURLE_OK ? s->status : 0;
	if (s->rc != CURLE_OK)
		snprintf(r->error, sizeof r->error,
			 "transfer did not complete (rc %d%s)", (int)s->rc,
			 s->timed_out ? ", the server kept it open" : "");
	r->headers = strdup(s->headers.p != NULL ? s->headers.p : "");
	r->body = strdup(s->body.p != NULL ? s->body.p : "");
	if (r->headers == NULL || r->body == NULL)
		abort();
	r->body_len = s->body.len;
	if (r->body_len > 0)
		r->json = cJSON_ParseWithOpts(r->body, NULL, 1);
}

static void assert_problem_stream(const struct jobqd *d, const char *path,
				  long status, const char *code,
				  const char *field)
{
	struct group *g = read_stream(d, path, NULL, NULL, NULL, 5000);
	struct resp r;

	stream_resp(&g->s[0], &r);
	assert_problem(&r, status, code, field);
	harness_resp_free(&r);
	group_free(g);
}

/* ---- stream assertions ---- */

static int stream_header(const struct stream *s, const char *name, char *out,
			 size_t n)
{
	struct resp r;

	memset(&r, 0, sizeof r);
	r.headers = s->headers.p;
	return harness_header(&r, name, out, n);
}

/* 200, text/event-stream, no-store. */
static void assert_stream_head(const struct stream *s)
{
	char ct[128], cc[128];
	size_t pl = strlen("text/event-stream");

	ck_assert_msg(s->status == 200, "status %ld, want 200:\n%s", s->status,
		      dump(s));
	ck_assert_msg(stream_header(s, "Content-Type", ct, sizeof ct) &&
		      strncasecmp(ct, "text/event-stream", pl) == 0 &&
		      (ct[pl] == '\0' || ct[pl] == ';'),
		      "Content-Type '%s', want text/event-stream:\n%s", ct, dump(s));
	ck_assert_msg(stream_header(s, "Cache-Control", cc, sizeof cc) &&
		      strstr(cc, "no-store") != NULL,
		      "Cache-Control '%s', want no-store", cc);
}

/* The server ended the stream by itself. */
static void assert_server_ended(const struct stream *s)
{
	assert_stream_head(s);
	ck_assert_msg(s->finished && !s->hung_up && !s->timed_out &&
		      s->rc == CURLE_OK,
		      "the server did not end the stream cleanly (%s):\n%s",
		      curl_easy_strerror(s->rc), dump(s));
	ck_assert_msg(s->cur_has == 0 && s->line_off == s->body.len,
		      "stream ended inside an event:\n%s", dump(s));
}

/* The client ended the stream after its done predicate held. */
static void assert_client_ended(const struct stream *s)
{
	assert_stream_head(s);
	ck_assert_msg(s->hung_up && !s->timed_out,
		      "stream did not reach what the test waited for:\n%s",
		      dump(s));
}

static void assert_ids_increase(const struct stream *s)
{
	size_t i;

	for (i = 0; i < s->nev; i++) {
		ck_assert_msg(s->ev[i].id >= 1, "event %zu has no id >= 1:\n%s",
			      i, dump(s));
		ck_assert_msg(i == 0 || s->ev[i].id > s->ev[i - 1].id,
			      "event ids do not increase at %zu:\n%s", i, dump(s));
	}
}

/* A "job" event of job id (any id when NULL) with the contract's fields. */
static void assert_job_event(const struct stream *s, size_t i, const char *id)
{
	static const char *const keys[] = { "id", "queue", "type", "state",
		"attempts", "at", NULL };
	const struct sse_event *e = &s->ev[i];
	size_t k;

	ck_assert_msg(str_eq(e->name, "job"), "event %zu is '%s', want job:\n%s",
		      i, e->name, dump(s));
	ck_assert_msg(cJSON_IsObject(e->json), "event %zu data not an object:\n%s",
		      i, dump(s));
	for (k = 0; keys[k] != NULL; k++)
		ck_assert_msg(jget(e->json, keys[k]) != NULL,
			      "event %zu lacks \"%s\":\n%s", i, keys[k], dump(s));
	ck_assert_msg(id == NULL || str_eq(jstr(e->json, "id"), id),
		      "event %zu is about another job than %s:\n%s", i, id,
		      dump(s));
	ck_assert_msg(is_rfc3339_ms(jstr(e->json, "at")),
		      "event %zu \"at\" not RFC 3339 ms:\n%s", i, dump(s));
	ck_assert_msg(jlong(e->json, "attempts") >= 0,
		      "event %zu attempts not an integer:\n%s", i, dump(s));
}

static void assert_progress_event(const struct stream *s, size_t i,
				  const char *id)
{
	const struct sse_event *e = &s->ev[i];
	const cJSON *p = jget(e->json, "percent");

	ck_assert_msg(cJSON_IsObject(e->json) && str_eq(jstr(e->json, "id"), id),
		      "progress event %zu not about job %s:\n%s", i, id, dump(s));
	ck_assert_msg(cJSON_IsNumber(p) && p->valuedouble >= 0 &&
		      p->valuedouble <= 100,
		      "progress event %zu percent not 0..100:\n%s", i, dump(s));
	ck_assert_msg(jstr(e->json, "message") != NULL,
		      "progress event %zu message not a string:\n%s", i, dump(s));
	ck_assert_msg(is_rfc3339_ms(jstr(e->json, "at")),
		      "progress event %zu \"at\" not RFC 3339 ms:\n%s", i, dump(s));
}

/* Event 0 is the snapshot of job id in state (the job object's fields). */
static void assert_snapshot(const struct stream *s, const char *id,
			    const char *state)
{
	const cJSON *j;

	ck_assert_msg(s->nev >= 1, "no snapshot event:\n%s", dump(s));
	assert_job_event(s, 0, id);
	j = s->ev[0].json;
	ck_assert_msg(str_eq(jstr(j, "state"), state),
		      "snapshot state %s, want %s:\n%s", jstr_or(j, "state"),
		      state, dump(s));
	ck_assert_msg(jget(j, "progress") != NULL && jget(j, "result") != NULL &&
		      jget(j, "error") != NULL,
		      "snapshot lacks progress/result/error:\n%s", dump(s));
}

/* After the snapshot: only job and progress events of job id, ids rising,
 * job states exactly want (NULL-terminated), progress only while running
 * with percent not falling. Returns the number of progress events. */
static int assert_job_story(const struct stream *s, const char *id,
			    const char *const *want)
{
	size_t i, k = 0;
	int progress = 0, running = 0;
	double last_pct = -1;

	assert_ids_increase(s);
	for (i = 1; i < s->nev; i++) {
		const struct sse_event *e = &s->ev[i];

		if (str_eq(e->name, "progress")) {
			double pct;

			assert_progress_event(s, i, id);
			ck_assert_msg(running, "progress event %zu while not running:\n%s",
				      i, dump(s));
			pct = jget(e->json, "percent")->valuedouble;
			ck_assert_msg(pct >= last_pct,
				      "progress percent fell at event %zu:\n%s", i,
				      dump(s));
			last_pct = pct;
			progress++;
			continue;
		}
		assert_job_event(s, i, id);
		ck_assert_msg(want[k] != NULL &&
			      str_eq(jstr(e->json, "state"), want[k]),
			      "event %zu has state %s, want %s:\n%s", i,
			      jstr_or(e->json, "state"),
			      want[k] != NULL ? want[k] : "no more job events",
			      dump(s));
		running = str_eq(want[k], "running");
		k++;
	}
	ck_assert_msg(want[k] == NULL, "stream lacks the %s event:\n%s", want[k],
		      dump(s));
	ck_assert_msg(s->nev >= 2 && str_eq(s->ev[s->nev - 1].name, "job"),
		      "the last event is not the terminal job event:\n%s",
		      dump(s));
	return progress;
}

/* b's events equal a's events with ids > after (ids, names and data). */
static void assert_same_suffix(const struct stream *a, long long after,
			       const struct stream *b)
{
	size_t i = 0, k;

	while (i < a->nev && a->ev[i].id <= after)
		i++;
	ck_assert_msg(b->nev == a->nev - i,
		      "replay after %lld has %zu events, want %zu:\nreplay %s\noriginal %s",
		      after, b->nev, a->nev - i, dump(b), dump(a));
	for (k = 0; k < b->nev; k++, i++)
		ck_assert_msg(b->ev[k].id == a->ev[i].id &&
			      str_eq(b->ev[k].name, a->ev[i].name) &&
			      str_eq(b->ev[k].data, a->ev[i].data),
			      "replay event %zu differs: %lld %s %s vs %lld %s %s",
			      k, b->ev[k].id, b->ev[k].name, b->ev[k].data,
			      a->ev[i].id, a->ev[i].name, a->ev[i].data);
}

/* ---- job API helpers ---- */

#define assert_status(r, st)                                                   \
	ck_assert_msg((r)->status == (long)(st),                               \
		      "status %ld, want %ld %s; body: %.800s", (r)->status,    \
		      (long)(st), (r)->error, (r)->body)

#define get_job(d, id) harness_get_job((d), (id), NULL)

#define wait_state(d, id, state) cJSON_Delete(harness_wait_state((d), (id), (state), NULL))

#define queue_action(d, queue, action) cJSON_Delete(harness_queue_action((d), (queue), (action)))

static void cancel_ok(const struct jobqd *d, const char *id)
{
	char path[256];
	struct resp r;

	snprintf(path, sizeof path, "/v1/jobs/%s/cancel", id);
	harness_request(d, "POST", path, NULL, NULL, NULL, &r);
	assert_status(&r, 200);
	ck_assert_msg(str_eq(jstr(r.json, "state"), "canceled"),
		      "cancel reply not canceled: %.800s", r.body);
	harness_resp_free(&r);
}

static void assert_healthy(const struct jobqd *d)
{
	struct resp r;

	harness_request(d, "GET", "/healthz", NULL, NULL, NULL, &r);
	assert_status(&r, 200);
	harness_resp_free(&r);
}

/* SIGTERM must give exit code 0; harness_stop_keep fails on a sanitizer
 * report in the log. */
static void stop_ok(struct jobqd *d)
{
	int st = harness_stop_keep(d);

	ck_assert_msg(WIFEXITED(st) && WEXITSTATUS(st) == 0,
		      "jobqd did not exit 0 after SIGTERM (wait status %d)", st);
	harness_cleanup(d);
}

static void events_path(char *out, size_t n, const char *id)
{
	snprintf(out, n, "/v1/jobs/%s/events", id);
}

/* ---- per-job stream ---- */

START_TEST(job_stream_delivers_story_in_order_then_server_ends)
{
	static const char *const story[] = { "running", "succeeded", NULL };
	const size_t one = 1;
	struct jobqd d;
	struct group *g, *again;
	const struct stream *s, *f;
	char path[256], *id;
	const cJSON *p;
	int progress;

	harness_start(&d, NULL);
	queue_action(&d, "ev", "pause");
	id = harness_submit(&d, "{\"type\":\"sleep\",\"queue\":\"ev\",\"payload\":{\"seconds\":0.6}}");
	events_path(path, sizeof path, id);

	g = group_new(&d, 1, 10000);
	stream_set(g, 0, path, NULL, NULL, NULL);
	group_start(g);
	stream_wait(g, 0, has_events, &one, 5000, "the snapshot");
	queue_action(&d, "ev", "resume");
	group_join(g);
	s = &g->s[0];

	assert_server_ended(s);
	assert_snapshot(s, id, "queued");
	ck_assert_msg(jlong(s->ev[0].json, "attempts") == 0 &&
		      cJSON_IsNull(jget(s->ev[0].json, "progress")),
		      "queued snapshot: attempts 0, progress null:\n%s", dump(s));
	progress = assert_job_story(s, id, story);
	ck_assert_msg(jlong(s->ev[1].json, "attempts") == 1,
		      "running event attempts not 1:\n%s", dump(s));
	ck_assert_msg(progress >= 2 &&
		      jget(s->ev[s->nev - 2].json, "percent") != NULL &&
		      jget(s->ev[s->nev - 2].json, "percent")->valuedouble >
			      jget(s->ev[2].json, "percent")->valuedouble,
		      "want progress events with rising percent:\n%s", dump(s));

	/* a finished job: one snapshot, newest id, then the end */
	again = read_stream(&d, path, NULL, NULL, NULL, 5000);
	f = &again->s[0];
	assert_server_ended(f);
	ck_assert_msg(f->nev == 1, "finished job stream: %zu events, want 1:\n%s",
		      f->nev, dump(f));
	assert_snapshot(f, id, "succeeded");
	ck_assert_msg(f->ev[0].id == s->ev[s->nev - 1].id,
		      "snapshot id %lld, want the newest id %lld",
		      f->ev[0].id, s->ev[s->nev - 1].id);
	p = jget(jget(f->ev[0].json, "result"), "slept");
	ck_assert_msg(cJSON_IsNumber(p) && p->valuedouble == 0.6,
		      "snapshot result not {\"slept\":0.6}:\n%s", dump(f));
	ck_assert_msg(cJSON_IsObject(jget(f->ev[0].json, "progress")),
		      "snapshot progress not an object:\n%s", dump(f));
	group_free(again);
	group_free(g);
	free(id);
	stop_ok(&d);
}
END_TEST

START_TEST(job_stream_unknown_job_and_wrong_method)
{
	struct jobqd d;
	struct resp r;
	char path[256], allow[128], *id;

	harness_start(&d, NULL);
	assert_problem_stream(&d, "/v1/jobs/" UNKNOWN_ID "/events", 404,
			      "job_not_found", NULL);
	assert_problem_stream(&d, "/v1/jobs/not-a-uuid/events", 404,
			      "job_not_found", NULL);

	id = harness_submit(&d, "{\"type\":\"echo\",\"payload\":1}");
	events_path(path, sizeof path, id);
	harness_request(&d, "POST", path, NULL, NULL, NULL, &r);
	assert_problem(&r, 405, "method_not_allowed", NULL);
	ck_assert_msg(harness_header(&r, "Allow", allow, sizeof allow) &&
		      strcmp(allow, "GET") == 0, "Allow '%s', want GET", allow);
	harness_resp_free(&r);

	harness_request(&d, "POST", "/v1/events", NULL, NULL, NULL, &r);
	assert_problem(&r, 405, "method_not_allowed", NULL);
	ck_assert_msg(harness_header(&r, "Allow", allow, sizeof allow) &&
		      strcmp(allow, "GET") == 0, "Allow '%s', want GET", allow);
	harness_resp_free(&r);
	free(id);
	stop_ok(&d);
}
END_TEST

START_TEST(job_stream_resumes_after_last_event_id_without_snapshot)
{
	const size_t one = 1;
	struct jobqd d;
	struct group *g, *c, *late;
	const struct stream *full, *cut;
	char path[256], last[32], *id;
	long long running_id;

	harness_start(&d, NULL);
	queue_action(&d, "ev", "pause");
	id = harness_submit(&d, "{\"type\":\"sleep\",\"queue\":\"ev\",\"payload\":{\"seconds\":0.6}}");
	events_path(path, sizeof path, id);

	/* stream 0 reads everything; stream 1 hangs up at "running" */
	g = group_new(&d, 2, 10000);
	stream_set(g, 0, path, NULL, NULL, NULL);
	stream_set(g, 1, path, NULL, has_state, "running");
	group_start(g);
	group_wait(g, 0, has_events, &one, 5000, "the snapshot");
	queue_action(&d, "ev", "resume");
	stream_wait(g, 1, has_state, "running", 5000, "the running event");
	pthread_mutex_lock(&g->mu);
	cut = &g->s[1];
	ck_assert_msg(cut->nev == 2 && str_eq(jstr(cut->ev[1].json, "state"), "running"),
		      "want snapshot then running:\n%s", dump(cut));
	running_id = cut->ev[1].id;
	pthread_mutex_unlock(&g->mu);
	snprintf(last, sizeof last, "%lld", running_id);

	/* reconnect while the job still runs */
	c = read_stream(&d, path, last, NULL, NULL, 10000);
	group_join(g);
	full = &g->s[0];
	assert_server_ended(full);
	assert_client_ended(&g->s[1]);
	assert_server_ended(&c->s[0]);
	ck_assert_msg(c->s[0].nev >= 1 && c->s[0].ev[0].id > running_id,
		      "resumed stream starts at or before %lld:\n%s", running_id,
		      dump(&c->s[0]));
	assert_same_suffix(full, running_id, &c->s[0]);
	ck_assert_msg(str_eq(jstr(c->s[0].ev[c->s[0].nev - 1].json, "state"),
			     "succeeded"),
		      "resumed stream does not end with succeeded:\n%s",
		      dump(&c->s[0]));

	/* and once the job is over: the held events, then the end */
	late = read_stream(&d, path, last, NULL, NULL, 5000);
	assert_server_ended(&late->s[0]);
	assert_same_suffix(full, running_id, &late->s[0]);
	group_free(late);
	group_free(c);
	group_free(g);
	free(id);
	stop_ok(&d);
}
END_TEST

START_TEST(job_stream_ends_with_canceled_after_cancel)
{
	const size_t one = 1;
	struct jobqd d;
	struct group *g;
	const struct stream *s;
	char path[256], *id;
	size_t i;

	harness_start(&d, NULL);
	id = harness_submit(&d, "{\"type\":\"sleep\",\"payload\":{\"seconds\":30}}");
	wait_state(&d, id, "running");
	events_path(path, sizeof path, id);
	g = group_new(&d, 1, 10000);
	stream_set(g, 0, path, NULL, NULL, NULL);
	group_start(g);
	stream_wait(g, 0, has_events, &one, 5000, "the snapshot");
	cancel_ok(&d, id);
	group_join(g);
	s = &g->s[0];

	assert_server_ended(s);
	assert_snapshot(s, id, "running");
	assert_ids_increase(s);
	ck_assert_msg(s->nev >= 2 &&
		      str_eq(jstr(s->ev[s->nev - 1].json, "state"), "canceled"),
		      "stream does not end with canceled:\n%s", dump(s));
	assert_job_event(s, s->nev - 1, id);
	for (i = 1; i + 1 < s->nev; i++) {
		ck_assert_msg(str_eq(s->ev[i].name, "progress"),
			      "event %zu between the snapshot and canceled is "
			      "not progress:\n%s", i, dump(s));
		assert_progress_event(s, i, id);
	}
	group_free(g);
	free(id);
	stop_ok(&d);
}
END_TEST

/* ---- global stream ---- */

/* The job events of s: each job of ids (NULL-terminated) goes queued,
 * running, then terminal[k]; no event of another job appears. */
static void assert_global_story(const struct stream *s, const char *const *ids,
				const char *const *terminal)
{
	size_t i, k;

	assert_ids_increase(s);
	for (i = 0; i < s->nev; i++) {
		const char *jid;
		int known = 0;

		assert_job_event(s, i, NULL);
		jid = jstr(s->ev[i].json, "id");
		for (k = 0; ids[k] != NULL; k++)
			known |= str_eq(jid, ids[k]);
		ck_assert_msg(known, "event %zu is about job %s (queue %s, type %s), "
			      "which the filter excludes:\n%s", i, jid,
			      jstr_or(s->ev[i].json, "queue"),
			      jstr_or(s->ev[i].json, "type"), dump(s));
	}
	for (k = 0; ids[k] != NULL; k++) {
		const char *want[3] = { "queued", "running", terminal[k] };
		size_t n = 0;

		for (i = 0; i < s->nev; i++) {
			const cJSON *j = s->ev[i].json;

			if (!str_eq(jstr(j, "id"), ids[k]))
				continue;
			ck_assert_msg(n < 3 && str_eq(jstr(j, "state"), want[n]),
				      "job %s: event %zu state %s, want %s:\n%s",
				      ids[k], i, jstr_or(j, "state"),
				      n < 3 ? want[n] : "no more events", dump(s));
			ck_assert_msg(jlong(j, "attempts") == (n == 0 ? 0 : 1),
				      "job %s: event %zu attempts %ld:\n%s", ids[k],
				      i, jlong(j, "attempts"), dump(s));
			n++;
		}
		ck_assert_msg(n == 3, "job %s: %zu events, want 3:\n%s", ids[k], n,
			      dump(s));
	}
}

/* Every event of sub appears in all with the same id, name and data. */
static void assert_subset(const struct stream *sub, const struct stream *all)
{
	size_t i, k;

	for (i = 0; i < sub->nev; i++) {
		int found = 0;

		for (k = 0; k < all->nev && !found; k++)
			found = sub->ev[i].id == all->ev[k].id &&
				str_eq(sub->ev[i].name, all->ev[k].name) &&
				str_eq(sub->ev[i].data, all->ev[k].data);
		ck_assert_msg(found, "filtered event %lld %s is not on the "
			      "unfiltered stream:\n%s", sub->ev[i].id,
			      sub->ev[i].data, dump(all));
	}
}

static size_t count_after(const struct stream *s, long long after)
{
	size_t i, n = 0;

	for (i = 0; i < s->nev; i++)
		n += s->ev[i].id > after;
	return n;
}

START_TEST(global_stream_filters_and_replays_job_events)
{
	const char *all_ids[5], *a_ids[3], *fail_ids[2];
	static const char *const all_term[] = { "succeeded", "succeeded",
		"succeeded", "failed" };
	static const char *const a_term[] = { "succeeded", "failed" };
	static const char *const fail_term[] = { "failed" };
	struct jobqd d;
	struct group *g, *replay;
	char last[32], *e1, *e2, *e3, *f4;
	size_t want_all, want_a;
	long long k;

	harness_start(&d, ARGS("--sse-heartbeat", "0.2"));
	g = group_new(&d, 3, 15000);
	stream_set(g, 0, "/v1/events", NULL, NULL, NULL);
	stream_set(g, 1, "/v1/events?queue=a", NULL, NULL, NULL);
	stream_set(g, 2, "/v1/events?type=fail", NULL, NULL, NULL);
	group_start(g);
	group_wait(g, 0, has_headers, NULL, 3000, "response headers");

	e1 = harness_submit(&d, "{\"type\":\"echo\",\"queue\":\"a\",\"payload\":1}");
	e2 = harness_submit(&d, "{\"type\":\"echo\",\"queue\":\"b\",\"payload\":2}");
	e3 = harness_submit(&d, "{\"type\":\"echo\",\"queue\":\"b\",\"payload\":3}");
	f4 = harness_submit(&d, "{\"type\":\"fail\",\"queue\":\"a\","
		     "\"payload\":{\"message\":\"boom\",\"retryable\":false}}");
	all_ids[0] = e1; all_ids[1] = e2; all_ids[2] = e3; all_ids[3] = f4;
	all_ids[4] = NULL;
	a_ids[0] = e1; a_ids[1] = f4; a_ids[2] = NULL;
	fail_ids[0] = f4; fail_ids[1] = NULL;
	stream_wait(g, 0, has_terminals, all_ids, 10000, "every job's end");
	stream_wait(g, 1, has_terminals, a_ids, 5000, "queue a jobs' ends");
	stream_wait(g, 2, has_terminals, fail_ids, 5000, "the fail job's end");
	nap_ms(100); /* room for an event the filters should have dropped */
	group_close(g);
	group_join(g);

	assert_client_ended(&g->s[0]);
	assert_global_story(&g->s[0], all_ids, all_term);
	assert_global_story(&g->s[1], a_ids, a_term);
	assert_global_story(&g->s[2], fail_ids, fail_term);
	assert_subset(&g->s[1], &g->s[0]);
	assert_subset(&g->s[2], &g->s[0]);

	/* Last-Event-ID: the held events after k again, filtered or not */
	k = g->s[0].ev[2].id;
	snprintf(last, sizeof last, "%lld", k);
	want_all = count_after(&g->s[0], k);
	want_a = count_after(&g->s[1], k);
	ck_assert_msg(want_a > 0, "no queue a event after %lld", k);
	replay = group_new(&d, 2, 5000);
	stream_set(replay, 0, "/v1/events", last, has_events, &want_all);
	stream_set(replay, 1, "/v1/events?queue=a", last, has_events, &want_a);
	group_run(replay);
	assert_client_ended(&replay->s[0]);
	assert_client_ended(&replay->s[1]);
	assert_same_suffix(&g->s[0], k, &replay->s[0]);
	assert_same_suffix(&g->s[1], k, &replay->s[1]);

	group_free(replay);
	group_free(g);
	free(e1);
	free(e2);
	free(e3);
	free(f4);
	stop_ok(&d);
}
END_TEST

START_TEST(global_stream_rejects_invalid_queue)
{
	struct jobqd d;

	harness_start(&d, NULL);
	assert_problem_stream(&d, "/v1/events?queue=bad!name", 400,
			      "invalid_query", "queue");
	assert_problem_stream(&d, "/v1/events?queue="
			      "a123456789b123456789c123456789d123456789"
			      "e123456789f123456789g1234",
			      400, "invalid_query", "queue");
	stop_ok(&d);
}
END_TEST

/* How many events of s are about job id. */
static size_t count_of(const struct stream *s, const char *id)
{
	size_t i, n = 0;

	for (i = 0; i < s->nev; i++)
		n += str_eq(jstr(s->ev[i].json, "id"), id);
	return n;
}

/* Stream sub holds exactly all's events about ids (NULL-terminated) and no
 * other. */
static void assert_only_jobs(const struct stream *sub, const struct stream *all,
			     const char *const *ids, const char *what)
{
	size_t i, k, want = 0;

	assert_subset(sub, all);
	for (i = 0; i < sub->nev; i++) {
		int asked = 0;

		for (k = 0; ids[k] != NULL; k++)
			asked |= str_eq(jstr(sub->ev[i].json, "id"), ids[k]);
		ck_assert_msg(asked, "%s: event about %s, which was not asked:\n%s",
			      what, jstr_or(sub->ev[i].json, "id"), dump(sub));
	}
	for (k = 0; ids[k] != NULL; k++) {
		ck_assert_msg(count_of(sub, ids[k]) == count_of(all, ids[k]),
			      "%s: %zu events about %s, the unfiltered stream has %zu:\n%s",
			      what, count_of(sub, ids[k]), ids[k], count_of(all, ids[k]),
			      dump(sub));
		want += count_of(all, ids[k]);
	}
	ck_assert_msg(sub->nev == want, "%s: %zu events, want %zu", what, sub->nev, want);
}

/* One stream for many futures: ?ids= and ?batch_id= carry exactly the
 * asked jobs' events, each job's end included. */
START_TEST(global_stream_filters_by_ids_and_batch)
{
	struct jobqd d;
	struct group *g;
	struct resp r;
	char *a, *b, *c, batch[64], b0[64], b1[64], path[4][512];

	harness_start(&d, ARGS("--sse-heartbeat", "0.2"));
	queue_action(&d, "hold", "pause");
	a = harness_submit(&d, "{\"type\":\"echo\",\"queue\":\"hold\",\"payload\":1}");
	b = harness_submit(&d, "{\"type\":\"echo\",\"queue\":\"hold\",\"payload\":2}");
	c = harness_submit(&d, "{\"type\":\"fail\",\"queue\":\"hold\","
		   "\"payload\":{\"retryable\":false}}");
	harness_request(&d, "POST", "/v1/batches", "application/json",
			"{\"jobs\":[{\"type\":\"echo\",\"queue\":\"hold\"},"
			"{\"type\":\"echo\",\"queue\":\"hold\"}]}", NULL, &r);
	assert_status(&r, 201);
	snprintf(batch, sizeof batch, "%s", jstr_or(r.json, "id"));
	{
		const cJSON *ids = jget(r.json, "job_ids");

		ck_assert_msg(cJSON_GetArraySize(ids) == 2, "batch answer: %s", r.body);
		snprintf(b0, sizeof b0, "%s", cJSON_GetArrayItem(ids, 0)->valuestring);
		snprintf(b1, sizeof b1, "%s", cJSON_GetArrayItem(ids, 1)->valuestring);
	}
	harness_resp_free(&r);

	g = group_new(&d, 4, 15000);
	stream_set(g, 0, "/v1/events", NULL, NULL, NULL);
	snprintf(path[1], sizeof path[1], "/v1/events?ids=%s,%s", a, c);
	stream_set(g, 1, path[1], NULL, NULL, NULL);
	snprintf(path[2], sizeof path[2], "/v1/events?batch_id=%s", batch);
	stream_set(g, 2, path[2], NULL, NULL, NULL);
	snprintf(path[3], sizeof path[3], "/v1/events?batch_id=%s&ids=%s,%s", batch, a, b1);
	stream_set(g, 3, path[3], NULL, NULL, NULL);
	group_start(g);
	group_wait(g, 0, has_headers, NULL, 3000, "response headers");
	queue_action(&d, "hold", "resume");

	const char *all_ids[] = { a, b, c, b0, b1, NULL };
	const char *ac[] = { a, c, NULL };
	const char *in_batch[] = { b0, b1, NULL };
	const char *only_b1[] = { b1, NULL };
	stream_wait(g, 0, has_terminals, all_ids, 10000, "every job's end");
	stream_wait(g, 1, has_terminals, ac, 5000, "the ends of a and c");
	stream_wait(g, 2, has_terminals, in_batch, 5000, "the batch's ends");
	stream_wait(g, 3, has_terminals, only_b1, 5000, "the end of b1");
	nap_ms(100); /* room for an event the filters should have dropped */
	group_close(g);
	group_join(g);

	assert_only_jobs(&g->s[1], &g->s[0], ac, "ids=a,c");
	assert_only_jobs(&g->s[2], &g->s[0], in_batch, "batch_id");
	assert_only_jobs(&g->s[3], &g->s[0], only_b1, "batch_id and ids");
	/* each job ran once: running, then its end */
	ck_assert_msg(g->s[1].nev == 4 && g->s[2].nev == 4 && g->s[3].nev == 2,
		      "events: %zu, %zu, %zu; want 4, 4, 2", g->s[1].nev, g->s[2].nev,
		      g->s[3].nev);

	group_free(g);
	free(a);
	free(b);
	free(c);
	stop_ok(&d);
}
END_TEST

START_TEST(global_stream_rejects_bad_ids_and_batch)
{
	struct jobqd d;

	harness_start(&d, NULL);
	assert_problem_stream(&d, "/v1/events?ids=nope", 400, "invalid_query", "ids");
	assert_problem_stream(&d, "/v1/events?ids=", 400, "invalid_query", "ids");
	assert_problem_stream(&d, "/v1/events?ids=" UNKNOWN_ID ",", 400, "invalid_query", "ids");
	assert_problem_stream(&d, "/v1/events?batch_id=nope", 400, "invalid_query", "batch_id");
	assert_problem_stream(&d, "/v1/events?batch_id=" UNKNOWN_ID, 404, "batch_not_found", NULL);
	stop_ok(&d);
}
END_TEST

/* ---- heartbeats ---- */

START_TEST(idle_streams_get_keep_alive_comments)
{
	const int two = 2;
	struct jobqd d;
	struct group *g;
	char path[256], *id;

	harness_start(&d, ARGS("--sse-heartbeat", "0.2"));
	g = read_stream(&d, "/v1/events", NULL, has_keepalives, &two, 2000);
	assert_client_ended(&g->s[0]);
	ck_assert_msg(g->s[0].nev == 0, "idle global stream has events:\n%s",
		      dump(&g->s[0]));
	group_free(g);

	/* a per-job stream of a job that waits in a paused queue */
	queue_action(&d, "idle", "pause");
	id = harness_submit(&d, "{\"type\":\"echo\",\"queue\":\"idle\",\"payload\":1}");
	events_path(path, sizeof path, id);
	g = read_stream(&d, path, NULL, has_keepalives, &two, 2000);
	assert_client_ended(&g->s[0]);
	ck_assert_msg(g->s[0].nev == 1, "idle job stream: want only the snapshot:\n%s",
		      dump(&g->s[0]));
	assert_snapshot(&g->s[0], id, "queued");
	group_free(g);
	free(id);
	stop_ok(&d);
}
END_TEST

/* ---- load and hang-ups ---- */

START_TEST(many_job_streams_end_without_a_thread_each)
{
	const size_t one = 1;
	struct jobqd d;
	struct group *g1, *gn;
	char path[256], *id;
	int t1, tn;
	size_t i, bad = 0;

	harness_start(&d, NULL);
	id = harness_submit(&d, "{\"type\":\"sleep\",\"payload\":{\"seconds\":30}}");
	wait_state(&d, id, "running");
	events_path(path, sizeof path, id);

	g1 = group_new(&d, 1, 20000);
	stream_set(g1, 0, path, NULL, NULL, NULL);
	group_start(g1);
	stream_wait(g1, 0, has_events, &one, 5000, "the snapshot");
	t1 = proc_count(d.pid, "task");

	gn = group_new(&d, MANY_STREAMS - 1, 20000);
	for (i = 0; i < gn->n; i++)
		stream_set(gn, i, path, NULL, NULL, NULL);
	group_start(gn);
	group_wait(gn, 0, has_events, &one, 10000, "the snapshot");
	tn = proc_count(d.pid, "task");
	assert_healthy(&d);
	ck_assert_msg(tn <= t1 + MANY_THREADS_SLACK,
		      "jobqd has %d threads with %d streams, %d with 1",
		      tn, MANY_STREAMS, t1);

	cancel_ok(&d, id);
	group_join(g1);
	group_join(gn);
	assert_server_ended(&g1->s[0]);
	for (i = 0; i < gn->n; i++) {
		const struct stream *s = &gn->s[i];
		int ok = s->finished && !s->hung_up && !s->timed_out &&
			 s->rc == CURLE_OK && s->nev >= 2 &&
			 str_eq(jstr(s->ev[s->nev - 1].json, "state"), "canceled");

		if (!ok && bad++ == 0)
			fprintf(stderr, "first bad stream %zu:\n%s", i, dump(s));
	}
	ck_assert_msg(bad == 0, "%zu of %d streams did not get canceled and end",
		      bad, MANY_STREAMS - 1);
	assert_healthy(&d);
	group_free(gn);
	group_free(g1);
	free(id);
	stop_ok(&d);
}
END_TEST

START_TEST(hung_up_waiters_and_streams_release_descriptors)
{
	const size_t one = 1;
	struct jobqd d;
	struct group *g;
	char path[256], poll_path[256], *id;
	double end;
	int fd0, fd_open, fd1;
	cJSON *j;
	size_t i;

	harness_start(&d, ARGS("--sse-heartbeat", "0.2"));
	id = harness_submit(&d, "{\"type\":\"sleep\",\"payload\":{\"seconds\":30}}");
	wait_state(&d, id, "running");
	events_path(path, sizeof path, id);
	snprintf(poll_path, sizeof poll_path, "/v1/jobs/%s?wait=2", id);
	/* the baseline once the setup's connections are closed: the scrape's
	 * own is the only one left */
	end = mono_ms() + 10000;
	while (harness_metric(&d, "jobq_http_connections") > 1) {
		ck_assert_msg(mono_ms() < end, "the setup's connections still open after 10 s");
		nap_ms(10);
	}
	fd0 = proc_count(d.pid, "fd");

	g = group_new(&d, 2 * WAITERS, 10000);
	for (i = 0; i < WAITERS; i++) {
		stream_set(g, i, poll_path, NULL, NULL, NULL);
		stream_set(g, WAITERS + i, path, NULL, NULL, NULL);
	}
	group_start(g);
	group_wait(g, WAITERS, has_events, &one, 5000, "the snapshot");
	/* every client is connected (the streams and the long-polls) */
	harness_wait_metric(&d, "jobq_http_connections", 2 * WAITERS, 10000.0);
	fd_open = proc_count(d.pid, "fd");
	group_close(g);
	group_join(g);

	/* the count is a true measure: every stream held a descriptor */
	ck_assert_msg(fd_open >= fd0 + WAITERS,
		      "jobqd held %d descriptors with %d clients, %d before",
		      fd_open, 2 * WAITERS, fd0);
	end = mono_ms() + 3000;
	do {
		nap_ms(100);
		fd1 = proc_count(d.pid, "fd");
	} while (fd1 > fd0 + FD_SLACK && mono_ms() < end);
	ck_assert_msg(fd1 <= fd0 + FD_SLACK,
		      "jobqd holds %d descriptors 3 s after %d clients hung up, "
		      "%d before", fd1, 2 * WAITERS, fd0);

	assert_healthy(&d);
	j = get_job(&d, id);
	ck_assert_msg(str_eq(jstr(j, "state"), "running"), "job is %s, want running",
		      jstr_or(j, "state"));
	cJSON_Delete(j);
	cancel_ok(&d, id);
	group_free(g);
	free(id);
	stop_ok(&d);
}
END_TEST

static Suite *events_suite(void)
{
	Suite *s = suite_create("jobq_api_events");
	TCase *tc;

	tc = tcase(s, "job_stream");
	tcase_add_test(tc, job_stream_delivers_story_in_order_then_server_ends);
	tcase_add_test(tc, job_stream_unknown_job_and_wrong_method);
	tcase_add_test(tc, job_stream_resumes_after_last_event_id_without_snapshot);
	tcase_add_test(tc, job_stream_ends_with_canceled_after_cancel);

	tc = tcase(s, "global_stream");
	tcase_add_test(tc, global_stream_filters_and_replays_job_events);
	tcase_add_test(tc, global_stream_rejects_invalid_queue);
	tcase_add_test(tc, global_stream_filters_by_ids_and_batch);
	tcase_add_test(tc, global_stream_rejects_bad_ids_and_batch);
	tcase_add_test(tc, idle_streams_get_keep_alive_comments);

	tc = tcase(s, "load");
	tcase_add_test(tc, many_job_streams_end_without_a_thread_each);
	tcase_add_test(tc, hung_up_waiters_and_streams_release_descriptors);
	return s;
}

int main(void)
{
	return harness_run(events_suite());
}
