/* Server-Sent Event streams: /v1/jobs/{id}/events follows one job until it
 * ends; /v1/events follows every job transition, for dashboards.
 *
 * A stream reads the event log (core/events.h) from the last id it sent.
 * With nothing to send it is suspended on the hub until an event is
 * published or its heartbeat is due, so idle streams hold no thread; the
 * heartbeat also bounds how long a vanished client goes unnoticed. A
 * client that falls further behind than the log holds is cut off. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/clock.h"
#include "core/events.h"
#include "core/hub.h"
#include "core/job.h"
#include "handlers/handlers.h"
#include "server/app.h"
#include "store/store.h"

#define READ_BATCH 64
#define EVENT_STREAM_TYPE "text/event-stream"

struct stream {
	struct hub_waiter waiter;
	struct hub *hub;
	char key[HUB_KEY_MAX + 1];
	char job_id[UUID_LEN + 1];
	char queue[JOB_NAME_MAX + 1], type[JOB_NAME_MAX + 1];
	struct event_filter filter;
	struct id_set ids;            /* /v1/events?ids= or ?batch_id= */
	uint64_t last;                /* id of the last event sent or skipped */
	bool snapshot;                /* send the job's current state first */
	bool done;                    /* end once pending is sent */
	char *pending;                /* formatted, not yet sent */
	size_t len, off;
	int64_t last_write;           /* monotonic ms */
};

static void stream_free(void *p)
{
	struct stream *s = p;
	if (!s)
		return;
	hub_disarm(s->hub, &s->waiter);
	free(s->pending);
	id_set_clear(&s->ids);
	free(s);
}

/* Last-Event-ID as a number; false when absent or malformed. */
static bool last_event_id(struct req *r, uint64_t *out)
{
	const char *v = req_header(r, "Last-Event-ID");
	if (!v || *v < '0' || *v > '9')
		return false;
	char *end;
	unsigned long long n = strtoull(v, &end, 10);
	if (*end)
		return false;
	*out = n;
	return true;
}

/* Takes frame (malloc'd) as the bytes to send next. */
static void set_pending(struct stream *s, char *frame)
{
	free(s->pending);
	s->pending = frame;
	s->len = frame ? strlen(frame) : 0;
	s->off = 0;
}

/* The job's current state as the stream's first event. */
static void snapshot(struct req *r, struct stream *s)
{
	struct job *job = NULL;
	if (store_get_job(r->app->store, s->job_id, &job) != STORE_OK) {
		s->done = true;
		return;
	}
	if (job->state == JOB_RUNNING)
		run_table_progress(r->app->runs, job->id, job);
	job->has_history = false;
	cJSON *o = job_to_json(job);
	char at[32];
	clock_rfc3339(clock_now_ms(), at);
	cJSON_AddStringToObject(o, "at", at);
	char *data = cJSON_PrintUnformatted(o);
	cJSON_Delete(o);
	size_t n = data ? strlen(data) + 64 : 0;
	char *frame = data ? malloc(n) : NULL;
	if (frame)
		snprintf(frame, n, "id: %llu\nevent: job\ndata: %s\n\n", (unsigned long long)s->last, data);
	free(data);
	s->done = !frame || job_state_terminal(job->state);
	set_pending(s, frame);
	job_free(job);
}

/* Formats the next events into pending; false when there are none. */
static bool next_events(struct req *r, struct stream *s)
{
	struct event batch[READ_BATCH];
	uint64_t oldest = 0, newest = 0;
	int n = events_read(r->app->events, s->last, &s->filter, batch, READ_BATCH, &oldest, &newest);
	if (oldest && s->last + 1 < oldest) {
		s->done = true; /* fell behind what the log holds: cut off */
		return false;
	}
	size_t cap = 0, len = 0;
	char *out = NULL;
	for (int i = 0; i < n; i++) {
		char *frame = event_frame(&batch[i]);
		size_t fl = frame ? strlen(frame) : 0;
		if (frame && len + fl + 1 > cap) {
			size_t grown_cap = (len + fl + 1) * 2;
			char *grown = realloc(out, grown_cap);
			if (grown) {
				out = grown;
				cap = grown_cap;
			}
		}
		if (frame && len + fl + 1 <= cap) {
			memcpy(out + len, frame, fl + 1);
			len += fl;
		}
		free(frame);
		if (s->job_id[0] && batch[i].kind == EVENT_JOB && job_state_terminal(batch[i].state))
			s->done = true;
	}
	/* Past every event read, matching or not, so none is read twice. */
	s->last = n == READ_BATCH ? batch[n - 1].seq : newest > s->last ? newest : s->last;
	set_pending(s, out);
	return len > 0;
}

