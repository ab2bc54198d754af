/* Job states, JSON rendering and submission validation. */
#include "core/job.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>

#include <curl/curl.h>

#include "core/clock.h"
#include "core/deps.h"
#include "core/json.h"
#include "core/kind.h"
#include "core/text.h"

static const char *const state_names[JOB_STATE_COUNT] = {
	"queued", "running", "succeeded", "failed", "canceled", "scheduled", "blocked",
};

static const char *const outcome_names[ATTEMPT_OUTCOME_COUNT] = {
	"succeeded", "failed", "timeout", "canceled", "interrupted",
};

const char *job_state_name(enum job_state state)
{
	return state_names[state];
}

int job_state_parse(const char *name, enum job_state *out)
{
	for (int i = 0; i < JOB_STATE_COUNT; i++) {
		if (strcmp(name, state_names[i]) == 0) {
			*out = (enum job_state)i;
			return 0;
		}
	}
	return -1;
}

const char *attempt_outcome_name(enum attempt_outcome outcome)
{
	return outcome_names[outcome];
}

int attempt_outcome_parse(const char *name, enum attempt_outcome *out)
{
	for (int i = 0; i < ATTEMPT_OUTCOME_COUNT; i++) {
		if (strcmp(name, outcome_names[i]) == 0) {
			*out = (enum attempt_outcome)i;
			return 0;
		}
	}
	return -1;
}

int64_t job_backoff_ms(const struct job *job, int attempt)
{
	double ceiling = job->backoff_s * ldexp(1.0, attempt > 1 ? (attempt > 60 ? 60 : attempt - 1) : 0);
	if (ceiling > job->max_backoff_s)
		ceiling = job->max_backoff_s;
	uint64_t r = 0;
	if (getrandom(&r, sizeof r, 0) != (ssize_t)sizeof r)
		r = (uint64_t)clock_mono_ms() * 0x9e3779b97f4a7c15u;
	double unit = (double)(r >> 11) / (double)(1ull << 53); /* [0, 1) */
	return (int64_t)llround(unit * ceiling * 1000);
}

struct job *job_new(void)
{
	struct job *job = calloc(1, sizeof(struct job));
	if (job) {
		job->callback.state = DELIVERY_NONE;
		job->deps.missing = -1;
	}
	return job;
}

void delivery_clear(struct delivery *d)
{
	free(d->url);
	free(d->last_error);
	d->url = d->last_error = NULL;
}

static const char *const delivery_names[] = {"pending", "delivered", "failed"};

cJSON *delivery_to_json(const struct delivery *d)
{
	if (!d->url)
		return cJSON_CreateNull();
	cJSON *o = cJSON_CreateObject();
	cJSON_AddStringToObject(o, "url", d->url);
	if (d->state == DELIVERY_NONE)
		cJSON_AddStringToObject(o, "state", "waiting");
	else
		cJSON_AddStringToObject(o, "state", delivery_names[d->state]);
	cJSON_AddNumberToObject(o, "attempts", d->attempts);
	if (d->last_status)
		cJSON_AddNumberToObject(o, "last_status", d->last_status);
	else
		cJSON_AddNullToObject(o, "last_status");
	if (d->last_error)
		cJSON_AddStringToObject(o, "last_error", d->last_error);
	else
		cJSON_AddNullToObject(o, "last_error");
	return o;
}

cJSON *batch_to_json(const struct batch_info *b)
{
	cJSON *o = cJSON_CreateObject();
	cJSON_AddStringToObject(o, "id", b->id);
	cJSON_AddNumberToObject(o, "total", (double)b->total);
	cJSON *counts = cJSON_AddObjectToObject(o, "counts");
	static const enum job_state order[] = {JOB_BLOCKED, JOB_SCHEDULED, JOB_QUEUED, JOB_RUNNING,
	                                       JOB_SUCCEEDED, JOB_FAILED, JOB_CANCELED};
	for (size_t i = 0; i < sizeof order / sizeof order[0]; i++)
		cJSON_AddNumberToObject(counts, job_state_name(order[i]), (double)b->counts[order[i]]);
	cJSON_AddBoolToObject(o, "done", b->finished_at != 0);
	char when[32];
	clock_rfc3339(b->created_at, when);
	cJSON_AddStringToObject(o, "created_at", when);
	if (b->finished_at) {
		clock_rfc3339(b->finished_at, when);
		cJSON_AddStringToObject(o, "finished_at", when);
	} else {
		cJSON_AddNullToObject(o, "finished_at");
	}
	cJSON_AddItemToObject(o, "callback", delivery_to_json(&b->callback));
	return o;
}

