/* Black-box tests of what a hostile client sends: hand-written HTTP bytes
 * over a raw TCP socket to a real jobqd (started through tests/harness.c).
 * Ambiguous framing (request smuggling), NULs in the target and in header
 * values, requests that trickle in past --request-timeout, connections past
 * --max-connections, the errors libmicrohttpd writes itself, and the
 * headers and query checks every reply shares. Every wait is bounded. */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <unistd.h>

#include <check.h>
#include <cjson/cJSON.h>

#include "harness.h"

#define ARGS(...) ((const char *const[]){ __VA_ARGS__, NULL })
#define TEST_TIMEOUT_S 60
#define tcase(s, name) harness_tcase((s), (name), TEST_TIMEOUT_S)
#define READ_BOUND_MS 10000.0   /* a reply (or the close) must come within this */
#define DRIP_BOUND_MS 15000.0   /* a trickling client gives up after this */
#define LOG_BOUND_MS 5000.0
#define DRIP_STEP_MS 100

/* ---- raw exchanges ---- */

/* One response read off a raw socket. status is 0 when none came; closed
 * says the server closed (or reset) the connection after it. */
struct raw {
	int status;
	char head[8192];
	char *body;
	size_t body_len;
	cJSON *json;
	int closed;
};

static void raw_free(struct raw *r)
{
	free(r->body);
	cJSON_Delete(r->json);
	memset(r, 0, sizeof *r);
}

static int raw_connect(const struct jobqd *d)
{
	struct sockaddr_in sa;
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);

	ck_assert_msg(fd >= 0, "socket: %s", strerror(errno));
	memset(&sa, 0, sizeof sa);
	sa.sin_family = AF_INET;
	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	sa.sin_port = htons((unsigned short)d->port);
	ck_assert_msg(connect(fd, (struct sockaddr *)&sa, sizeof sa) == 0, "connect: %s", strerror(errno));
	return fd;
}

/* Sends all of buf; 0 on success, -1 once the server has closed. */
static int raw_send(int fd, const void *buf, size_t len)
{
	const char *p = buf;

	while (len > 0) {
		ssize_t n = send(fd, p, len, MSG_NOSIGNAL);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return -1;
		p += n;
		len -= (size_t)n;
	}
	return 0;
}

/* Reads up to n bytes, waiting at most ms; 0 at EOF or reset, -1 when
 * nothing came in time. */
static ssize_t raw_recv(int fd, char *buf, size_t n, int ms)
{
	struct pollfd p = { .fd = fd, .events = POLLIN };
	ssize_t got;

	if (poll(&p, 1, ms) <= 0)
		return -1;
	got = recv(fd, buf, n, 0);
	return got < 0 ? 0 : got;
}

static const char *head_value(const struct raw *r, const char *name, char *out, size_t n)
{
	size_t len = strlen(name);

	for (const char *p = strstr(r->head, "\r\n"); p && p[2]; p = strstr(p + 2, "\r\n")) {
		const char *line = p + 2;
		if (strncasecmp(line, name, len) == 0 && line[len] == ':') {
			const char *v = line + len + 1;
			v += strspn(v, " ");
			snprintf(out, n, "%.*s", (int)strcspn(v, "\r"), v);
			return out;
		}
	}
	return NULL;
}

/* Reads one response (head, then Content-Length bytes of body), then
 * whether the server closes the connection right after. */