static long stream_fill(struct req *r, char *buf, size_t max)
{
	struct stream *s = r->ctx;
	for (;;) {
		if (s->off < s->len) {
			size_t n = s->len - s->off < max ? s->len - s->off : max;
			memcpy(buf, s->pending + s->off, n);
			s->off += n;
			s->last_write = clock_mono_ms();
			return (long)n;
		}
		if (s->done || atomic_load(&r->app->stopping))
			return -1;
		if (s->snapshot) {
			s->snapshot = false;
			snapshot(r, s);
			continue;
		}
		if (next_events(r, s) || s->done)
			continue;
		if (clock_mono_ms() - s->last_write >= (int64_t)(r->app->cfg->sse_heartbeat_s * 1000)) {
			set_pending(s, strdup(": keep-alive\n\n"));
			continue;
		}
		return 0;
	}
}

/* Suspended with nothing to send: wake on the next event or heartbeat. */
static void stream_arm(struct req *r)
{
	struct stream *s = r->ctx;
	int64_t heartbeat = s->last_write + (int64_t)(r->app->cfg->sse_heartbeat_s * 1000);
	hub_wait(s->hub, &s->waiter, s->key, heartbeat, req_resume_cb, r);
	struct event none[1];
	uint64_t oldest = 0, newest = 0;
	events_read(r->app->events, s->last, &s->filter, none, 0, &oldest, &newest);
	if (newest > s->last || atomic_load(&r->app->stopping))
		hub_fire(s->hub, &s->waiter); /* published between the read and the arming */
}

static struct stream *stream_new(struct req *r)
{
	struct stream *s = handler_new_ctx(r, sizeof *s, stream_free);
	if (!s)
		return NULL;
	s->hub = r->app->hub;
	s->last_write = clock_mono_ms();
	return s;
}

static void start(struct req *r)
{
	reply_header(r, "Cache-Control", "no-store");
	reply_stream(r, EVENT_STREAM_TYPE, stream_fill, stream_arm);
}

void events_job_stream(struct req *r)
{
	struct job *job = NULL;
	enum store_rc rc = r->param && uuid_valid(r->param) ? store_get_job(r->app->store, r->param, &job)
	                                                     : STORE_NOT_FOUND;
	job_free(job);
	if (rc == STORE_NOT_FOUND) {
		reply_error(r, PROBLEM_JOB_NOT_FOUND, NULL, "no job with id %.40s", r->param ? r->param : "");
		return;
	}
	if (rc != STORE_OK) {
		handler_reply_unavailable(r);
		return;
	}
	struct stream *s = stream_new(r);
	if (!s)
		return;
	memcpy(s->job_id, r->param, sizeof s->job_id);
	events_key_job(s->job_id, s->key);
	s->filter.job_id = s->job_id;
	struct event none[1];
	uint64_t oldest = 0, newest = 0, from = 0;
	events_read(r->app->events, 0, &s->filter, none, 0, &oldest, &newest);
	/* Resume without a snapshot only when nothing after the client's id
	 * has been dropped from the log. */
	if (last_event_id(r, &from) && from <= newest && (oldest == 0 || from + 1 >= oldest)) {
		s->last = from;
	} else {
		s->last = newest;
		s->snapshot = true;
	}
	start(r);
}

/* The jobs of batch id into s (sorted), keeping only those in `only`
 * when it has any; -1 after replying 404 or 503. A batch's jobs are fixed
 * when it is made, so the set never grows. */
