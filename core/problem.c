/* The error table and problem+json rendering. */
#include "core/problem.h"

#include <stdarg.h>
#include <stdio.h>

static const struct problem_info problems[PROBLEM_KIND_COUNT] = {
	[PROBLEM_MALFORMED_JSON] = {"malformed_json", 400, "Malformed JSON"},
	[PROBLEM_INVALID_FIELD] = {"invalid_field", 400, "Invalid field"},
	[PROBLEM_INVALID_QUERY] = {"invalid_query", 400, "Invalid query parameter"},
	[PROBLEM_UNKNOWN_JOB_TYPE] = {"unknown_job_type", 422, "Unknown job type"},
	[PROBLEM_INVALID_PAYLOAD] = {"invalid_payload", 422, "Invalid payload"},
	[PROBLEM_NOT_FOUND] = {"not_found", 404, "Not found"},
	[PROBLEM_JOB_NOT_FOUND] = {"job_not_found", 404, "Job not found"},
	[PROBLEM_METHOD_NOT_ALLOWED] = {"method_not_allowed", 405, "Method not allowed"},
	[PROBLEM_UNAUTHORIZED] = {"unauthorized", 401, "Unauthorized"},
	[PROBLEM_FORBIDDEN] = {"forbidden", 403, "Forbidden"},
	[PROBLEM_ORIGIN_NOT_ALLOWED] = {"origin_not_allowed", 403, "Origin not allowed"},
	[PROBLEM_JOB_FINISHED] = {"job_finished", 409, "Job already finished"},
	[PROBLEM_JOB_NOT_RETRYABLE] = {"job_not_retryable", 409, "Job cannot be retried"},
	[PROBLEM_JOB_NOT_FINISHED] = {"job_not_finished", 409, "Job not finished"},
	[PROBLEM_QUEUE_NOT_FOUND] = {"queue_not_found", 404, "Queue not found"},
	[PROBLEM_BATCH_NOT_FOUND] = {"batch_not_found", 404, "Batch not found"},
	[PROBLEM_IDEMPOTENCY_CONFLICT] = {"idempotency_conflict", 409, "Idempotency key reused"},
	[PROBLEM_BODY_TOO_LARGE] = {"body_too_large", 413, "Body too large"},
	[PROBLEM_UNSUPPORTED_MEDIA_TYPE] = {"unsupported_media_type", 415, "Unsupported media type"},
	[PROBLEM_SHUTTING_DOWN] = {"shutting_down", 503, "Shutting down"},
	[PROBLEM_STORAGE_UNAVAILABLE] = {"storage_unavailable", 503, "Storage unavailable"},
	[PROBLEM_BAD_REQUEST] = {"bad_request", 400, "Bad request"},
	[PROBLEM_REQUEST_TIMEOUT] = {"request_timeout", 408, "Request timeout"},
	[PROBLEM_TOO_MANY_CONNECTIONS] = {"too_many_connections", 503, "Too many connections"},
	[PROBLEM_INTERNAL] = {"internal", 500, "Internal error"},
	[PROBLEM_LEASE_LOST] = {"lease_lost", 409, "Lease lost"},
	[PROBLEM_QUEUE_NOT_EXTERNAL] = {"queue_not_external", 422, "Queue not external"},
	[PROBLEM_INVALID_DEPENDENCY] = {"invalid_dependency", 422, "Invalid dependency"},
	[PROBLEM_SCHEDULE_NOT_FOUND] = {"schedule_not_found", 404, "Schedule not found"},
	[PROBLEM_SCHEDULE_EXISTS] = {"schedule_exists", 409, "Schedule already exists"},
	[PROBLEM_UNKNOWN_TIME_ZONE] = {"unknown_time_zone", 422, "Unknown time zone"},
};

const struct problem_info *problem_info(enum problem_kind kind)
{
	return &problems[kind];
}

int problem_set(struct problem *p, enum problem_kind kind, const char *field,
                const char *fmt, ...)
{
	p->kind = kind;
	snprintf(p->field, sizeof p->field, "%s", field ? field : "");
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(p->detail, sizeof p->detail, fmt, ap);
	va_end(ap);
	return -1;
}

cJSON *problem_to_json(const struct problem *p)
{
	const struct problem_info *info = problem_info(p->kind);
	char type[96];
	snprintf(type, sizeof type, "urn:jobq:problem:%s", info->code);
	cJSON *o = cJSON_CreateObject();
	if (!o)
		return NULL;
	cJSON_AddStringToObject(o, "type", type);
	cJSON_AddStringToObject(o, "title", info->title);
	cJSON_AddNumberToObject(o, "status", info->status);
	cJSON_AddStringToObject(o, "detail", p->detail);
	cJSON_AddStringToObject(o, "code", info->code);
	if (p->field[0])
		cJSON_AddStringToObject(o, "field", p->field);
	return o;
}