static void raw_read(int fd, struct raw *r, int want_close)
{
	char buf[65536];
	size_t have = 0, need = 0;
	char *end = NULL, value[64];
	double until = mono_ms() + READ_BOUND_MS;

	memset(r, 0, sizeof *r);
	while (mono_ms() < until && have < sizeof buf - 1) {
		ssize_t n = raw_recv(fd, buf + have, sizeof buf - 1 - have, 100);
		if (n == 0) {
			r->closed = 1;
			break;
		}
		if (n > 0)
			have += (size_t)n;
		buf[have] = '\0';
		if (!end && (end = strstr(buf, "\r\n\r\n")) != NULL) {
			snprintf(r->head, sizeof r->head, "%.*s", (int)(end - buf), buf);
			sscanf(r->head, "HTTP/1.%*c %d", &r->status);
			need = head_value(r, "Content-Length", value, sizeof value) ? strtoul(value, NULL, 10) : 0;
		}
		if (end && have - (size_t)(end + 4 - buf) >= need)
			break;
	}
	if (end) {
		r->body_len = have - (size_t)(end + 4 - buf);
		r->body = malloc(r->body_len + 1);
		ck_assert_ptr_nonnull(r->body);
		memcpy(r->body, end + 4, r->body_len);
		r->body[r->body_len] = '\0';
		r->json = cJSON_Parse(r->body);
	}
	while (want_close && !r->closed && mono_ms() < until)
		if (raw_recv(fd, buf, sizeof buf, 100) == 0)
			r->closed = 1;
}

/* Connects, sends len bytes of req, reads the reply and the close. */
static void raw_exchange(const struct jobqd *d, const void *req, size_t len, struct raw *r)
{
	int fd = raw_connect(d);

	raw_send(fd, req, len);
	raw_read(fd, r, 1);
	close(fd);
}

#define RAW(d, lit, r) raw_exchange((d), (lit), sizeof(lit) - 1, (r))

static void assert_raw_problem(const struct raw *r, int status, const char *code, const char *field)
{
	char ct[128];

	ck_assert_msg(r->status == status, "status %d, want %d; head:\n%s\nbody: %.400s", r->status, status,
		      r->head, r->body ? r->body : "");
	ck_assert_msg(head_value(r, "Content-Type", ct, sizeof ct) && strcmp(ct, "application/problem+json") == 0,
		      "Content-Type %s, want application/problem+json", head_value(r, "Content-Type", ct, sizeof ct) ? ct : "(none)");
	ck_assert_msg(r->json != NULL, "body is not JSON: %.400s", r->body ? r->body : "");
	ck_assert_str_eq(jstr_or(r->json, "code"), code);
	ck_assert_int_eq(jlong(r->json, "status"), status);
	if (field != NULL)
		ck_assert_str_eq(jstr_or(r->json, "field"), field);
	else
		ck_assert_msg(jget(r->json, "field") == NULL, "unexpected field %s", jstr_or(r->json, "field"));
}

/* A 400 bad_request, and the connection closed behind it: nothing sent
 * after the refused head may be read as another request. */
static void assert_refused(const struct raw *r, const char *field)
{
	assert_raw_problem(r, 400, "bad_request", field);
	ck_assert_msg(r->closed, "the connection stayed open after a refused request");
}

static void stop_ok(struct jobqd *d)
{
	harness_stop(d);
}

/* ---- framing (request smuggling) ---- */

#define JOB_BODY "{\"type\":\"echo\"}"

START_TEST(framing_two_different_content_lengths_are_400)
{
	struct jobqd d;
	struct raw r;

	harness_start(&d, NULL);
	RAW(&d, "POST /v1/jobs HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
		"Content-Length: 15\r\nContent-Length: 5\r\n\r\n" JOB_BODY, &r);
	assert_refused(&r, "Content-Length");
	raw_free(&r);
	stop_ok(&d);
}
END_TEST

START_TEST(framing_chunked_with_content_length_is_400)
{
	struct jobqd d;
	struct raw r;

	harness_start(&d, NULL);
	RAW(&d, "POST /v1/jobs HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
		"Content-Length: 20\r\nTransfer-Encoding: chunked\r\n\r\nf\r\n" JOB_BODY "\r\n0\r\n\r\n", &r);
	assert_refused(&r, "Transfer-Encoding");
	raw_free(&r);
	stop_ok(&d);
}
END_TEST

START_TEST(framing_transfer_encoding_other_than_chunked_is_400)
{
	struct jobqd d;
	struct raw r;

	harness_start(&d, NULL);
	RAW(&d, "POST /v1/jobs HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
		"Transfer-Encoding: gzip\r\n\r\n", &r);
	assert_refused(&r, "Transfer-Encoding");
	raw_free(&r);
	RAW(&d, "POST /v1/jobs HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
		"Transfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", &r);
	assert_refused(&r, "Transfer-Encoding");
	raw_free(&r);
	stop_ok(&d);
}
END_TEST