/* True when u parses with libcurl's URL parser, as the http job type
 * parses its URLs, with an http or https scheme, a host and a port that
 * fits (an unclosed [ or port 99999 would only fail at delivery). */
static bool callback_url_parses(const char *u)
{
	CURLU *h = curl_url();
	char *scheme = NULL, *host = NULL;
	bool ok = h && curl_url_set(h, CURLUPART_URL, u, 0) == CURLUE_OK &&
	          curl_url_get(h, CURLUPART_SCHEME, &scheme, 0) == CURLUE_OK &&
	          (strcmp(scheme, "http") == 0 || strcmp(scheme, "https") == 0) &&
	          curl_url_get(h, CURLUPART_HOST, &host, 0) == CURLUE_OK && host[0];
	curl_free(scheme);
	curl_free(host);
	curl_url_cleanup(h);
	return ok;
}

int job_parse_callback_url(const cJSON *body, const char **out, struct problem *p)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(body, "callback_url");
	*out = NULL;
	if (!v)
		return 0;
	if (!cJSON_IsString(v))
		return problem_set(p, PROBLEM_INVALID_FIELD, "callback_url", "callback_url must be a string");
	const char *u = v->valuestring;
	size_t n = strlen(u);
	bool scheme = strncmp(u, "http://", 7) == 0 || strncmp(u, "https://", 8) == 0;
	char first = scheme ? u[strncmp(u, "https://", 8) == 0 ? 8 : 7] : '\0';
	bool host = first != '\0' && first != '/';
	bool clean = true;
	for (const char *c = u; *c && clean; c++)
		clean = (unsigned char)*c > 0x20 && *c != 0x7f;
	if (!scheme || !host || !clean || n > CALLBACK_URL_MAX)
		return problem_set(p, PROBLEM_INVALID_FIELD, "callback_url",
		                   "callback_url must be an http:// or https:// URL of at most %d bytes", CALLBACK_URL_MAX);
	if (!callback_url_parses(u))
		return problem_set(p, PROBLEM_INVALID_FIELD, "callback_url",
		                   "callback_url is not a valid URL (check the host, the [ ] around an IPv6 "
		                   "address, and that the port is at most 65535)");
	*out = u;
	return 0;
}

void job_free(struct job *job)
{
	if (!job)
		return;
	free(job->payload);
	free(job->result);
	free(job->error);
	free(job->idem_key);
	delivery_clear(&job->callback);
	for (int i = 0; i < job->nhistory; i++)
		free(job->history[i].error);
	free(job->history);
	free(job->deps.ids);
	free(job->deps.refs);
	free(job);
}

/* Adds key: the stored JSON text as it is (a payload keeps the numbers and
 * escapes it was sent with), or null when text is NULL. Text that is not
 * JSON means a damaged row: show it as a string rather than lose it. */
static void add_json_text(cJSON *o, const char *key, const char *text)
{
	cJSON *v = !text ? cJSON_CreateNull() : json_valid(text) ? cJSON_CreateRaw(text) : cJSON_CreateString(text);
	cJSON_AddItemToObject(o, key, v);
}

static void add_time(cJSON *o, const char *key, int64_t ms)
{
	if (ms == 0) {
		cJSON_AddNullToObject(o, key);
		return;
	}
	char buf[32];
	clock_rfc3339(ms, buf);
	cJSON_AddStringToObject(o, key, buf);
}

