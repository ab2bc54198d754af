/* The http job kind: validates a payload, turns it into a request for the
 * engine (workers/engine.h, shared with callbacks) and turns the response
 * into the job's result or error. Which hosts and addresses may be reached
 * is the egress rules' business (workers/egress.h), checked by the engine
 * on every connection. */
#include "workers/http.h"

#include <math.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <curl/curl.h>

#include "core/clock.h"
#include "core/kind.h"
#include "core/log.h"
#include "core/run.h"
#include "core/text.h"
#include "workers/egress.h"
#include "workers/engine.h"

#define TIMEOUT_DEFAULT_S 30.0
#define TIMEOUT_MAX_S 3600.0
#define HEADERS_MAX 100          /* payload.headers entries */
#define EXPECT_MAX 100           /* payload.expect_status entries */
#define RETRY_AFTER_MAX_S 86400  /* a longer Retry-After is capped */

static const char *const methods[] = {"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"};

static const char *const payload_fields[] = {
	"url", "method", "headers", "body", "json", "timeout_s", "expect_status", "follow_redirects",
};

/* A job's transfer: the engine's, then what ending the attempt needs. */
struct http_xfer {
	struct xfer x;            /* first: the engine hands back &x */
	struct run *run;
	int expect[EXPECT_MAX];
	int nexpect;              /* 0: any 2xx */
};

static bool kind_registered;

/* ---- the job kind ---- */

static bool header_name_ok(const char *s)
{
	static const char tchar[] = "!#$%&'*+-.^_`|~";
	size_t n = strlen(s);
	if (n == 0 || n >= ENGINE_HEADER_NAME_MAX)
		return false;
	for (; *s; s++)
		if (!((*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z') || (*s >= '0' && *s <= '9') ||
		      strchr(tchar, *s)))
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
	if (!cJSON_IsString(url) || engine_url_parse(url->valuestring, NULL, NULL, &why) != 0)
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
		if (!cJSON_IsString(e) || !engine_header_value_ok(e->valuestring))
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
static int set_request(struct http_xfer *j, const cJSON *payload, const char **why)
{
	struct xfer *x = &j->x;
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
		if (engine_header_append(&x->headers, it->string, it->valuestring) != 0)
			return -1;
	}
	const char *data = NULL;
	if (json) {
		if (!(data = printed = cJSON_PrintUnformatted(json)))
			return -1;
		if (!has_type && engine_header_append(&x->headers, "Content-Type", "application/json") != 0)
			goto fail;
	} else if (body) {
		data = body->valuestring;
	}
	/* A body goes as it is: no form Content-Type made up, no Expect. */
	if (data && !has_type && !json && engine_slist_add(&x->headers, "Content-Type:") != 0)
		goto fail;
	if (engine_slist_add(&x->headers, "Expect:") != 0)
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
	rc |= curl_easy_setopt(e, CURLOPT_MAXREDIRS, ENGINE_MAX_REDIRS);
	cJSON_free(printed);
	if (rc != CURLE_OK) {
		*why = "cannot set up the request";
		return -1;
	}
	const cJSON *ex = cJSON_GetObjectItemCaseSensitive(payload, "expect_status");
	if (cJSON_IsNumber(ex))
		j->expect[j->nexpect++] = ex->valueint;
	for (const cJSON *it = cJSON_IsArray(ex) ? ex->child : NULL; it && j->nexpect < EXPECT_MAX; it = it->next)
		j->expect[j->nexpect++] = it->valueint;
	return 0;
fail:
	cJSON_free(printed);
	return -1;
}

static void on_stop(void *arg)
{
	engine_xfer_stop(arg);
}

/* ---- ending an attempt (engine thread) ---- */

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

static bool status_expected(const struct http_xfer *j, long status)
{
	if (j->nexpect == 0)
		return status >= 200 && status <= 299;
	for (int i = 0; i < j->nexpect; i++)
		if (j->expect[i] == status)
			return true;
	return false;
}

/* Ends a job's attempt (the transfer's finish); x is freed. */
static void finish_job(struct xfer *x, CURLcode rc, const char *aborted)
{
	struct http_xfer *j = (struct http_xfer *)(void *)x;
	struct run *run = j->run;
	bool stopped = aborted != NULL;
	cJSON *result = NULL;
	char *error = NULL;
	enum run_outcome outcome;
	long status = 0;
	bool final;
	if (stopped) {
		outcome = RUN_STOPPED;
	} else if ((error = engine_transfer_error(x, rc, &final))) {
		outcome = final ? RUN_FAILED_FINAL : RUN_FAILED;
	} else if (curl_easy_getinfo(x->easy, CURLINFO_RESPONSE_CODE, &status) == CURLE_OK &&
	           status_expected(j, status)) {
		result = job_result(x, status);
		outcome = result ? RUN_SUCCEEDED : RUN_FAILED;
		if (!result)
			error = strdup("out of memory building the result");
	} else {
		error = engine_error_text("HTTP %ld from %s", status, x->url);
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
	engine_xfer_free(x);
	run_finish(run, outcome, result, error);
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
	struct http_xfer *j = (struct http_xfer *)(void *)engine_xfer_new(sizeof *j, url, timeout_s, true, &why);
	struct xfer *x = j ? &j->x : NULL;
	if (!x || set_request(j, payload, &why) != 0)
		goto fail;
	j->run = run;
	x->finish = finish_job;
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
	engine_xfer_free(x);
	*error = strdup(why);
	return -1;
}

static const struct job_kind http_kind = {
	.name = "http", .validate = http_validate, .start = http_start_job,
};

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
	if (engine_start(o, err, errlen) != 0)
		return -1;
	if (!kind_registered && kind_register(&http_kind) != 0) {
		snprintf(err, errlen, "cannot register job type http (name taken or table full)");
		engine_stop();
		return -1;
	}
	kind_registered = true;
	return 0;
}

void http_engine_stop(void)
{
	engine_stop();
}