START_TEST(framing_space_before_colon_is_400)
{
	struct jobqd d;
	struct raw r;

	harness_start(&d, NULL);
	RAW(&d, "GET /healthz HTTP/1.1\r\nHost: x\r\nX-Thing : 1\r\n\r\n", &r);
	assert_refused(&r, "X-Thing");
	raw_free(&r);
	/* The same header an honest client sends is fine. */
	RAW(&d, "GET /healthz HTTP/1.1\r\nHost: x\r\nX-Thing: 1\r\nConnection: close\r\n\r\n", &r);
	ck_assert_int_eq(r.status, 200);
	raw_free(&r);
	stop_ok(&d);
}
END_TEST

START_TEST(framing_nul_in_a_header_value_is_400)
{
	struct jobqd d;
	struct raw r;

	harness_start(&d, NULL);
	RAW(&d, "GET /healthz HTTP/1.1\r\nHost: x\r\nX-Thing: a\0b\r\n\r\n", &r);
	assert_refused(&r, NULL);
	raw_free(&r);
	/* A NUL at the end of the last value, and at the end of one before it. */
	RAW(&d, "GET /healthz HTTP/1.1\r\nHost: x\r\nX-Thing: ab\0\r\n\r\n", &r);
	assert_refused(&r, NULL);
	raw_free(&r);
	RAW(&d, "GET /healthz HTTP/1.1\r\nX-Thing: ab\0\r\nHost: x\r\n\r\n", &r);
	assert_refused(&r, NULL);
	raw_free(&r);
	stop_ok(&d);
}
END_TEST

START_TEST(framing_bare_cr_in_a_header_value_is_400)
{
	struct jobqd d;
	struct raw r;

	harness_start(&d, NULL);
	RAW(&d, "GET /healthz HTTP/1.1\r\nHost: x\r\nX-Thing: a\rb\r\n\r\n", &r);
	assert_refused(&r, "X-Thing");
	raw_free(&r);
	RAW(&d, "GET /healthz HTTP/1.1\r\nHost: x\r\nX-Thing: ab\r\r\n\r\n", &r);
	assert_refused(&r, "X-Thing");
	raw_free(&r);
	stop_ok(&d);
}
END_TEST

START_TEST(framing_http11_without_host_is_400_http10_is_served)
{
	struct jobqd d;
	struct raw r;

	harness_start(&d, NULL);
	RAW(&d, "GET /healthz HTTP/1.1\r\n\r\n", &r);
	assert_refused(&r, "Host");
	raw_free(&r);
	RAW(&d, "GET /healthz HTTP/1.0\r\n\r\n", &r);
	ck_assert_int_eq(r.status, 200);
	raw_free(&r);
	stop_ok(&d);
}
END_TEST

START_TEST(framing_honest_chunked_and_repeated_equal_length_are_served)
{
	struct jobqd d;
	struct raw r;

	harness_start(&d, NULL);
	RAW(&d, "POST /v1/jobs HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
		"Transfer-Encoding: chunked\r\nConnection: close\r\n\r\nf\r\n" JOB_BODY "\r\n0\r\n\r\n", &r);
	ck_assert_msg(r.status == 201, "chunked submit: %d %s", r.status, r.body ? r.body : "");
	raw_free(&r);
	RAW(&d, "POST /v1/jobs HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
		"Content-Length: 15\r\nContent-Length: 15\r\nConnection: close\r\n\r\n" JOB_BODY, &r);
	ck_assert_msg(r.status == 201, "repeated equal Content-Length: %d %s", r.status, r.body ? r.body : "");
	raw_free(&r);
	stop_ok(&d);
}
END_TEST

/* ---- the request target ---- */