cJSON *job_to_json(const struct job *job)
{
	cJSON *o = cJSON_CreateObject();
	if (!o)
		return NULL;
	cJSON_AddStringToObject(o, "id", job->id);
	cJSON_AddStringToObject(o, "type", job->type);
	cJSON_AddStringToObject(o, "queue", job->queue);
	cJSON_AddNumberToObject(o, "priority", job->priority);
	cJSON_AddStringToObject(o, "state", job_state_name(job->state));
	add_json_text(o, "payload", job->payload);
	add_json_text(o, "result", job->result);
	if (job->error)
		cJSON_AddStringToObject(o, "error", job->error);
	else
		cJSON_AddNullToObject(o, "error");
	if (job->has_progress) {
		cJSON *p = cJSON_AddObjectToObject(o, "progress");
		cJSON_AddNumberToObject(p, "percent", job->progress_percent);
		cJSON_AddStringToObject(p, "message", job->progress_message);
	} else {
		cJSON_AddNullToObject(o, "progress");
	}
	cJSON_AddNumberToObject(o, "attempts", job->attempts);
	cJSON_AddNumberToObject(o, "max_attempts", job->max_attempts);
	cJSON_AddNumberToObject(o, "backoff_s", job->backoff_s);
	cJSON_AddNumberToObject(o, "max_backoff_s", job->max_backoff_s);
	cJSON_AddNumberToObject(o, "timeout_s", job->timeout_s);
	cJSON_AddNumberToObject(o, "retention_s", job->retention_s);
	add_time(o, "created_at", job->created_at);
	add_time(o, "run_at", job->run_at);
	add_time(o, "started_at", job->started_at);
	add_time(o, "finished_at", job->finished_at);
	if (job->state == JOB_RUNNING && job->node[0])
		cJSON_AddStringToObject(o, "node", job->node);
	if (job->batch_id[0])
		cJSON_AddStringToObject(o, "batch_id", job->batch_id);
	else
		cJSON_AddNullToObject(o, "batch_id");
	cJSON_AddItemToObject(o, "callback", delivery_to_json(&job->callback));
	cJSON *deps = cJSON_AddArrayToObject(o, "depends_on");
	for (int i = 0; i < job->deps.n; i++)
		cJSON_AddItemToArray(deps, cJSON_CreateString(job->deps.ids[i]));
	cJSON_AddStringToObject(o, "on_dependency_failure", dep_policy_name(job->deps.policy));
	cJSON_AddNumberToObject(o, "dependencies_pending", job->state == JOB_BLOCKED ? job->deps.pending : 0);
	if (job->schedule_name[0]) {
		cJSON *sc = cJSON_AddObjectToObject(o, "schedule");
		cJSON_AddStringToObject(sc, "name", job->schedule_name);
		add_time(sc, "fire_at", job->schedule_fire_at);
	} else {
		cJSON_AddNullToObject(o, "schedule");
	}
	if (job->has_history) {
		cJSON *h = cJSON_AddArrayToObject(o, "attempt_history");
		for (int i = 0; i < job->nhistory; i++) {
			const struct job_attempt *a = &job->history[i];
			cJSON *e = cJSON_CreateObject();
			cJSON_AddNumberToObject(e, "attempt", a->attempt);
			add_time(e, "started_at", a->started_at);
			add_time(e, "finished_at", a->finished_at);
			cJSON_AddStringToObject(e, "outcome", attempt_outcome_name(a->outcome));
			if (a->error)
				cJSON_AddStringToObject(e, "error", a->error);
			else
				cJSON_AddNullToObject(e, "error");
			cJSON_AddItemToArray(h, e);
		}
	}
	return o;
}

/* ---- the reply text, written straight into a buffer ---------------------- */

/* Two decimal digits at w. */
static char *put2(char *w, int v)
{
	w[0] = (char)('0' + v / 10);
	w[1] = (char)('0' + v % 10);
	return w + 2;
}

/* clock_rfc3339's text (2026-11-21T13:05:11.042Z) without gmtime and
 * printf: days to a civil date by the era arithmetic of proleptic
 * Gregorian calendars. Instants outside years 1970..9999 go through
 * clock_rfc3339 itself. */