static int batch_ids(struct req *r, const char *id, const struct id_set *only, struct id_set *s)
{
	struct batch_info b;
	enum store_rc rc = store_get_batch(r->app->store, id, &b);
	delivery_clear(&b.callback);
	struct store_filter f = {.batch_id = id, .limit = JOB_BATCH_MAX, .ids = only->ptr, .nids = only->n};
	struct job **jobs = NULL;
	size_t n = 0;
	int64_t next = 0;
	if (rc == STORE_OK)
		rc = store_list_jobs(r->app->store, &f, &jobs, &n, &next);
	if (rc == STORE_NOT_FOUND)
		reply_error(r, PROBLEM_BATCH_NOT_FOUND, NULL, "no batch with id %s", id);
	else if (rc != STORE_OK)
		handler_reply_unavailable(r);
	if (rc != STORE_OK)
		return -1;
	memset(s, 0, sizeof *s);
	s->id = calloc(n ? n : 1, sizeof s->id[0]);
	s->ptr = calloc(n ? n : 1, sizeof s->ptr[0]);
	for (size_t i = 0; i < n; i++) {
		if (s->id)
			memcpy(s->id[s->n++], jobs[i]->id, sizeof s->id[0]);
		job_free(jobs[i]);
	}
	free(jobs);
	if (!s->id || !s->ptr) {
		id_set_clear(s);
		reply_error(r, PROBLEM_INTERNAL, NULL, "out of memory");
		return -1;
	}
	id_set_sort(s);
	return 0;
}

/* ?ids= and ?batch_id= into s->ids (both: the batch's jobs among ids);
 * -1 after replying. A filter that matches no job still streams nothing
 * but keep-alives, as a queue without jobs does. */
static int parse_job_filter(struct req *r, struct stream *s)
{
	const char *ids = req_query(r, "ids"), *batch = req_query(r, "batch_id");
	struct problem p;
	struct id_set given = {0};
	if (ids && jobs_parse_ids(ids, &given, &p) != 0) {
		reply_problem(r, &p);
		return -1;
	}
	if (batch && !uuid_valid(batch)) {
		id_set_clear(&given);
		reply_error(r, PROBLEM_INVALID_QUERY, "batch_id", "batch_id must be a batch id (a UUID)");
		return -1;
	}
	if (!batch) {
		s->ids = given;
	} else {
		int rc = batch_ids(r, batch, &given, &s->ids);
		id_set_clear(&given);
		if (rc != 0)
			return -1;
	}
	if (ids || batch) {
		s->filter.ids = (const char (*)[UUID_LEN + 1])s->ids.id;
		s->filter.nids = s->ids.n;
	}
	return 0;
}

void events_stream(struct req *r)
{
	const char *queue = req_query(r, "queue"), *type = req_query(r, "type");
	if (queue && !job_queue_name_valid(queue)) {
		reply_error(r, PROBLEM_INVALID_QUERY, "queue", "queue must be a queue name");
		return;
	}
	struct stream *s = stream_new(r);
	if (!s || parse_job_filter(r, s) != 0)
		return;
	snprintf(s->key, sizeof s->key, "%s", EVENTS_KEY_ALL);
	s->filter.jobs_only = true;
	if (queue) {
		snprintf(s->queue, sizeof s->queue, "%s", queue);
		s->filter.queue = s->queue;
	}
	if (type) {
		snprintf(s->type, sizeof s->type, "%s", type);
		s->filter.type = s->type;
	}
	struct event none[1];
	uint64_t oldest = 0, newest = 0, from = 0;
	events_read(r->app->events, 0, &s->filter, none, 0, &oldest, &newest);
	s->last = newest;
	if (last_event_id(r, &from)) {
		if (from <= newest && (oldest == 0 || from + 1 >= oldest)) {
			s->last = from;
		} else if (oldest) {
			/* Events after the client's id are gone: say so, then
			 * go on from the oldest held. */
			char reset[96];
			snprintf(reset, sizeof reset, "event: reset\ndata: {\"oldest\":%llu}\n\n",
			         (unsigned long long)oldest);
			set_pending(s, strdup(reset));
			s->last = oldest - 1;
		}
	}
	start(r);
}