START_TEST(target_encoded_nul_is_400_not_a_shorter_path)
{
	struct jobqd d;
	struct raw r;

	harness_start(&d, NULL);
	RAW(&d, "GET /openapi.yaml%00.txt HTTP/1.1\r\nHost: x\r\n\r\n", &r);
	assert_refused(&r, NULL);
	raw_free(&r);
	RAW(&d, "GET /v1/queues/default%00zzz HTTP/1.1\r\nHost: x\r\n\r\n", &r);
	assert_refused(&r, NULL);
	raw_free(&r);
	/* In the query, the parameter is named. */
	RAW(&d, "GET /v1/jobs?state=queued%00zzz HTTP/1.1\r\nHost: x\r\n\r\n", &r);
	assert_raw_problem(&r, 400, "invalid_query", "state");
	raw_free(&r);
	stop_ok(&d);
}
END_TEST

START_TEST(target_with_a_raw_nul_or_space_is_400)
{
	struct jobqd d;
	struct raw r;

	harness_start(&d, NULL);
	RAW(&d, "GET /openapi.yaml\0.txt HTTP/1.1\r\nHost: x\r\n\r\n", &r);
	assert_refused(&r, NULL);
	raw_free(&r);
	RAW(&d, "GET /openapi.yaml x HTTP/1.1\r\nHost: x\r\n\r\n", &r);
	assert_refused(&r, NULL);
	raw_free(&r);
	stop_ok(&d);
}
END_TEST

/* ---- errors libmicrohttpd writes itself (documented in the README) ---- */

/* Status and close only: the library writes its own small HTML page for
 * these, before jobqd sees the request, and closes the connection. */
static void assert_library_error(const struct raw *r, int status)
{
	ck_assert_msg(r->status == status, "status %d, want %d; head:\n%s", r->status, status, r->head);
	ck_assert_msg(r->closed, "the connection stayed open after %d", status);
}

START_TEST(library_errors_are_sent_and_close_the_connection)
{
	struct jobqd d;
	struct raw r;
	char big[12000];
	int n;

	harness_start(&d, NULL);
	RAW(&d, "GET /healthz HTTP/1.1 junk\r\nHost: x\r\n\r\n", &r);
	assert_library_error(&r, 400);
	raw_free(&r);
	RAW(&d, "POST /v1/jobs HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
		"Content-Length: 99999999999999999999\r\n\r\n", &r);
	assert_library_error(&r, 413);
	raw_free(&r);
	RAW(&d, "GET /healthz HTTP/2.0\r\nHost: x\r\n\r\n", &r);
	assert_library_error(&r, 505);
	raw_free(&r);
	n = snprintf(big, sizeof big, "GET /%09000d HTTP/1.1\r\nHost: x\r\n\r\n", 0);
	raw_exchange(&d, big, (size_t)n, &r);
	assert_library_error(&r, 414);
	raw_free(&r);
	n = snprintf(big, sizeof big, "GET /healthz HTTP/1.1\r\nHost: x\r\nX-Big: %09000d\r\n\r\n", 0);
	raw_exchange(&d, big, (size_t)n, &r);
	assert_library_error(&r, 431);
	raw_free(&r);
	/* A request line with no target at all is closed without a reply. */
	RAW(&d, "GARBAGE\r\n\r\n", &r);
	ck_assert_int_eq(r.status, 0);
	ck_assert(r.closed);
	raw_free(&r);
	stop_ok(&d);
}
END_TEST

/* ---- the request deadline ---- */

/* Sends step every DRIP_STEP_MS until the server answers or closes;
 * returns the reply (status 0 if it never came within DRIP_BOUND_MS). */
static void drip(int fd, const char *step, struct raw *r)
{
	double until = mono_ms() + DRIP_BOUND_MS;

	memset(r, 0, sizeof *r);
	while (mono_ms() < until) {
		struct pollfd p = { .fd = fd, .events = POLLIN };
		if (poll(&p, 1, DRIP_STEP_MS) > 0 || raw_send(fd, step, strlen(step)) != 0)
			break;
	}
	if (mono_ms() < until)
		raw_read(fd, r, 1);
}

START_TEST(deadline_slow_headers_get_408)
{
	struct jobqd d;
	struct raw r;
	int fd;

	harness_start(&d, ARGS("--request-timeout", "1"));
	fd = raw_connect(&d);
	raw_send(fd, "GET /healthz HTTP/1.1\r\nHost: x\r\n", 32);
	drip(fd, "X-A: b\r\n", &r);
	close(fd);
	assert_raw_problem(&r, 408, "request_timeout", NULL);
	ck_assert(r.closed);
	raw_free(&r);
	stop_ok(&d);
}
END_TEST