static void out_time(struct json_out *o, int64_t ms)
{
	char text[32];
	if (ms == 0) {
		json_out_lit(o, "null");
		return;
	}
	if (ms < 0 || ms >= INT64_C(253402300800000)) {
		clock_rfc3339(ms, text);
		json_out_str(o, text);
		return;
	}
	int64_t secs = ms / 1000, days = secs / 86400, sod = secs % 86400;
	int64_t z = days + 719468, era = z / 146097;
	int64_t doe = z - era * 146097;
	int64_t yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
	int64_t doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
	int64_t mp = (5 * doy + 2) / 153;
	int day = (int)(doy - (153 * mp + 2) / 5 + 1);
	int month = (int)(mp < 10 ? mp + 3 : mp - 9);
	int year = (int)(yoe + era * 400 + (month <= 2));
	int milli = (int)(ms % 1000);
	char *w = text;
	*w++ = '"';
	w = put2(w, year / 100);
	w = put2(w, year % 100);
	*w++ = '-';
	w = put2(w, month);
	*w++ = '-';
	w = put2(w, day);
	*w++ = 'T';
	w = put2(w, (int)(sod / 3600));
	*w++ = ':';
	w = put2(w, (int)(sod / 60 % 60));
	*w++ = ':';
	w = put2(w, (int)(sod % 60));
	*w++ = '.';
	*w++ = (char)('0' + milli / 100);
	w = put2(w, milli % 100);
	*w++ = 'Z';
	*w++ = '"';
	json_out_raw(o, text, (size_t)(w - text));
}

/* Stored JSON text as add_json_text renders it. */
static void out_json_text(struct json_out *o, const char *text)
{
	if (!text)
		json_out_lit(o, "null");
	else if (json_valid(text))
		json_out_raw(o, text, strlen(text));
	else
		json_out_str(o, text);
}

static void out_str_or_null(struct json_out *o, const char *s)
{
	if (s)
		json_out_str(o, s);
	else
		json_out_lit(o, "null");
}

static void out_delivery(struct json_out *o, const struct delivery *d)
{
	if (!d->url) {
		json_out_lit(o, "null");
		return;
	}
	json_out_lit(o, "{\"url\":");
	json_out_str(o, d->url);
	json_out_lit(o, ",\"state\":");
	json_out_str(o, d->state == DELIVERY_NONE ? "waiting" : delivery_names[d->state]);
	json_out_lit(o, ",\"attempts\":");
	json_out_num(o, d->attempts);
	json_out_lit(o, ",\"last_status\":");
	if (d->last_status)
		json_out_num(o, d->last_status);
	else
		json_out_lit(o, "null");
	json_out_lit(o, ",\"last_error\":");
	out_str_or_null(o, d->last_error);
	json_out_lit(o, "}");
}

