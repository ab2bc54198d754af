/* Job states, JSON rendering and submission validation. */
#include "core/job.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/clock.h"
#include "core/kind.h"

static const char *const state_names[JOB_STATE_COUNT] = {
	"queued", "running", "succeeded", "failed", "canceled",
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

struct job *job_new(void)
{
	return calloc(1, sizeof(struct job));
}

void job_free(struct job *job)
{
	if (!job)
		return;
	free(job->payload);
	free(job->result);
	free(job->error);
	free(job);
}

/* Adds key: parsed JSON text, or null when text is NULL. Stored text was
 * produced by cJSON, so a parse failure means a damaged row: show it as a
 * string rather than lose it. */
static void add_json_text(cJSON *o, const char *key, const char *text)
{
	cJSON *v = text ? cJSON_Parse(text) : cJSON_CreateNull();
	if (!v)
		v = cJSON_CreateString(text);
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
	add_time(o, "created_at", job->created_at);
	add_time(o, "started_at", job->started_at);
	add_time(o, "finished_at", job->finished_at);
	return o;
}

bool utf8_valid(const char *s, size_t len)
{
	const unsigned char *p = (const unsigned char *)s, *end = p + len;
	while (p < end) {
		unsigned c = *p++;
		if (c < 0x80)
			continue;
		int more;
		unsigned min, cp;
		if ((c & 0xe0) == 0xc0) {
			more = 1; min = 0x80; cp = c & 0x1f;
		} else if ((c & 0xf0) == 0xe0) {
			more = 2; min = 0x800; cp = c & 0x0f;
		} else if ((c & 0xf8) == 0xf0) {
			more = 3; min = 0x10000; cp = c & 0x07;
		} else {
			return false;
		}
		if (end - p < more)
			return false;
		while (more--) {
			if ((*p & 0xc0) != 0x80)
				return false;
			cp = cp << 6 | (*p++ & 0x3f);
		}
		if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
			return false;
	}
	return true;
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
	/* JSON allows no raw control character but tab, LF and CR (white
	 * space); cJSON would skip the others as white space. */
	for (size_t i = 0; i < len; i++) {
		unsigned char c = (unsigned char)body[i];
		if (c < 0x20 && c != '\t' && c != '\n' && c != '\r') {
			problem_set(p, PROBLEM_MALFORMED_JSON, NULL, "control character 0x%02x at byte %zu; escape it", c, i);
			return NULL;
		}
	}
	const char *end = NULL;
	cJSON *v = cJSON_ParseWithLengthOpts(body, len, &end, 0);
	if (!v) {
		size_t at = end ? (size_t)(end - body) : 0;
		problem_set(p, PROBLEM_MALFORMED_JSON, NULL, "the request body is not valid JSON (error near byte %zu)", at);
		return NULL;
	}
	while (end < body + len && strchr(" \t\r\n", *end) && *end)
		end++;
	if (end != body + len) {
		cJSON_Delete(v);
		problem_set(p, PROBLEM_MALFORMED_JSON, NULL, "unexpected data after the JSON value at byte %zu", (size_t)(end - body));
		return NULL;
	}
	if (!cJSON_IsObject(v)) {
		cJSON_Delete(v);
		problem_set(p, PROBLEM_MALFORMED_JSON, NULL, "the request body must be a JSON object");
		return NULL;
	}
	return v;
}

/* Names of queues: 1..64 bytes of [A-Za-z0-9_.:-]. */
static bool name_valid(const char *s)
{
	size_t n = strlen(s);
	if (n == 0 || n > JOB_NAME_MAX)
		return false;
	for (; *s; s++)
		if (!strchr("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_.:-", *s))
			return false;
	return true;
}

static const char *const submission_keys[] = {"type", "payload", "queue", "priority"};

static int check_keys(const cJSON *body, struct problem *p)
{
	const cJSON *item;
	cJSON_ArrayForEach(item, body) {
		bool known = false;
		for (size_t i = 0; i < sizeof submission_keys / sizeof *submission_keys; i++)
			known |= strcmp(item->string, submission_keys[i]) == 0;
		if (!known)
			return problem_set(p, PROBLEM_INVALID_FIELD, item->string,
			                   "unknown field \"%.60s\"; a job has type, payload, queue and priority", item->string);
	}
	return 0;
}

int job_from_submission(const cJSON *body, struct job **out, struct problem *p)
{
	if (check_keys(body, p))
		return -1;
	const cJSON *type = cJSON_GetObjectItemCaseSensitive(body, "type");
	if (!type)
		return problem_set(p, PROBLEM_INVALID_FIELD, "type", "type is required");
	if (!cJSON_IsString(type))
		return problem_set(p, PROBLEM_INVALID_FIELD, "type", "type must be a string");
	const struct job_kind *kind = kind_find(type->valuestring);
	if (!kind)
		return problem_set(p, PROBLEM_UNKNOWN_JOB_TYPE, "type", "no job type named \"%.64s\" is registered", type->valuestring);

	const cJSON *queue = cJSON_GetObjectItemCaseSensitive(body, "queue");
	if (queue && !cJSON_IsString(queue))
		return problem_set(p, PROBLEM_INVALID_FIELD, "queue", "queue must be a string");
	if (queue && !name_valid(queue->valuestring))
		return problem_set(p, PROBLEM_INVALID_FIELD, "queue", "queue must be 1 to %d characters of A-Z a-z 0-9 _ . : -", JOB_NAME_MAX);

	const cJSON *prio = cJSON_GetObjectItemCaseSensitive(body, "priority");
	if (prio) {
		double d = cJSON_IsNumber(prio) ? prio->valuedouble : NAN;
		if (!isfinite(d) || d != floor(d))
			return problem_set(p, PROBLEM_INVALID_FIELD, "priority", "priority must be an integer");
		if (fabs(d) > JOB_PRIORITY_LIMIT)
			return problem_set(p, PROBLEM_INVALID_FIELD, "priority", "priority must be between -%d and %d", JOB_PRIORITY_LIMIT, JOB_PRIORITY_LIMIT);
	}

	const cJSON *payload = cJSON_GetObjectItemCaseSensitive(body, "payload");
	if (kind->validate && kind->validate(cJSON_IsNull(payload) ? NULL : payload, p))
		return -1;

	struct job *job = job_new();
	char *text = payload ? cJSON_PrintUnformatted(payload) : NULL;
	if (!job || (payload && !text)) {
		job_free(job);
		free(text);
		return problem_set(p, PROBLEM_INTERNAL, NULL, "out of memory");
	}
	uuid_v7(job->id);
	snprintf(job->type, sizeof job->type, "%s", kind->name);
	snprintf(job->queue, sizeof job->queue, "%s", queue ? queue->valuestring : "default");
	job->priority = prio ? (int)prio->valuedouble : 0;
	job->state = JOB_QUEUED;
	job->payload = text;
	job->created_at = clock_now_ms();
	*out = job;
	return 0;
}