/* On a kept-alive connection the clock restarts with each request line. */
START_TEST(deadline_slow_second_request_on_a_kept_connection_gets_408)
{
	static const char fast[] = "GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n";
	struct jobqd d;
	struct raw r;
	int fd;

	harness_start(&d, ARGS("--request-timeout", "1"));
	fd = raw_connect(&d);
	raw_send(fd, fast, sizeof fast - 1);
	raw_read(fd, &r, 0);
	ck_assert_int_eq(r.status, 200);
	raw_free(&r);
	raw_send(fd, "GET /healthz HTTP/1.1\r\nHost: x\r\n", 32);
	drip(fd, "X-A: b\r\n", &r);
	close(fd);
	assert_raw_problem(&r, 408, "request_timeout", NULL);
	ck_assert(r.closed);
	raw_free(&r);
	stop_ok(&d);
}
END_TEST

START_TEST(deadline_slow_body_gets_408)
{
	struct jobqd d;
	struct raw r;
	int fd;
	static const char head[] = "POST /v1/jobs HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
				   "Content-Length: 1000000\r\n\r\n{\"type\":\"echo\",\"payload\":\"";

	harness_start_env(&d, NULL, ARGS("JOBQ_REQUEST_TIMEOUT=1"));
	fd = raw_connect(&d);
	raw_send(fd, head, sizeof head - 1);
	drip(fd, "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa", &r);
	close(fd);
	assert_raw_problem(&r, 408, "request_timeout", NULL);
	ck_assert(r.closed);
	raw_free(&r);
	stop_ok(&d);
}
END_TEST

START_TEST(deadline_stalled_body_gets_408)
{
	struct jobqd d;
	struct raw r;
	int fd;
	static const char req[] = "POST /v1/jobs HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
				  "Content-Length: 100\r\n\r\n{";

	harness_start(&d, ARGS("--request-timeout", "1"));
	fd = raw_connect(&d);
	raw_send(fd, req, sizeof req - 1);
	raw_read(fd, &r, 1);
	close(fd);
	assert_raw_problem(&r, 408, "request_timeout", NULL);
	ck_assert(r.closed);
	raw_free(&r);
	stop_ok(&d);
}
END_TEST

/* The deadline covers the request coming in, not the answer: a long-poll
 * that outlasts it is answered. */
START_TEST(deadline_does_not_cut_a_long_poll)
{
	struct jobqd d;
	struct resp r;
	char path[128];
	cJSON *j;

	harness_start(&d, ARGS("--request-timeout", "1"));
	harness_request(&d, "POST", "/v1/jobs", "application/json",
			"{\"type\":\"sleep\",\"payload\":{\"seconds\":2}}", NULL, &r);
	ck_assert_int_eq(r.status, 201);
	snprintf(path, sizeof path, "/v1/jobs/%s?wait=10", jstr_or(r.json, "id"));
	harness_resp_free(&r);
	harness_request(&d, "GET", path, NULL, NULL, NULL, &r);
	ck_assert_msg(r.status == 200, "long-poll: %ld %s", r.status, r.body);
	j = r.json;
	ck_assert_str_eq(jstr_or(j, "state"), "succeeded");
	harness_resp_free(&r);
	stop_ok(&d);
}
END_TEST

/* ---- the connection limit ---- */

/* A kept-alive connection that has had one answer: jobqd holds it open.
 * Retried while jobqd has yet to see an earlier client's close. */
static int held_connection(const struct jobqd *d)
{
	static const char req[] = "GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n";
	struct raw r;
	double until = mono_ms() + READ_BOUND_MS;
	int fd;

	for (;;) {
		fd = raw_connect(d);
		raw_send(fd, req, sizeof req - 1);
		raw_read(fd, &r, 0);
		if (r.status != 503 || mono_ms() > until)
			break;
		raw_free(&r);
		close(fd);
		nap_ms(20);
	}
	ck_assert_msg(r.status == 200, "held connection: %d", r.status);
	raw_free(&r);
	return fd;
}