void job_write(struct json_out *o, const struct job *job)
{
	json_out_lit(o, "{\"id\":");
	json_out_str(o, job->id);
	json_out_lit(o, ",\"type\":");
	json_out_str(o, job->type);
	json_out_lit(o, ",\"queue\":");
	json_out_str(o, job->queue);
	json_out_lit(o, ",\"priority\":");
	json_out_num(o, job->priority);
	json_out_lit(o, ",\"state\":");
	json_out_str(o, job_state_name(job->state));
	json_out_lit(o, ",\"payload\":");
	out_json_text(o, job->payload);
	json_out_lit(o, ",\"result\":");
	out_json_text(o, job->result);
	json_out_lit(o, ",\"error\":");
	out_str_or_null(o, job->error);
	json_out_lit(o, ",\"progress\":");
	if (job->has_progress) {
		json_out_lit(o, "{\"percent\":");
		json_out_num(o, job->progress_percent);
		json_out_lit(o, ",\"message\":");
		json_out_str(o, job->progress_message);
		json_out_lit(o, "}");
	} else {
		json_out_lit(o, "null");
	}
	json_out_lit(o, ",\"attempts\":");
	json_out_num(o, job->attempts);
	json_out_lit(o, ",\"max_attempts\":");
	json_out_num(o, job->max_attempts);
	json_out_lit(o, ",\"backoff_s\":");
	json_out_num(o, job->backoff_s);
	json_out_lit(o, ",\"max_backoff_s\":");
	json_out_num(o, job->max_backoff_s);
	json_out_lit(o, ",\"timeout_s\":");
	json_out_num(o, job->timeout_s);
	json_out_lit(o, ",\"retention_s\":");
	json_out_num(o, job->retention_s);
	json_out_lit(o, ",\"created_at\":");
	out_time(o, job->created_at);
	json_out_lit(o, ",\"run_at\":");
	out_time(o, job->run_at);
	json_out_lit(o, ",\"started_at\":");
	out_time(o, job->started_at);
	json_out_lit(o, ",\"finished_at\":");
	out_time(o, job->finished_at);
	if (job->state == JOB_RUNNING && job->node[0]) {
		json_out_lit(o, ",\"node\":");
		json_out_str(o, job->node);
	}
	json_out_lit(o, ",\"batch_id\":");
	out_str_or_null(o, job->batch_id[0] ? job->batch_id : NULL);
	json_out_lit(o, ",\"callback\":");
	out_delivery(o, &job->callback);
	json_out_lit(o, ",\"depends_on\":[");
	for (int i = 0; i < job->deps.n; i++) {
		if (i > 0)
			json_out_lit(o, ",");
		json_out_str(o, job->deps.ids[i]);
	}
	json_out_lit(o, "],\"on_dependency_failure\":");
	json_out_str(o, dep_policy_name(job->deps.policy));
	json_out_lit(o, ",\"dependencies_pending\":");
	json_out_num(o, job->state == JOB_BLOCKED ? job->deps.pending : 0);
	json_out_lit(o, ",\"schedule\":");
	if (job->schedule_name[0]) {
		json_out_lit(o, "{\"name\":");
		json_out_str(o, job->schedule_name);
		json_out_lit(o, ",\"fire_at\":");
		out_time(o, job->schedule_fire_at);
		json_out_lit(o, "}");
	} else {
		json_out_lit(o, "null");
	}
	if (job->has_history) {
		json_out_lit(o, ",\"attempt_history\":[");
		for (int i = 0; i < job->nhistory; i++) {
			const struct job_attempt *a = &job->history[i];
			if (i > 0)
				json_out_lit(o, ",");
			json_out_lit(o, "{\"attempt\":");
			json_out_num(o, a->attempt);
			json_out_lit(o, ",\"started_at\":");
			out_time(o, a->started_at);
			json_out_lit(o, ",\"finished_at\":");
			out_time(o, a->finished_at);
			json_out_lit(o, ",\"outcome\":");
			json_out_str(o, attempt_outcome_name(a->outcome));
			json_out_lit(o, ",\"error\":");
			out_str_or_null(o, a->error);
			json_out_lit(o, "}");
		}
		json_out_lit(o, "]");
	}
	json_out_lit(o, "}");
}

char *job_to_text(const struct job *job, size_t *len)
{
	struct json_out o = {.buf = NULL};
	job_write(&o, job);
	return json_out_take(&o, len);
}

cJSON *job_parse_body(const char *body, size_t len, struct problem *p)
{
	if (len == 0) {
		problem_set(p, PROBLEM_MALFORMED_JSON, NULL, "the request body is empty; send a JSON object");
		return NULL;
	}
	if (!utf8_valid(body, len)) {
		problem_set(p, PROBLEM_MALFORMED_JSON, NULL, "the request body is not valid UTF-8");
		return NULL;
	}
	size_t first = 0;
	while (first < len && strchr(" \t\r\n", body[first]))
		first++;
	if (first == len || body[first] != '{') {
		problem_set(p, PROBLEM_MALFORMED_JSON, NULL, "the request body must be a JSON object");
		return NULL;
	}
	return json_parse_strict(body, len, p);
}

bool job_queue_name_valid(const char *s)
{
	size_t n = strlen(s);
	if (n == 0 || n > JOB_NAME_MAX)
		return false;
	for (; *s; s++)
		if (!strchr("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_.:-", *s))
			return false;
	return true;
}

static const char *const submission_keys[] = {
	"type", "payload", "queue", "priority", "max_attempts", "backoff_s", "max_backoff_s",
	"timeout_s", "run_at", "delay_s", "retention_s", "callback_url",
	"depends_on", "on_dependency_failure",
};

static int check_keys(const cJSON *body, struct problem *p)
{
	const cJSON *item;
	cJSON_ArrayForEach(item, body) {
		bool known = false;
		for (size_t i = 0; i < sizeof submission_keys / sizeof *submission_keys && !known; i++)
			known = strcmp(item->string, submission_keys[i]) == 0;
		if (!known)
			return problem_set(p, PROBLEM_INVALID_FIELD, item->string,
			                   "unknown field \"%.60s\"; see POST /v1/jobs in openapi.yaml for the fields of a job", item->string);
	}
	return 0;
}

