/* What every handler shares: posting a write to the store and resuming
 * when it commits, and the reply when the store is unavailable. */
#include <math.h>
#include <stdlib.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "core/clock.h"
#include "handlers/handlers.h"
#include "server/app.h"
#include "store/store.h"

void handler_reply_unavailable(struct req *r)
{
	reply_header(r, "Retry-After", "1");
	reply_error(r, PROBLEM_STORAGE_UNAVAILABLE, NULL, "the database could not be read or written; try again");
}

void handler_reply_out(struct req *r, int status, struct json_out *o)
{
	size_t len;
	char *text = json_out_take(o, &len);
	if (text)
		reply_text(r, status, "application/json", text, len);
	else
		reply_error(r, PROBLEM_INTERNAL, NULL, "out of memory");
}

/* Writer thread: the op is committed (or failed); wake the request. */
static void resume_on_commit(struct store_op *op)
{
	req_resume(op->arg);
}

void handler_post(struct req *r, struct store_op *op, req_fn on_commit)
{
	if (!op->done)
		op->done = resume_on_commit;
	op->arg = r;
	req_suspend(r, on_commit);
	store_post(r->app->store, op);
}

void *handler_new_ctx(struct req *r, size_t size, void (*ctx_free)(void *ctx))
{
	void *ctx = calloc(1, size);
	if (!ctx) {
		reply_error(r, PROBLEM_INTERNAL, NULL, "out of memory");
		return NULL;
	}
	r->ctx = ctx;
	r->ctx_free = ctx_free;
	return ctx;
}

struct store_op *handler_new_op(struct req *r, enum store_op_kind kind)
{
	struct store_op *op = handler_new_ctx(r, sizeof *op, free);
	if (op)
		op->kind = kind;
	return op;
}

bool handler_refuse_if_stopping(struct req *r)
{
	if (!atomic_load(&r->app->stopping))
		return false;
	reply_header(r, "Retry-After", "5");
	reply_error(r, PROBLEM_SHUTTING_DOWN, NULL, "jobqd is shutting down; try again shortly");
	return true;
}

/* The value of the preference called name in a Prefer header (RFC 7240:
 * comma-separated name[=value] items, each maybe with ;parameters; names
 * are case-insensitive; a value may be quoted), copied into out ("" when
 * it does not fit); NULL when the header does not hold it. */
static const char *prefer_value(const char *prefer, const char *name, char *out, size_t n)
{
	size_t nlen = strlen(name);
	for (const char *p = prefer; *p;) {
		p += strspn(p, " \t,");
		size_t item = strcspn(p, ",");
		size_t key = strcspn(p, "=;,");
		size_t k = key;
		while (k > 0 && (p[k - 1] == ' ' || p[k - 1] == '\t'))
			k--;
		if (k == nlen && strncasecmp(p, name, nlen) == 0) {
			const char *v = "";
			size_t vlen = 0;
			if (p[key] == '=') {
				v = p + key + 1;
				v += strspn(v, " \t");
				vlen = strcspn(v, ";,");
				while (vlen > 0 && (v[vlen - 1] == ' ' || v[vlen - 1] == '\t'))
					vlen--;
				if (vlen >= 2 && v[0] == '"' && v[vlen - 1] == '"')
					v++, vlen -= 2;
			}
			snprintf(out, n, "%.*s", vlen < n ? (int)vlen : 0, v);
			return out;
		}
		p += item;
	}
	return NULL;
}

int handler_wait_parse(const char *query, const char *prefer, double *wait_s, bool *from_prefer)
{
	char pref[32];
	const char *text = query ? query : prefer ? prefer_value(prefer, "wait", pref, sizeof pref) : NULL;
	*wait_s = 0;
	*from_prefer = text && !query;
	if (!text)
		return 0;
	char *end;
	double v = strtod(text, &end);
	/* strtod also takes hex, exponents, inf and nan: S is plain decimal. */
	if (end == text || *end || !isfinite(v) || v < 0 || strspn(text, "0123456789.") != (size_t)(end - text)) {
		if (!*from_prefer)
			return -1;
		*from_prefer = false; /* RFC 7240: a preference that cannot be honoured is ignored */
		return 0;
	}
	*wait_s = v > HANDLER_WAIT_MAX_S ? HANDLER_WAIT_MAX_S : v;
	return 0;
}

bool handler_prefers_minimal(struct req *r)
{
	const char *prefer = req_header(r, "Prefer");
	char v[16];
	return prefer && prefer_value(prefer, "return", v, sizeof v) && strcasecmp(v, "minimal") == 0;
}

int handler_parse_wait(struct req *r, double *wait_s, bool *from_prefer)
{
	if (handler_wait_parse(req_query(r, "wait"), req_header(r, "Prefer"), wait_s, from_prefer) == 0)
		return 0;
	reply_error(r, PROBLEM_INVALID_QUERY, "wait", "wait must be a number of seconds from 0 to %.0f",
	            HANDLER_WAIT_MAX_S);
	return -1;
}

void handler_wait(struct req *r, struct hub_waiter *w, const char *id, double wait_s,
                  req_fn on_resume, bool (*ended)(struct req *r, const char *id))
{
	req_suspend(r, on_resume);
	int64_t deadline = clock_mono_ms() + (int64_t)llround(wait_s * 1000);
	hub_wait(r->app->hub, w, id, deadline, req_resume_cb, r);
	/* Shutdown fires every waiter once after setting stopping; one armed
	 * just after that must release itself. */
	if (ended(r, id) || atomic_load(&r->app->stopping))
		hub_fire(r->app->hub, w);
}