START_TEST(limit_past_max_connections_is_503_with_retry_after)
{
	struct jobqd d;
	struct raw r;
	char v[64];
	int a, b;
	double until;

	harness_start(&d, ARGS("--max-connections", "2"));
	a = held_connection(&d);
	b = held_connection(&d);
	RAW(&d, "GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n", &r);
	assert_raw_problem(&r, 503, "too_many_connections", NULL);
	ck_assert_msg(head_value(&r, "Retry-After", v, sizeof v) != NULL, "no Retry-After:\n%s", r.head);
	ck_assert(r.closed);
	raw_free(&r);
	/* Once one closes there is room again. */
	close(a);
	until = mono_ms() + READ_BOUND_MS;
	do {
		RAW(&d, "GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n", &r);
		if (r.status == 200)
			break;
		raw_free(&r);
		nap_ms(20);
	} while (mono_ms() < until);
	ck_assert_int_eq(r.status, 200);
	raw_free(&r);
	close(b);
	stop_ok(&d);
}
END_TEST

START_TEST(limit_and_timeout_flags_are_checked)
{
	struct cli_result res;

	harness_run_cli(ARGS("--max-connections", "0"), NULL, &res);
	ck_assert_int_ne(res.status, 0);
	ck_assert_msg(strstr(res.err, "--max-connections") != NULL, "stderr: %s", res.err);
	harness_cli_result_free(&res);
	harness_run_cli(ARGS("--request-timeout", "0x10"), NULL, &res);
	ck_assert_int_ne(res.status, 0);
	ck_assert_msg(strstr(res.err, "--request-timeout") != NULL, "stderr: %s", res.err);
	harness_cli_result_free(&res);
	harness_run_cli(ARGS("--help"), NULL, &res);
	ck_assert_msg(strstr(res.out, "JOBQ_REQUEST_TIMEOUT") && strstr(res.out, "JOBQ_MAX_CONNECTIONS"),
		      "help: %s", res.out);
	harness_cli_result_free(&res);
}
END_TEST

/* ---- query parameters, headers, the log ---- */

START_TEST(query_wait_in_hex_is_400_naming_wait)
{
	struct jobqd d;
	struct resp r;
	char path[160];

	harness_start(&d, NULL);
	harness_request(&d, "POST", "/v1/jobs", "application/json", JOB_BODY, NULL, &r);
	ck_assert_int_eq(r.status, 201);
	snprintf(path, sizeof path, "/v1/jobs/%s?wait=0x10", jstr_or(r.json, "id"));
	harness_resp_free(&r);
	harness_request(&d, "GET", path, NULL, NULL, NULL, &r);
	assert_problem(&r, 400, "invalid_query", "wait");
	harness_resp_free(&r);
	strcpy(strstr(path, "0x10"), "1e1");
	harness_request(&d, "GET", path, NULL, NULL, NULL, &r);
	assert_problem(&r, 400, "invalid_query", "wait");
	harness_resp_free(&r);
	stop_ok(&d);
}
END_TEST

START_TEST(query_cursor_past_the_integer_range_is_400_naming_cursor)
{
	struct jobqd d;
	struct resp r;

	harness_start(&d, NULL);
	harness_request(&d, "GET", "/v1/jobs?cursor=12345678901234567890123", NULL, NULL, NULL, &r);
	assert_problem(&r, 400, "invalid_query", "cursor");
	harness_resp_free(&r);
	harness_request(&d, "GET", "/v1/jobs?cursor=+12", NULL, NULL, NULL, &r);
	assert_problem(&r, 400, "invalid_query", "cursor");
	harness_resp_free(&r);
	stop_ok(&d);
}
END_TEST