/* An optional number field in [min, max] (an integer when integral is set);
 * *out is left alone when the field is absent. */
static int optional_number(const cJSON *body, const char *key, double min, double max,
                           bool integral, double *out, struct problem *p)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(body, key);
	if (!v)
		return 0;
	double d = cJSON_IsNumber(v) ? v->valuedouble : NAN;
	if (!isfinite(d) || (integral && d != floor(d)))
		return problem_set(p, PROBLEM_INVALID_FIELD, key, "%s must be %s", key, integral ? "an integer" : "a number");
	if (d < min || d > max)
		return problem_set(p, PROBLEM_INVALID_FIELD, key, "%s must be between %.15g and %.15g", key, min, max);
	*out = d;
	return 0;
}

/* An optional number of seconds in (0, max]. */
static int optional_positive(const cJSON *body, const char *key, double max, double *out,
                             struct problem *p)
{
	double d = *out;
	if (optional_number(body, key, 0, max, false, &d, p))
		return -1;
	if (d <= 0)
		return problem_set(p, PROBLEM_INVALID_FIELD, key, "%s must be more than 0 and at most %.15g", key, max);
	*out = d;
	return 0;
}

/* run_at (RFC 3339) or delay_s, not both; *run_at is untouched when neither. */
static int parse_run_at(const cJSON *body, int64_t now, int64_t *run_at, struct problem *p)
{
	const cJSON *at = cJSON_GetObjectItemCaseSensitive(body, "run_at");
	double delay = -1;
	if (optional_number(body, "delay_s", 0, JOB_DELAY_LIMIT_S, false, &delay, p))
		return -1;
	if (at && delay >= 0)
		return problem_set(p, PROBLEM_INVALID_FIELD, "delay_s", "give run_at or delay_s, not both");
	if (delay >= 0) {
		*run_at = now + (int64_t)llround(delay * 1000);
		return 0;
	}
	if (!at)
		return 0;
	if (!cJSON_IsString(at) || clock_parse_rfc3339(at->valuestring, run_at) != 0)
		return problem_set(p, PROBLEM_INVALID_FIELD, "run_at",
		                   "run_at must be an RFC 3339 date-time such as 2026-11-21T13:05:11Z");
	if (*run_at > now + (int64_t)(JOB_DELAY_LIMIT_S * 1000))
		return problem_set(p, PROBLEM_INVALID_FIELD, "run_at", "run_at must be within a year from now");
	return 0;
}

/* The payload's text for the store, checked by the kind's validator. A
 * payload from job_parse_body is raw text, kept as sent; a kind that checks
 * its payload reads its fields as C strings, so for it a \u0000 anywhere
 * in the payload is refused rather than cut. A parsed payload (from other
 * callers) is printed compactly. *text is NULL when there is none. */
static int payload_text(const cJSON *body, const struct job_kind *kind, char **text, struct problem *p)
{
	const cJSON *payload = cJSON_GetObjectItemCaseSensitive(body, "payload");
	cJSON *parsed = NULL;
	const cJSON *view = payload;
	*text = NULL;
	if (!payload)
		goto validate;
	if (!cJSON_IsRaw(payload)) {
		if (!(*text = cJSON_PrintUnformatted(payload)))
			goto oom;
		goto validate;
	}
	if (!(*text = strdup(payload->valuestring)))
		goto oom;
	if (!kind->validate)
		return 0;
	char where[sizeof p->field];
	if (json_find_nul(*text, "payload", where, sizeof where)) {
		problem_set(p, PROBLEM_INVALID_PAYLOAD, where,
		            "%s holds \\u0000 (NUL), which the %s job type cannot take; only types that take "
		            "the payload whole (echo, commands) keep it", where, kind->name);
		goto fail;
	}
	if (!(view = parsed = cJSON_Parse(*text)))
		goto oom;
validate:
	if (kind->validate && kind->validate(kind, cJSON_IsNull(view) ? NULL : view, p))
		goto fail;
	cJSON_Delete(parsed);
	return 0;
oom:
	problem_set(p, PROBLEM_INTERNAL, NULL, "out of memory");
fail:
	cJSON_Delete(parsed);
	free(*text);
	*text = NULL;
	return -1;
}

/* Copies a name into a JOB_NAME_MAX + 1 field, cut to fit. */
static void copy_name(char dst[JOB_NAME_MAX + 1], const char *src)
{
	size_t n = strnlen(src, JOB_NAME_MAX);
	memcpy(dst, src, n);
	dst[n] = '\0';
}

int job_from_submission(const cJSON *body, const struct job_defaults *d,
                        struct job **out, struct problem *p)
{
	if (check_keys(body, p))
		return -1;
	const cJSON *type = cJSON_GetObjectItemCaseSensitive(body, "type");
	if (!type)
		return problem_set(p, PROBLEM_INVALID_FIELD, "type", "type is required");
	if (!cJSON_IsString(type))
		return problem_set(p, PROBLEM_INVALID_FIELD, "type", "type must be a string");
	const struct job_kind *kind = kind_find(type->valuestring);
	const cJSON *queue = cJSON_GetObjectItemCaseSensitive(body, "queue");
	/* A job for external workers may name any type: it runs nowhere in
	 * jobqd, and its payload is kept as sent. */
	struct job_kind external = {.name = type->valuestring};
	if (!kind && d->external && cJSON_IsString(queue) && job_queue_name_valid(queue->valuestring) &&
	    d->external(d->external_arg, queue->valuestring)) {
		if (!job_queue_name_valid(type->valuestring))
			return problem_set(p, PROBLEM_INVALID_FIELD, "type",
			                   "type must be 1 to %d characters of A-Z a-z 0-9 _ . : -", JOB_NAME_MAX);
		kind = &external;
	}
	if (!kind)
		return problem_set(p, PROBLEM_UNKNOWN_JOB_TYPE, "type", "no job type named \"%.64s\" is registered", type->valuestring);

	if (queue && !cJSON_IsString(queue))
		return problem_set(p, PROBLEM_INVALID_FIELD, "queue", "queue must be a string");
	if (queue && !job_queue_name_valid(queue->valuestring))
		return problem_set(p, PROBLEM_INVALID_FIELD, "queue", "queue must be 1 to %d characters of A-Z a-z 0-9 _ . : -", JOB_NAME_MAX);

	double prio = 0;
	if (optional_number(body, "priority", -JOB_PRIORITY_LIMIT, JOB_PRIORITY_LIMIT, true, &prio, p))
		return -1;
	struct job shape = {
		.max_attempts = d->max_attempts, .backoff_s = d->backoff_s,
		.max_backoff_s = d->max_backoff_s, .timeout_s = d->timeout_s,
		.retention_s = d->retention_s,
	};
	double attempts = shape.max_attempts;
	if (optional_number(body, "max_attempts", 1, JOB_MAX_ATTEMPTS_LIMIT, true, &attempts, p) ||
	    optional_positive(body, "backoff_s", JOB_BACKOFF_LIMIT_S, &shape.backoff_s, p) ||
	    optional_positive(body, "max_backoff_s", JOB_MAX_BACKOFF_LIMIT_S, &shape.max_backoff_s, p) ||
	    optional_positive(body, "timeout_s", JOB_TIMEOUT_LIMIT_S, &shape.timeout_s, p) ||
	    optional_number(body, "retention_s", 0, JOB_RETENTION_LIMIT_S, false, &shape.retention_s, p))
		return -1;
	shape.max_attempts = (int)attempts;
	if (shape.max_backoff_s < shape.backoff_s)
		return problem_set(p, PROBLEM_INVALID_FIELD, "max_backoff_s",
		                   "max_backoff_s (%g) must not be below backoff_s (%g)", shape.max_backoff_s, shape.backoff_s);
	int64_t now = clock_now_ms(), run_at = now;
	if (parse_run_at(body, now, &run_at, p))
		return -1;
	const char *callback_url = NULL;
	if (job_parse_callback_url(body, &callback_url, p))
		return -1;