START_TEST(every_reply_has_nosniff)
{
	static const char *const paths[] = { "/healthz", "/v1/jobs", "/v1/queues", "/nope", "/",
					     "/openapi.yaml", "/metrics", NULL };
	struct jobqd d;
	struct resp r;
	char v[64];

	harness_start(&d, NULL);
	for (int i = 0; paths[i]; i++) {
		harness_request(&d, "GET", paths[i], NULL, NULL, NULL, &r);
		ck_assert_msg(harness_header(&r, "X-Content-Type-Options", v, sizeof v) && strcmp(v, "nosniff") == 0,
			      "%s: no X-Content-Type-Options: nosniff:\n%s", paths[i], r.headers);
		harness_resp_free(&r);
	}
	harness_request(&d, "POST", "/v1/jobs", "application/json", JOB_BODY, NULL, &r);
	ck_assert_msg(harness_header(&r, "X-Content-Type-Options", v, sizeof v) && strcmp(v, "nosniff") == 0,
		      "submit: no nosniff:\n%s", r.headers);
	harness_resp_free(&r);
	stop_ok(&d);
}
END_TEST

/* The request line of the log names the queue routes by their parameter,
 * as openapi.yaml does. */
START_TEST(log_labels_queue_routes_by_name)
{
	struct jobqd d;
	struct resp r;
	double until;
	char *log = NULL;
	const char *line;

	harness_start(&d, NULL);
	harness_request(&d, "GET", "/v1/queues/default", NULL, NULL, "X-Request-Id: queue-route-1", &r);
	ck_assert_int_eq(r.status, 200);
	harness_resp_free(&r);
	until = mono_ms() + LOG_BOUND_MS;
	do {
		free(log);
		log = harness_read_file(d.log);
		line = strstr(log, "request_id=queue-route-1");
		if (line)
			break;
		nap_ms(10);
	} while (mono_ms() < until);
	ck_assert_msg(line != NULL, "no request line:\n%s", log);
	while (line > log && line[-1] != '\n')
		line--;
	ck_assert_msg(strncmp(strstr(line, "route="), "route=/v1/queues/{name} ", 24) == 0, "line: %.300s", line);
	free(log);
	stop_ok(&d);
}
END_TEST

/* ---- suite ---- */

static Suite *hostile_suite(void)
{
	Suite *s = suite_create("hostile");
	TCase *tc;

	tc = tcase(s, "framing");
	tcase_add_test(tc, framing_two_different_content_lengths_are_400);
	tcase_add_test(tc, framing_chunked_with_content_length_is_400);
	tcase_add_test(tc, framing_transfer_encoding_other_than_chunked_is_400);
	tcase_add_test(tc, framing_space_before_colon_is_400);
	tcase_add_test(tc, framing_nul_in_a_header_value_is_400);
	tcase_add_test(tc, framing_bare_cr_in_a_header_value_is_400);
	tcase_add_test(tc, framing_http11_without_host_is_400_http10_is_served);
	tcase_add_test(tc, framing_honest_chunked_and_repeated_equal_length_are_served);

	tc = tcase(s, "target");
	tcase_add_test(tc, target_encoded_nul_is_400_not_a_shorter_path);
	tcase_add_test(tc, target_with_a_raw_nul_or_space_is_400);

	tc = tcase(s, "library");
	tcase_add_test(tc, library_errors_are_sent_and_close_the_connection);

	tc = tcase(s, "deadline");
	tcase_add_test(tc, deadline_slow_headers_get_408);
	tcase_add_test(tc, deadline_slow_second_request_on_a_kept_connection_gets_408);
	tcase_add_test(tc, deadline_slow_body_gets_408);
	tcase_add_test(tc, deadline_stalled_body_gets_408);
	tcase_add_test(tc, deadline_does_not_cut_a_long_poll);

	tc = tcase(s, "limit");
	tcase_add_test(tc, limit_past_max_connections_is_503_with_retry_after);
	tcase_add_test(tc, limit_and_timeout_flags_are_checked);

	tc = tcase(s, "shared");
	tcase_add_test(tc, query_wait_in_hex_is_400_naming_wait);
	tcase_add_test(tc, query_cursor_past_the_integer_range_is_400_naming_cursor);
	tcase_add_test(tc, every_reply_has_nosniff);
	tcase_add_test(tc, log_labels_queue_routes_by_name);
	return s;
}

int main(void)
{
	return harness_run(hostile_suite());
}