	char *text = NULL;
	if (payload_text(body, kind, &text, p))
		return -1;
	struct job *job = job_new();
	if (!job) {
		free(text);
		return problem_set(p, PROBLEM_INTERNAL, NULL, "out of memory");
	}
	uuid_v7(job->id);
	/* Both fit: a kind's name and a valid queue name are at most JOB_NAME_MAX. */
	copy_name(job->type, kind->name);
	copy_name(job->queue, queue ? queue->valuestring : "default");
	job->priority = (int)prio;
	job->max_attempts = shape.max_attempts;
	job->backoff_s = shape.backoff_s;
	job->max_backoff_s = shape.max_backoff_s;
	job->timeout_s = shape.timeout_s;
	job->retention_s = shape.retention_s;
	job->payload = text;
	job->created_at = now;
	job->run_at = run_at > now ? run_at : now;
	job->state = run_at > now ? JOB_SCHEDULED : JOB_QUEUED;
	if (callback_url && !(job->callback.url = strdup(callback_url))) {
		job_free(job);
		return problem_set(p, PROBLEM_INTERNAL, NULL, "out of memory");
	}
	if (deps_parse(body, job, p)) {
		job_free(job);
		return -1;
	}
	*out = job;
	return 0;
}

void job_batch_clear(struct job_batch *b)
{
	for (int i = 0; b->jobs && i < b->njobs; i++)
		job_free(b->jobs[i]);
	free(b->jobs);
	free(b->callback_url);
	*b = (struct job_batch){.jobs = NULL};
}

/* Validates jobs[i] into b->jobs[i]; -1 with p naming jobs[i] or its field. */
static int batch_item(const cJSON *item, int i, const struct job_defaults *d, struct job_batch *b,
                      struct problem *p)
{
	if (!cJSON_IsObject(item)) {
		char field[32];
		snprintf(field, sizeof field, "jobs[%d]", i);
		return problem_set(p, PROBLEM_INVALID_FIELD, field, "jobs[%d] must be a job object", i);
	}
	struct problem inner;
	if (job_from_submission(item, d, &b->jobs[i], &inner) == 0)
		return 0;
	char field[128];
	snprintf(field, sizeof field, "jobs[%d]%s%.80s", i, inner.field[0] ? "." : "", inner.field);
	problem_set(p, inner.kind, field, "jobs[%d]: %.200s", i, inner.detail);
	if (inner.field[0] == '\0')
		snprintf(p->field, sizeof p->field, "jobs[%d]", i);
	return -1;
}

int job_batch_from_submission(const cJSON *body, const struct job_defaults *d,
                              struct job_batch *b, struct problem *p)
{
	*b = (struct job_batch){.jobs = NULL};
	const cJSON *item;
	cJSON_ArrayForEach(item, body) {
		if (strcmp(item->string, "jobs") != 0 && strcmp(item->string, "callback_url") != 0)
			return problem_set(p, PROBLEM_INVALID_FIELD, item->string,
			                   "unknown field \"%.60s\"; a batch has jobs and callback_url", item->string);
	}
	const char *url = NULL;
	if (job_parse_callback_url(body, &url, p))
		return -1;
	const cJSON *jobs = cJSON_GetObjectItemCaseSensitive(body, "jobs");
	if (!cJSON_IsArray(jobs))
		return problem_set(p, PROBLEM_INVALID_FIELD, "jobs", "jobs must be an array of job submissions");
	int n = cJSON_GetArraySize(jobs);
	if (n < 1 || n > JOB_BATCH_MAX)
		return problem_set(p, PROBLEM_INVALID_FIELD, "jobs", "a batch holds 1 to %d jobs", JOB_BATCH_MAX);
	b->jobs = calloc((size_t)n, sizeof *b->jobs);
	if (!b->jobs || (url && !(b->callback_url = strdup(url)))) {
		job_batch_clear(b);
		return problem_set(p, PROBLEM_INTERNAL, NULL, "out of memory");
	}
	int i = 0;
	cJSON_ArrayForEach(item, jobs) {
		if (batch_item(item, i, d, b, p) != 0) {
			job_batch_clear(b);
			return -1;
		}
		b->njobs = ++i;
	}
	if (deps_batch_link(b, p)) {
		job_batch_clear(b);
		return -1;
	}
	return 0;
}
