/* Crash torture for jobqd: C client threads submit jobs to build/jobqd-test
 * while it is SIGKILLed at a random moment of each round and restarted on the
 * same DB. Every job acknowledged with a 201 must survive, end terminal, and
 * (by the tally file the `tally` job type appends to) never have run more
 * often than its attempts allow. With --restart-pg (jobqd on PostgreSQL,
 * JOBQ_TEST_DB_URL and JOBQ_TEST_PG_DIR set) each round restarts the
 * database server instead, and jobqd must ride it out on its own. A standalone program with its own checks
 * (Check only carries the harness's assertions, see run_under_check); its
 * last line is "torture: N passed, M failed", one count per check family. */
#include "harness.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <curl/curl.h>
#include <sqlite3.h>

#define MAX_CLIENTS 64
#define MAX_KILLS 100000L
#define CLIENT_MAX_JOBS 100000L  /* submissions per client per round */
#define CLIENT_SLACK_S 30.0      /* a client stops this long after its round at the latest */
#define LOOKUP_THREADS_MAX 8     /* parallel GETs after a restart */
#define LONGPOLL_S 5.0           /* ?wait= of one GET in the final wait */
#define LOOKUP_RETRIES 100       /* 503s a lookup retries, 50 ms apart (--restart-pg) */
#define EXAMPLES 8               /* failures printed per check family */
#define EVIDENCE_MAX 5           /* failing jobs shown in detail */
#define LOG_LINES_MAX 20         /* log lines shown per failing job */
#define ID_LEN 36                /* a UUID string */

static const char *const jobqd_args[] = {
	"--workers", "4", "--backoff", "0.05", "--max-backoff", "0.2",
	"--log-level", "debug", /* per-job lines, the evidence on a failure */
	NULL,
};

struct opts {
	int restart_pg;  /* rounds restart PostgreSQL instead of killing jobqd */
	long kills;
	int clients;
	double round_s;
	uint64_t seed;
	double rate;     /* submissions per second over all clients, on average */
	double drain_s;  /* bound of the final wait */
};

/* ---- check families: each is one check in the final line ---- */

enum family {
	F_SUBMIT,
	F_UNIQUE,
	F_ALIVE,
	F_FOUND,
	F_TERMINAL,
	F_BOUNDS,
	F_TALLY_UNIQUE,
	F_FAIL_USES_ALL,
	F_HISTORY,
	F_OUTCOME,
	F_TALLY_FILE,
	F_SIGTERM,
	F_INTEGRITY,
	F_OUTAGE,
	F_COUNT
};

static const char *const family_names[F_COUNT] = {
	[F_SUBMIT] = "every submission got 201 or was cut off by the kill",
	[F_UNIQUE] = "acknowledged ids are unique",
	[F_ALIVE] = "jobqd was still running at every kill (or PostgreSQL restart)",
	[F_FOUND] = "every acknowledged job is found after every restart",
	[F_TERMINAL] = "every acknowledged job ends terminal in the final wait",
	[F_BOUNDS] = "tally runs <= attempts <= max_attempts",
	[F_TALLY_UNIQUE] = "tally attempt numbers unique per job, within 1..attempts",
	[F_FAIL_USES_ALL] = "tally jobs with fail:true end failed with attempts == max_attempts",
	[F_HISTORY] = "attempt_history has one entry per attempt, fitting the state",
	[F_OUTCOME] = "results and errors fit the job (tally line of each finished attempt)",
	[F_TALLY_FILE] = "tally file is well formed",
	[F_SIGTERM] = "SIGTERM stops jobqd with exit 0",
	[F_INTEGRITY] = "PRAGMA integrity_check is ok",
	[F_OUTAGE] = "PostgreSQL down: /readyz, submissions and reads 503 (no other 5xx); ready again after",
};

/* Families that cannot apply to this run (SQLite's integrity check on
 * PostgreSQL, the outage on SQLite) count as neither passed nor failed. */
static int family_skipped[F_COUNT];

static struct {
	pthread_mutex_t lock;
	long fails[F_COUNT];
	long checked[F_COUNT];      /* instances checked, for the report */
	char evidence[EVIDENCE_MAX][ID_LEN + 1];
	int nevidence;
} checks = { .lock = PTHREAD_MUTEX_INITIALIZER };

static int final_printed;
static int ended_early;  /* a harness assertion ended the run */
static const char *phase = "setup";

__attribute__((format(printf, 2, 3)))
static void check_fail(enum family f, const char *fmt, ...)
{
	char line[1024];
	long n;
	va_list ap;

	pthread_mutex_lock(&checks.lock);
	n = ++checks.fails[f];
	pthread_mutex_unlock(&checks.lock);
	if (n > EXAMPLES + 1)
		return;
	if (n == EXAMPLES + 1) {
		printf("FAIL [%s]: further failures of this check not shown\n",
		       family_names[f]);
		return;
	}
	va_start(ap, fmt);
	vsnprintf(line, sizeof line, fmt, ap);
	va_end(ap);
	printf("FAIL [%s]: %s\n", family_names[f], line);
}

static void check_count(enum family f, long n)
{
	pthread_mutex_lock(&checks.lock);
	checks.checked[f] += n;
	pthread_mutex_unlock(&checks.lock);
}

/* Remembers a job id to show in detail at the end (first few only). */
static void evidence_add(const char *id)
{
	int i;

	pthread_mutex_lock(&checks.lock);
	for (i = 0; i < checks.nevidence; i++)
		if (strcmp(checks.evidence[i], id) == 0)
			break;
	if (i == checks.nevidence && checks.nevidence < EVIDENCE_MAX)
		snprintf(checks.evidence[checks.nevidence++], ID_LEN + 1, "%s", id);
	pthread_mutex_unlock(&checks.lock);
}

static int failed_families(void)
{
	int f, n = 0;

	for (f = 0; f < F_COUNT; f++)
		n += checks.fails[f] > 0;
	return n;
}

/* A family that never ran because the run ended early counts as neither. */
static int family_reached(int f)
{
	if (family_skipped[f])
		return 0;
	return !ended_early || checks.checked[f] > 0 || checks.fails[f] > 0;
}

static void print_final(void)
{
	int f, passed = 0, bad = failed_families() + ended_early;

	for (f = 0; f < F_COUNT; f++)
		passed += family_reached(f) && checks.fails[f] == 0;
	final_printed = 1;
	printf("torture: %d passed, %d failed\n", passed, bad);
	fflush(stdout);
}

/* Whatever ends the process early (exit in a library) still ends the
 * output with the summary line. */
static void at_exit_report(void)
{
	if (final_printed)
		return;
	printf("torture: exited early during %s\n", phase);
	ended_early = 1;
	print_final();
}

/* ---- small tools ---- */

static double now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void sleep_s(double s)
{
	struct timespec ts;

	if (!(s > 0))
		return;
	ts.tv_sec = (time_t)s;
	ts.tv_nsec = (long)((s - (double)ts.tv_sec) * 1e9);
	while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
		;
}

/* splitmix64: one stream per client and round, all derived from --seed. */
static uint64_t rng_next(uint64_t *s)
{
	uint64_t z = (*s += 0x9E3779B97F4A7C15ULL);

	z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
	z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
	return z ^ (z >> 31);
}

static double rng_unit(uint64_t *s)
{
	return (double)(rng_next(s) >> 11) / 9007199254740992.0;
}

static int rng_below(uint64_t *s, int n)
{
	return (int)(rng_next(s) % (uint64_t)n);
}

/* Integer member key of o, or def when absent or not a number. */
static int jint_or(const cJSON *o, const char *key, int def)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);

	return cJSON_IsNumber(v) ? v->valueint : def;
}

/* 1 if pid is a live process (not gone, not a zombie that exited). */
static int process_alive(pid_t pid)
{
	char path[64], buf[512];
	const char *rp;
	FILE *f;
	size_t n;

	snprintf(path, sizeof path, "/proc/%d/stat", (int)pid);
	f = fopen(path, "r");
	if (f == NULL)
		return 0;
	n = fread(buf, 1, sizeof buf - 1, f);
	fclose(f);
	buf[n] = '\0';
	rp = strrchr(buf, ')');
	return rp != NULL && rp[1] == ' ' && rp[2] != 'Z' && rp[2] != 'X';
}

/* Appends jobqd's current log (harness_restart truncates it) to dst. */
static void log_save(const struct jobqd *d, const char *dst, const char *what)
{
	char *text = harness_read_file(d->log);
	FILE *f = fopen(dst, "a");

	if (f != NULL) {
		fprintf(f, "==== %s ====\n%s", what, text);
		fclose(f);
	}
	free(text);
}

static int copy_file(const char *src, const char *dst)
{
	FILE *in = fopen(src, "rb"), *out = NULL;
	char buf[65536];
	size_t n;
	int rc = -1;

	if (in == NULL)
		goto out;
	out = fopen(dst, "wb");
	if (out == NULL)
		goto out;
	while ((n = fread(buf, 1, sizeof buf, in)) > 0)
		if (fwrite(buf, 1, n, out) != n)
			goto out;
	rc = ferror(in) ? -1 : 0;
out:
	if (in != NULL)
		fclose(in);
	if (out != NULL && fclose(out) != 0)
		rc = -1;
	return rc;
}

/* ---- acknowledged jobs ---- */

enum kind { KIND_TALLY, KIND_ECHO, KIND_SLEEP };
static const char *const kind_names[] = { "tally", "echo", "sleep" };

#define SLEEP_SECONDS 0.05

struct job_rec {
	char id[ID_LEN + 1];
	enum kind kind;
	int fail;            /* tally: payload "fail": true */
	int max_attempts;    /* asked for (tally) or from the 201 reply */
	int round;           /* 1-based round of the submission */
	char payload[128];   /* the payload as sent */
	cJSON *final;        /* last GET in the final wait, or NULL */
	long final_status;   /* HTTP status of that GET */
	int terminal;
};

/* Set by main before the runner starts; read by the test function and
 * the threads it starts. */
static struct opts opt;

/* Appended to by the clients under lock; read without it only while no
 * client runs (after pthread_join). */
static struct {
	pthread_mutex_t lock;
	struct job_rec *v;
	size_t n, cap;
} acked = { .lock = PTHREAD_MUTEX_INITIALIZER };

static void acked_add(const struct job_rec *rec)
{
	pthread_mutex_lock(&acked.lock);
	if (acked.n == acked.cap) {
		acked.cap = acked.cap ? acked.cap * 2 : 1024;
		acked.v = realloc(acked.v, acked.cap * sizeof *acked.v);
		if (acked.v == NULL)
			abort();
	}
	acked.v[acked.n++] = *rec;
	pthread_mutex_unlock(&acked.lock);
}

static struct job_rec *acked_find(const char *id)
{
	size_t i;

	for (i = 0; i < acked.n; i++)
		if (strcmp(acked.v[i].id, id) == 0)
			return &acked.v[i];
	return NULL;
}

/* ---- clients ---- */

static atomic_int round_stop;   /* the clients of this round must stop */
static atomic_int kill_issued;  /* set just before the SIGKILL */

struct client {
	pthread_t thread;
	struct jobqd d;       /* copy: only base is used */
	int index, round;
	uint64_t rng;
	double pause_max_s;   /* pause uniform in [0, this] between submissions */
	double deadline;      /* now_s() bound */
	int refusable;        /* a 503 is a refusal (PostgreSQL restarts) */
	long sent, cut;       /* cut: cut off by the kill, or refused with 503 */
};

/* Picks the next job: 60% tally (30% of them failing, 0..0.2 s, 1..4
 * attempts), 20% echo, 20% sleep 0.05 s. */
static void make_job(struct client *c, long n, struct job_rec *rec,
		     char *body, size_t len)
{
	double u = rng_unit(&c->rng);

	memset(rec, 0, sizeof *rec);
	rec->round = c->round;
	if (u < 0.6) {
		rec->kind = KIND_TALLY;
		rec->max_attempts = 1 + rng_below(&c->rng, 4);
		rec->fail = rng_unit(&c->rng) < 0.3;
		snprintf(rec->payload, sizeof rec->payload,
			 "{\"seconds\":%.3f,\"fail\":%s}",
			 rng_below(&c->rng, 201) / 1000.0,
			 rec->fail ? "true" : "false");
		snprintf(body, len, "{\"type\":\"tally\",\"payload\":%s,"
			 "\"max_attempts\":%d}", rec->payload, rec->max_attempts);
		return;
	}
	if (u < 0.8) {
		rec->kind = KIND_ECHO;
		snprintf(rec->payload, sizeof rec->payload,
			 "{\"round\":%d,\"client\":%d,\"n\":%ld}", c->round,
			 c->index, n);
	} else {
		rec->kind = KIND_SLEEP;
		snprintf(rec->payload, sizeof rec->payload, "{\"seconds\":%.2f}",
			 SLEEP_SECONDS);
	}
	snprintf(body, len, "{\"type\":\"%s\",\"payload\":%s}",
		 kind_names[rec->kind], rec->payload);
}

/* Only a complete 201 acknowledges a job. */
static void take_reply(struct client *c, struct job_rec *rec,
		       const struct resp *r)
{
	const char *id, *state;
	int ma;

	if (r->status == 0) {
		if (atomic_load(&kill_issued))
			c->cut++;
		else
			check_fail(F_SUBMIT, "round %d client %d: POST /v1/jobs "
				   "failed while jobqd was up: %s", c->round,
				   c->index, r->error);
		return;
	}
	if (r->status == 503 && c->refusable) {
		char why[1024];

		/* The database is down or jobqd is reconnecting: a refusal
		 * in the contract's shape, nothing acknowledged. */
		if (harness_problem_mismatch(r, 503, "storage_unavailable", NULL, why,
					     sizeof why) != 0)
			check_fail(F_OUTAGE, "round %d client %d: POST /v1/jobs "
				   "refused but not as the contract says: %s",
				   c->round, c->index, why);
		c->cut++;
		return;
	}
	if (r->status != 201) {
		check_fail(F_SUBMIT, "round %d client %d: POST /v1/jobs -> %ld, "
			   "want 201: %.300s", c->round, c->index, r->status,
			   r->body);
		return;
	}
	id = jstr(r->json, "id");
	if (id == NULL || strlen(id) != ID_LEN) {
		check_fail(F_SUBMIT, "round %d: 201 without a %d-char id: %.300s",
			   c->round, ID_LEN, r->body);
		return;
	}
	snprintf(rec->id, sizeof rec->id, "%s", id);
	state = jstr(r->json, "state");
	ma = jint_or(r->json, "max_attempts", -1);
	if (state == NULL || strcmp(state, "queued") != 0 || ma < 1 ||
	    (rec->kind == KIND_TALLY && ma != rec->max_attempts)) {
		check_fail(F_SUBMIT, "round %d: 201 for %s has state %s, "
			   "max_attempts %d (asked %d): %.300s", c->round, id,
			   state ? state : "(none)", ma, rec->max_attempts,
			   r->body);
		evidence_add(id);
	}
	if (rec->kind != KIND_TALLY)
		rec->max_attempts = ma;
	acked_add(rec);
}

static void *client_main(void *arg)
{
	struct client *c = arg;
	struct job_rec rec;
	struct resp r;
	char body[256];
	long n;

	for (n = 0; n < CLIENT_MAX_JOBS && !atomic_load(&round_stop) &&
		    now_s() < c->deadline; n++) {
		make_job(c, n, &rec, body, sizeof body);
		harness_request(&c->d, "POST", "/v1/jobs", "application/json",
				body, NULL, &r);
		c->sent++;
		take_reply(c, &rec, &r);
		harness_resp_free(&r);
		sleep_s(rng_unit(&c->rng) * c->pause_max_s);
	}
	return NULL;
}

/* ---- after a restart: every acknowledged job exists ---- */

struct lookup {
	pthread_t thread;
	const struct jobqd *d;
	size_t lo, hi;
	int restart;
	long found;
};

static void *lookup_main(void *arg)
{
	struct lookup *l = arg;
	char path[128];
	struct resp r;
	size_t i;
	int tries;

	for (i = l->lo; i < l->hi; i++) {
		const struct job_rec *j = &acked.v[i];
		const char *id, *type;

		snprintf(path, sizeof path, "/v1/jobs/%s", j->id);
		harness_request(l->d, "GET", path, NULL, NULL, NULL, &r);
		/* After a PostgreSQL restart a read session may meet the lost
		 * connection first: 503, and the next read reconnects. */
		for (tries = 0; opt.restart_pg && r.status == 503 &&
			       tries < LOOKUP_RETRIES; tries++) {
			harness_resp_free(&r);
			sleep_s(0.05);
			harness_request(l->d, "GET", path, NULL, NULL, NULL, &r);
		}
		id = jstr(r.json, "id");
		type = jstr(r.json, "type");
		if (r.status == 200 && id != NULL && strcmp(id, j->id) == 0 &&
		    type != NULL && strcmp(type, kind_names[j->kind]) == 0) {
			l->found++;
		} else {
			check_fail(F_FOUND, "after restart %d: GET %s (%s, "
				   "acknowledged in round %d) -> %ld: %.200s",
				   l->restart, path, kind_names[j->kind], j->round,
				   r.status, r.status ? r.body : r.error);
			evidence_add(j->id);
		}
		harness_resp_free(&r);
	}
	return NULL;
}

/* Returns how many acknowledged jobs answered GET 200 with their id and type. */
static long lookup_all(const struct jobqd *d, int nthreads, int restart)
{
	struct lookup l[LOOKUP_THREADS_MAX];
	size_t per;
	long found = 0;
	int i;

	if (nthreads > LOOKUP_THREADS_MAX)
		nthreads = LOOKUP_THREADS_MAX;
	per = (acked.n + (size_t)nthreads - 1) / (size_t)nthreads;
	for (i = 0; i < nthreads; i++) {
		l[i].d = d;
		l[i].lo = per * (size_t)i < acked.n ? per * (size_t)i : acked.n;
		l[i].hi = l[i].lo + per < acked.n ? l[i].lo + per : acked.n;
		l[i].restart = restart;
		l[i].found = 0;
		if (pthread_create(&l[i].thread, NULL, lookup_main, &l[i]) != 0) {
			perror("torture: pthread_create");
			exit(1);
		}
	}
	for (i = 0; i < nthreads; i++) {
		pthread_join(l[i].thread, NULL);
		found += l[i].found;
	}
	check_count(F_FOUND, (long)acked.n);
	return found;
}

/* ---- the final wait ---- */

/* Long-polls each job that is not terminal yet until all are or bound_s
 * has passed; keeps the last reply of every job in its final field. */
static void drain(const struct jobqd *d, double bound_s)
{
	double end = now_s() + bound_s, left;
	char path[160];
	struct resp r;
	size_t i, pending = acked.n;

	while (pending > 0 && now_s() < end) {
		pending = 0;
		for (i = 0; i < acked.n; i++) {
			struct job_rec *j = &acked.v[i];

			if (j->terminal)
				continue;
			pending++;
			left = end - now_s();
			if (left <= 0)
				continue;
			snprintf(path, sizeof path, "/v1/jobs/%s?wait=%.1f", j->id,
				 left < LONGPOLL_S ? left : LONGPOLL_S);
			harness_request(d, "GET", path, NULL, NULL, NULL, &r);
			j->final_status = r.status;
			if (r.status == 200 && cJSON_IsObject(r.json)) {
				cJSON_Delete(j->final);
				j->final = r.json;
				r.json = NULL;
				j->terminal = is_terminal(jstr(j->final, "state"));
				pending -= (size_t)j->terminal;
			}
			harness_resp_free(&r);
		}
		if (pending > 0)
			sleep_s(0.02); /* only reached when GETs fail fast */
	}
	for (i = 0; i < acked.n; i++) {
		const struct job_rec *j = &acked.v[i];
		const char *state = jstr(j->final, "state");

		if (j->terminal)
			continue;
		check_fail(F_TERMINAL, "%s (%s, round %d) not terminal after "
			   "%.0f s: last GET %ld%s, state %s, attempts %d",
			   j->id, kind_names[j->kind], j->round, bound_s,
			   j->final_status, j->final_status ? "" : " (no reply)",
			   state ? state : "?", jint_or(j->final, "attempts", -1));
		evidence_add(j->id);
	}
	check_count(F_TERMINAL, (long)acked.n);
}

/* ---- the tally file ---- */

struct tally_run {
	char id[ID_LEN + 1];
	int attempt;
};

static struct {
	struct tally_run *v;
	size_t n;
} tally;

static int tally_cmp(const void *a, const void *b)
{
	const struct tally_run *x = a, *y = b;
	int c = strcmp(x->id, y->id);

	if (c != 0)
		return c;
	return (x->attempt > y->attempt) - (x->attempt < y->attempt);
}

/* Each line must be "<36-char id> <attempt>\n"; a torn line is a failure. */
static void tally_load(const char *path)
{
	char *text = harness_read_file(path), *line = text, *eol, *end;
	size_t cap = 0, lineno = 0;
	long attempt;

	while (*line != '\0') {
		lineno++;
		eol = strchr(line, '\n');
		if (eol == NULL) {
			check_fail(F_TALLY_FILE, "line %zu has no newline: '%.80s'",
				   lineno, line);
			break;
		}
		*eol = '\0';
		errno = 0;
		attempt = (size_t)(eol - line) > ID_LEN + 1 && line[ID_LEN] == ' ' &&
			line[ID_LEN + 1] >= '0' && line[ID_LEN + 1] <= '9' ?
			strtol(line + ID_LEN + 1, &end, 10) : -1;
		if (attempt < 0 || errno != 0 || *end != '\0' || attempt > INT_MAX) {
			check_fail(F_TALLY_FILE, "line %zu malformed: '%.80s'",
				   lineno, line);
		} else {
			if (tally.n == cap) {
				cap = cap ? cap * 2 : 1024;
				tally.v = realloc(tally.v, cap * sizeof *tally.v);
				if (tally.v == NULL)
					abort();
			}
			memcpy(tally.v[tally.n].id, line, ID_LEN);
			tally.v[tally.n].id[ID_LEN] = '\0';
			tally.v[tally.n].attempt = (int)attempt;
			tally.n++;
		}
		line = eol + 1;
	}
	check_count(F_TALLY_FILE, (long)lineno);
	free(text);
	if (tally.n > 0)
		qsort(tally.v, tally.n, sizeof *tally.v, tally_cmp);
}

/* The runs of id, sorted by attempt: sets *n and returns the first. */
static const struct tally_run *tally_runs(const char *id, size_t *n)
{
	size_t lo = 0, hi = tally.n, mid;

	while (lo < hi) {
		mid = lo + (hi - lo) / 2;
		if (strcmp(tally.v[mid].id, id) < 0)
			lo = mid + 1;
		else
			hi = mid;
	}
	for (hi = lo; hi < tally.n && strcmp(tally.v[hi].id, id) == 0; hi++)
		;
	*n = hi - lo;
	return tally.v + lo;
}

static int tally_has(const struct tally_run *runs, size_t n, int attempt)
{
	size_t k;

	for (k = 0; k < n; k++)
		if (runs[k].attempt == attempt)
			return 1;
	return 0;
}

/* ---- the checks on each finished job ---- */

struct totals {
	long by_state[4];    /* succeeded, failed, canceled, not terminal */
	long tally_jobs, tally_runs_acked, interrupted;
};

static int outcome_is_failure(const char *o)
{
	return o != NULL && (strcmp(o, "failed") == 0 ||
			     strcmp(o, "timeout") == 0 ||
			     strcmp(o, "interrupted") == 0);
}

/* One history entry per attempt, numbered 1..attempts, each but the last a
 * failure, the last fitting the final state. Tally attempts that ended
 * succeeded or failed must have their line in the tally. */
static void check_history(const struct job_rec *j, const char *state,
			  int attempts, const struct tally_run *runs,
			  size_t nruns, struct totals *t)
{
	const cJSON *hist = cJSON_GetObjectItemCaseSensitive(j->final,
							     "attempt_history");
	const cJSON *e;
	int k = 0, bad = 0;

	if (!cJSON_IsArray(hist) || cJSON_GetArraySize(hist) != attempts) {
		check_fail(F_HISTORY, "%s: %d attempts but attempt_history has "
			   "%d entries", j->id, attempts,
			   cJSON_IsArray(hist) ? cJSON_GetArraySize(hist) : -1);
		evidence_add(j->id);
		return;
	}
	cJSON_ArrayForEach(e, hist) {
		const char *o = jstr(e, "outcome");
		int last = ++k == attempts;

		if (o != NULL && strcmp(o, "interrupted") == 0)
			t->interrupted++;
		if (jint_or(e, "attempt", -1) != k)
			bad = 1;
		else if (!last && !outcome_is_failure(o))
			bad = 1;
		else if (last && strcmp(state, "succeeded") == 0 &&
			 (o == NULL || strcmp(o, "succeeded") != 0))
			bad = 1;
		else if (last && strcmp(state, "failed") == 0 &&
			 !outcome_is_failure(o))
			bad = 1;
		if (j->kind == KIND_TALLY && o != NULL &&
		    (strcmp(o, "succeeded") == 0 || strcmp(o, "failed") == 0) &&
		    !tally_has(runs, nruns, k)) {
			check_fail(F_OUTCOME, "%s: attempt %d ended %s but the "
				   "tally has no line for it", j->id, k, o);
			evidence_add(j->id);
		}
	}
	if (bad) {
		char *s = cJSON_PrintUnformatted(hist);

		check_fail(F_HISTORY, "%s: state %s, attempts %d, history %.400s",
			   j->id, state, attempts, s ? s : "?");
		free(s);
		evidence_add(j->id);
	}
}

static void check_result(const struct job_rec *j, const char *state,
			 int attempts, const struct tally_run *runs, size_t nruns)
{
	const cJSON *result = cJSON_GetObjectItemCaseSensitive(j->final, "result");
	const char *error = jstr(j->final, "error");
	cJSON *want = NULL;
	int ok = 1;

	if (strcmp(state, "succeeded") == 0) {
		if (j->kind == KIND_TALLY) {
			ok = jint_or(result, "attempt", -1) == attempts &&
			     tally_has(runs, nruns, attempts);
		} else if (j->kind == KIND_ECHO) {
			want = cJSON_Parse(j->payload);
			ok = want != NULL && cJSON_Compare(result, want, 1);
		} else {
			const cJSON *s = cJSON_GetObjectItemCaseSensitive(result,
									  "slept");
			ok = cJSON_IsNumber(s) && s->valuedouble > SLEEP_SECONDS - 1e-9 &&
			     s->valuedouble < SLEEP_SECONDS + 1e-9;
		}
	} else if (strcmp(state, "failed") == 0) {
		/* Only tally with fail:true fails on its own; the others can
		 * only run out of attempts by being killed. */
		if (!(j->kind == KIND_TALLY && j->fail))
			ok = error != NULL && strncmp(error, "interrupted", 11) == 0;
	} else {
		ok = 0; /* nothing here cancels */
	}
	if (!ok) {
		char *s = cJSON_PrintUnformatted(j->final);

		check_fail(F_OUTCOME, "%s (%s, payload %s): %.600s", j->id,
			   kind_names[j->kind], j->payload, s ? s : "?");
		free(s);
		evidence_add(j->id);
	}
	cJSON_Delete(want);
}

static void check_job(const struct job_rec *j, struct totals *t)
{
	const char *state = jstr(j->final, "state");
	int attempts = jint_or(j->final, "attempts", -1);
	int max = jint_or(j->final, "max_attempts", -1);
	const struct tally_run *runs = NULL;
	size_t nruns = 0, k;

	if (j->kind == KIND_TALLY) {
		runs = tally_runs(j->id, &nruns);
		t->tally_jobs++;
		t->tally_runs_acked += (long)nruns;
	}
	if (attempts < 0 || max != j->max_attempts || attempts > max ||
	    (size_t)attempts < nruns) {
		check_fail(F_BOUNDS, "%s (%s, payload %s): %zu tally runs, "
			   "attempts %d, max_attempts %d (submitted %d), state %s",
			   j->id, kind_names[j->kind], j->payload, nruns, attempts,
			   max, j->max_attempts, state);
		evidence_add(j->id);
	}
	for (k = 0; k < nruns; k++) {
		if (runs[k].attempt < 1 || runs[k].attempt > attempts ||
		    (k > 0 && runs[k].attempt == runs[k - 1].attempt)) {
			check_fail(F_TALLY_UNIQUE, "%s: tally attempt %d (run %zu "
				   "of %zu) with attempts %d", j->id,
				   runs[k].attempt, k + 1, nruns, attempts);
			evidence_add(j->id);
			break;
		}
	}
	if (j->kind == KIND_TALLY && j->fail) {
		check_count(F_FAIL_USES_ALL, 1);
		if (strcmp(state, "failed") != 0 || attempts != max) {
			check_fail(F_FAIL_USES_ALL, "%s: state %s, attempts %d, "
				   "max_attempts %d", j->id, state, attempts, max);
			evidence_add(j->id);
		}
	}
	check_history(j, state, attempts, runs, nruns, t);
	check_result(j, state, attempts, runs, nruns);
}

static int id_cmp(const void *a, const void *b)
{
	return strcmp(a, b);
}

static void check_unique_ids(void)
{
	char (*ids)[ID_LEN + 1] = malloc((acked.n + 1) * sizeof *ids);
	size_t i;

	if (ids == NULL)
		abort();
	for (i = 0; i < acked.n; i++)
		memcpy(ids[i], acked.v[i].id, sizeof ids[i]);
	qsort(ids, acked.n, sizeof *ids, id_cmp);
	for (i = 1; i < acked.n; i++)
		if (strcmp(ids[i], ids[i - 1]) == 0)
			check_fail(F_UNIQUE, "%s acknowledged twice", ids[i]);
	check_count(F_UNIQUE, (long)acked.n);
	free(ids);
}

/* ---- the database ---- */

static void check_integrity(const char *path)
{
	sqlite3 *db = NULL;
	sqlite3_stmt *st = NULL;
	char out[1024] = "";
	int rc, rows = 0, ok = 0;

	rc = sqlite3_open_v2(path, &db, SQLITE_OPEN_READWRITE, NULL);
	if (rc == SQLITE_OK)
		rc = sqlite3_prepare_v2(db, "PRAGMA integrity_check", -1, &st, NULL);
	while (rc == SQLITE_OK && sqlite3_step(st) == SQLITE_ROW) {
		const char *t = (const char *)sqlite3_column_text(st, 0);

		rows++;
		ok = rows == 1 && t != NULL && strcmp(t, "ok") == 0;
		if (strlen(out) < sizeof out - 2)
			snprintf(out + strlen(out), sizeof out - strlen(out),
				 "%s%s", rows > 1 ? "; " : "", t ? t : "NULL");
	}
	check_count(F_INTEGRITY, 1);
	if (rc != SQLITE_OK)
		check_fail(F_INTEGRITY, "%s: %s", path,
			   db ? sqlite3_errmsg(db) : sqlite3_errstr(rc));
	else if (!ok || rows != 1)
		check_fail(F_INTEGRITY, "%s: %s", path, out);
	sqlite3_finalize(st);
	sqlite3_close(db);
}

/* ---- report ---- */

static void print_evidence(const char *log_path)
{
	char *log = checks.nevidence > 0 ? harness_read_file(log_path) : NULL;
	int i;

	for (i = 0; i < checks.nevidence; i++) {
		const char *id = checks.evidence[i];
		const struct job_rec *j = acked_find(id);
		const struct tally_run *runs;
		size_t nruns, k;
		char *s = j && j->final ? cJSON_PrintUnformatted(j->final) : NULL;
		const char *line = log, *run = NULL;
		int shown = 0;

		printf("evidence %s:\n", id);
		if (j != NULL)
			printf("  submitted in round %d: %s payload %s max_attempts %d\n",
			       j->round, kind_names[j->kind], j->payload,
			       j->max_attempts);
		printf("  last GET: %.1500s\n", s ? s : "(none)");
		free(s);
		runs = tally_runs(id, &nruns);
		printf("  tally lines:");
		for (k = 0; k < nruns; k++)
			printf(" \"%s %d\"", runs[k].id, runs[k].attempt);
		printf("%s\n", nruns ? "" : " none");
		while (line != NULL && *line != '\0' && shown < LOG_LINES_MAX) {
			const char *eol = strchr(line, '\n');
			int len = eol ? (int)(eol - line) : (int)strlen(line);

			if (strncmp(line, "====", 4) == 0) {
				run = line; /* shown before its first line about id */
			} else if (memmem(line, (size_t)len, id, ID_LEN) != NULL) {
				if (run != NULL)
					printf("  log: %.*s\n",
					       (int)(strchr(run, '\n') - run), run);
				run = NULL;
				printf("  log: %.*s\n", len, line);
				shown++;
			}
			line = eol ? eol + 1 : NULL;
		}
	}
	free(log);
}

static double stat_drain_s;  /* how long the final wait took */

static void print_report(const struct opts *o, long kills, long cut,
			 long lookups, long found, const struct totals *t)
{
	int f;

	printf("rounds: %ld of %ld\n", kills, o->kills);
	if (o->restart_pg) {
		printf("PostgreSQL restarts: %ld (jobqd kept running)\n", kills);
		printf("jobs acknowledged: %zu (submissions refused with 503: %ld)\n",
		       acked.n, cut);
	} else {
		printf("kills: %ld (SIGKILL)\n", kills);
		printf("jobs acknowledged: %zu (submissions that failed once the kill was issued: %ld)\n",
		       acked.n, cut);
	}
	printf("acknowledged jobs found after restarts: %ld of %ld lookups\n",
	       found, lookups);
	printf("final wait: %.1f s (bound %g s)\n", stat_drain_s, o->drain_s);
	printf("jobs finished: succeeded %ld, failed %ld, canceled %ld; "
	       "not terminal %ld\n", t->by_state[0], t->by_state[1],
	       t->by_state[2], t->by_state[3]);
	printf("tally runs: %zu lines (%ld for %ld acknowledged tally jobs, "
	       "%ld for submissions not acknowledged)\n", tally.n,
	       t->tally_runs_acked, t->tally_jobs,
	       (long)tally.n - t->tally_runs_acked);
	printf("interrupted attempts recorded: %ld\n", t->interrupted);
	for (f = 0; f < F_COUNT; f++)
		printf("%s %s (%ld checked)\n", checks.fails[f] ? "FAIL" :
		       family_reached(f) ? "ok  " : "----", family_names[f],
		       checks.checked[f]);
	printf("seed: %" PRIu64 " (replay:%s --kills %ld --clients %d "
	       "--seconds-per-round %g --seed %" PRIu64 ")\n", o->seed,
	       o->restart_pg ? " --restart-pg" : "", o->kills, o->clients,
	       o->round_s, o->seed);
}

/* ---- setup ---- */

static void usage(FILE *to)
{
	fprintf(to,
		"usage: JOBQD_TEST=build/jobqd-test torture [--kills K] [--clients C]\n"
		"       [--seconds-per-round S] [--seed N] [--rate JOBS_PER_S]\n"
		"       [--drain-seconds S] [--restart-pg]\n"
		"Kills jobqd-test K times while C clients submit jobs, then checks\n"
		"that every acknowledged job survived and ran within its attempts.\n"
		"--restart-pg: jobqd runs on PostgreSQL (JOBQ_TEST_DB_URL) and each\n"
		"round restarts that server instead (JOBQ_TEST_PG_DIR, the cluster\n"
		"of scripts/pg-cluster.sh, named by PG_CLUSTER), jobqd left running.\n"
		"HARNESS_KEEP=1 keeps the temp dirs.\n");
}

static int parse_num(const char *s, double lo, double hi, double *out)
{
	char *end;
	double v;

	if (s == NULL || *s == '\0')
		return -1;
	errno = 0;
	v = strtod(s, &end);
	if (errno != 0 || *end != '\0' || !(v >= lo && v <= hi))
		return -1;
	*out = v;
	return 0;
}

static int parse_opts(int argc, char **argv, struct opts *o)
{
	int i;
	double v;

	o->kills = 12;
	o->clients = 8;
	o->round_s = 1.0;
	o->seed = (uint64_t)time(NULL) ^ ((uint64_t)getpid() << 16);
	o->rate = 100;
	o->drain_s = 60;
	for (i = 1; i < argc; i++) {
		const char *a = argv[i], *val = i + 1 < argc ? argv[i + 1] : NULL;
		char *end;

		if (strcmp(a, "--help") == 0) {
			usage(stdout);
			exit(0);
		} else if (strcmp(a, "--restart-pg") == 0) {
			o->restart_pg = 1;
			continue;
		} else if (strcmp(a, "--kills") == 0 &&
			   parse_num(val, 0, (double)MAX_KILLS, &v) == 0 &&
			   v == (long)v) {
			o->kills = (long)v;
		} else if (strcmp(a, "--clients") == 0 &&
			   parse_num(val, 1, MAX_CLIENTS, &v) == 0 && v == (int)v) {
			o->clients = (int)v;
		} else if (strcmp(a, "--seconds-per-round") == 0 &&
			   parse_num(val, 0.001, 3600, &v) == 0) {
			o->round_s = v;
		} else if (strcmp(a, "--rate") == 0 &&
			   parse_num(val, 0.1, 100000, &v) == 0) {
			o->rate = v;
		} else if (strcmp(a, "--drain-seconds") == 0 &&
			   parse_num(val, 1, 3600, &v) == 0) {
			o->drain_s = v;
		} else if (strcmp(a, "--seed") == 0 && val != NULL &&
			   val[0] >= '0' && val[0] <= '9') {
			errno = 0;
			o->seed = strtoull(val, &end, 10);
			if (errno != 0 || *end != '\0')
				goto bad;
		} else {
			goto bad;
		}
		i++;
	}
	return 0;
bad:
	fprintf(stderr, "torture: bad option '%s'%s%s\n", argv[i],
		i + 1 < argc ? " " : "", i + 1 < argc ? argv[i + 1] : "");
	usage(stderr);
	return -1;
}

/* Makes the work dir (kept on a failure) that holds the tally file and
 * the log of every jobqd run. */
static int setup(char *dir, size_t n, char *tally_file, size_t tn)
{
	const char *tmp = getenv("TMPDIR");

	snprintf(dir, n, "%s/jobq-torture-XXXXXX",
		 tmp != NULL && tmp[0] != '\0' ? tmp : "/tmp");
	if (mkdtemp(dir) == NULL) {
		printf("torture: mkdtemp %s: %s\n", dir, strerror(errno));
		return -1;
	}
	snprintf(tally_file, tn, "%s/tally", dir);
	printf("torture: work dir %s\n", dir);
	return 0;
}

static void remove_dir(const char *dir)
{
	static const char *const names[] = { "tally", "jobqd.log", "jobq.db",
					     "jobq.db-wal", "jobq.db-shm", NULL };
	char path[HARNESS_PATH_MAX + 32];
	int i;

	for (i = 0; names[i] != NULL; i++) {
		snprintf(path, sizeof path, "%s/%s", dir, names[i]);
		unlink(path);
	}
	rmdir(dir);
}

/* ---- the run ---- */

/* Set by main before the runner starts; read by the test function. */
static char work_dir[HARNESS_PATH_MAX / 2], tally_path[HARNESS_PATH_MAX],
	log_path[HARNESS_PATH_MAX];
static struct client clients[MAX_CLIENTS];
static int clients_running;  /* main thread only */
static struct totals totals;
static long stat_kills, stat_cut, stat_lookups, stat_found;

static void start_clients(const struct jobqd *d, int rnd)
{
	int i;

	atomic_store(&round_stop, 0);
	atomic_store(&kill_issued, 0);
	for (i = 0; i < opt.clients; i++) {
		struct client *c = &clients[i];

		memset(c, 0, sizeof *c);
		c->d = *d;
		c->index = i;
		c->round = rnd;
		c->rng = opt.seed ^ ((uint64_t)rnd << 32) ^ ((uint64_t)i << 8);
		rng_next(&c->rng);
		c->pause_max_s = 2.0 * opt.clients / opt.rate;
		c->deadline = now_s() + opt.round_s + CLIENT_SLACK_S;
		c->refusable = opt.restart_pg;
		if (pthread_create(&c->thread, NULL, client_main, c) != 0) {
			perror("torture: pthread_create");
			exit(1);
		}
		clients_running++;
	}
}

/* Returns the number of submissions cut off by the kill. */
static long stop_clients(void)
{
	long cut = 0;

	atomic_store(&round_stop, 1);
	while (clients_running > 0) {
		struct client *c = &clients[--clients_running];

		pthread_join(c->thread, NULL);
		cut += c->cut;
		check_count(F_SUBMIT, c->sent);
	}
	return cut;
}

/* Runs scripts/pg-cluster.sh CMD on the cluster (its waits are bounded). */
static int pg_cluster(const char *cmd)
{
	const char *script = getenv("PG_CLUSTER"), *dir = getenv("JOBQ_TEST_PG_DIR");
	int status = -1;
	pid_t pid;

	if (script == NULL || script[0] == '\0')
		script = "scripts/pg-cluster.sh";
	if (dir == NULL || dir[0] == '\0')
		return -1;
	pid = fork();
	if (pid < 0)
		return -1;
	if (pid == 0) {
		int nul = open("/dev/null", O_WRONLY);

		if (nul >= 0)
			dup2(nul, 1); /* start prints the URL again */
		execl(script, script, cmd, dir, (char *)NULL);
		_exit(127);
	}
	while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
		;
	return WIFEXITED(status) && WEXITSTATUS(status) == 0 ? 0 : -1;
}

/* Polls /readyz (bounded) until it answers want; returns the seconds it
 * took, or -1 with the last reply in last. */
static double wait_readyz(const struct jobqd *d, long want, double bound_s,
			  char *last, size_t n)
{
	double t0 = now_s();
	struct resp r;

	for (;;) {
		harness_request(d, "GET", "/readyz", NULL, NULL, NULL, &r);
		snprintf(last, n, "%ld %.200s", r.status,
			 r.status ? r.body : r.error);
		if (r.status == want && (want != 503 ||
		    harness_problem_mismatch(&r, 503, "storage_unavailable", NULL,
					     last, n) == 0)) {
			harness_resp_free(&r);
			return now_s() - t0;
		}
		harness_resp_free(&r);
		if (r.status == 0 || now_s() - t0 > bound_s)
			return -1;
		sleep_s(0.02);
	}
}

/* The outage of a --restart-pg round: odd rounds restart the server at
 * once (pg_ctl restart -m fast); even ones stop it, see jobqd refuse while
 * it is down (/readyz, a submission and a read: 503), and start it again. Then jobqd must be ready again by itself. */
static void pg_outage(const struct jobqd *d, long rnd)
{
	char last[512], path[128];
	struct resp r;
	double took;

	if (rnd % 2 == 1) {
		if (pg_cluster("restart") != 0)
			check_fail(F_OUTAGE, "round %ld: pg-cluster.sh restart failed", rnd);
	} else {
		if (pg_cluster("stop") != 0)
			check_fail(F_OUTAGE, "round %ld: pg-cluster.sh stop failed", rnd);
		if (wait_readyz(d, 503, 10.0, last, sizeof last) < 0)
			check_fail(F_OUTAGE, "round %ld: /readyz not 503 within 10 s "
				   "of the server stopping: %s", rnd, last);
		harness_request(d, "POST", "/v1/jobs", "application/json",
				"{\"type\":\"echo\",\"payload\":{}}", NULL, &r);
		if (harness_problem_mismatch(&r, 503, "storage_unavailable", NULL,
					     last, sizeof last) != 0)
			check_fail(F_OUTAGE, "round %ld: a submission while the "
				   "server is down: %s", rnd, last);
		harness_resp_free(&r);
		/* clients run and append: read acked under its lock */
		pthread_mutex_lock(&acked.lock);
		path[0] = '\0';
		if (acked.n > 0)
			snprintf(path, sizeof path, "/v1/jobs/%s", acked.v[0].id);
		pthread_mutex_unlock(&acked.lock);
		if (path[0] != '\0') {
			harness_request(d, "GET", path, NULL, NULL, NULL, &r);
			if (harness_problem_mismatch(&r, 503, "storage_unavailable",
						     NULL, last, sizeof last) != 0)
				check_fail(F_OUTAGE, "round %ld: a read while the "
					   "server is down: %s", rnd, last);
			harness_resp_free(&r);
		}
		if (pg_cluster("start") != 0)
			check_fail(F_OUTAGE, "round %ld: pg-cluster.sh start failed", rnd);
	}
	took = wait_readyz(d, 200, 30.0, last, sizeof last);
	check_count(F_OUTAGE, 1);
	if (took < 0)
		check_fail(F_OUTAGE, "round %ld: /readyz not 200 within 30 s of "
			   "the server being back: %s", rnd, last);
	else
		printf("round %ld: PostgreSQL %s; jobqd ready again %.2f s after\n",
		       rnd, rnd % 2 == 1 ? "restarted (-m fast)" :
		       "stopped, refused while down, started", took);
}

/* One round of --restart-pg: clients submit, the database server goes away
 * at a random moment and comes back, jobqd keeps running; every job
 * acknowledged so far is looked up. */
static void run_pg_round(struct jobqd *d, long rnd, uint64_t *rng)
{
	double outage_after = opt.round_s * (0.1 + 0.9 * rng_unit(rng));
	size_t acked_before = acked.n;
	long refused, found;

	phase = "a round";
	start_clients(d, (int)rnd);
	sleep_s(outage_after);
	phase = "a PostgreSQL outage";
	pg_outage(d, rnd);
	sleep_s(opt.round_s - outage_after); /* load after the outage too */
	refused = stop_clients();
	stat_cut += refused;
	stat_kills++;
	check_count(F_ALIVE, 1);
	if (!process_alive(d->pid))
		check_fail(F_ALIVE, "round %ld: jobqd (pid %d) ended during the "
			   "PostgreSQL restart", rnd, (int)d->pid);
	phase = "the lookups after an outage";
	stat_lookups += (long)acked.n;
	found = lookup_all(d, opt.clients, (int)rnd);
	stat_found += found;
	printf("round %ld/%ld: %zu acknowledged, %ld refused with 503; "
	       "%ld/%zu acknowledged jobs found\n", rnd, opt.kills,
	       acked.n - acked_before, refused, found, acked.n);
}

/* One round: clients submit, SIGKILL at a random moment, restart, look up
 * every job acknowledged so far. */
static void run_round(struct jobqd *d, long rnd, uint64_t *rng)
{
	double t0, kill_after = opt.round_s * (0.1 + 0.9 * rng_unit(rng));
	size_t acked_before = acked.n;
	long cut, found;
	char what[128];

	phase = "a round";
	start_clients(d, (int)rnd);
	t0 = now_s();
	sleep_s(kill_after);
	check_count(F_ALIVE, 1);
	if (!process_alive(d->pid))
		check_fail(F_ALIVE, "round %ld: jobqd (pid %d) had ended on its "
			   "own before the kill", rnd, (int)d->pid);
	atomic_store(&kill_issued, 1);
	harness_kill9(d);
	kill_after = now_s() - t0;
	stat_kills++;
	cut = stop_clients();
	stat_cut += cut;
	snprintf(what, sizeof what, "run %ld, SIGKILLed %.3f s into round %ld",
		 rnd, kill_after, rnd);
	log_save(d, log_path, what);

	phase = "a restart";
	harness_restart(d, jobqd_args);
	phase = "the lookups after a restart";
	stat_lookups += (long)acked.n;
	found = lookup_all(d, opt.clients, (int)rnd);
	stat_found += found;
	printf("round %ld/%ld: killed %.3f s in; %zu acknowledged, %ld cut off; "
	       "restarted; %ld/%zu acknowledged jobs found\n", rnd, opt.kills,
	       kill_after, acked.n - acked_before, cut, found, acked.n);
}

static void check_all_jobs(void)
{
	size_t i, done;

	check_unique_ids();
	tally_load(tally_path);
	for (i = 0; i < acked.n; i++) {
		const struct job_rec *j = &acked.v[i];
		const char *state = jstr(j->final, "state");

		if (!j->terminal) {
			totals.by_state[3]++;
			continue;
		}
		totals.by_state[strcmp(state, "succeeded") == 0 ? 0 :
				strcmp(state, "failed") == 0 ? 1 : 2]++;
		check_job(j, &totals);
	}
	done = acked.n - (size_t)totals.by_state[3];
	check_count(F_BOUNDS, (long)done);
	check_count(F_TALLY_UNIQUE, totals.tally_jobs);
	check_count(F_HISTORY, (long)done);
	check_count(F_OUTCOME, (long)done);
}

/* The whole torture as the one test of a CK_NOFORK runner: the harness
 * reports through Check (even a passing ck_assert needs a runner), and a
 * failed harness assertion ends this function early. The families above
 * are the torture's own checks. */
START_TEST(torture)
{
	struct jobqd d;
	char keep_db[HARNESS_PATH_MAX], tally_env[HARNESS_PATH_MAX + 32];
	const char *env[] = { tally_env, NULL };
	uint64_t rng = opt.seed;
	long rnd;
	int status;

	rng_next(&rng);
	snprintf(tally_env, sizeof tally_env, "JOBQ_TEST_TALLY=%s", tally_path);
	phase = "the first start";
	/* harness_restart reuses the binary and the environment. */
	harness_start_bin(&d, "JOBQD_TEST", "build/jobqd-test", jobqd_args, env);
	for (rnd = 1; rnd <= opt.kills; rnd++) {
		if (opt.restart_pg)
			run_pg_round(&d, rnd, &rng);
		else
			run_round(&d, rnd, &rng);
	}
	if (opt.restart_pg) {
		/* An outcome whose commit met the outage leaves its job running
		 * until the next start (as on SQLite when a commit fails): one
		 * clean restart, then the final wait. */
		phase = "the SIGTERM stop after the outages";
		status = harness_stop_keep(&d);
		check_count(F_SIGTERM, 1);
		if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
			check_fail(F_SIGTERM, "after the outages: wait status %d", status);
		log_save(&d, log_path, "the run through the PostgreSQL restarts");
		harness_restart(&d, jobqd_args);
	}

	phase = "the final wait";
	stat_drain_s = now_s();
	drain(&d, opt.drain_s);
	stat_drain_s = now_s() - stat_drain_s;

	phase = "the SIGTERM stop";
	status = harness_stop_keep(&d);
	check_count(F_SIGTERM, 1);
	if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
		check_fail(F_SIGTERM, "wait status %d (%s %d)", status,
			   WIFEXITED(status) ? "exit" : "signal",
			   WIFEXITED(status) ? WEXITSTATUS(status) : WTERMSIG(status));
	log_save(&d, log_path, "last run, stopped by SIGTERM");

	phase = "the checks";
	check_all_jobs();
	if (harness_db_url() == NULL)
		check_integrity(d.db);
	if (failed_families() > 0) {
		snprintf(keep_db, sizeof keep_db, "%s/jobq.db", work_dir);
		copy_file(d.db, keep_db);
	}
	harness_cleanup(&d);
	phase = "the report";
}
END_TEST

/* Runs the test; returns 0, or 1 with the failure printed if the harness
 * ended it early. */
static int run_under_check(void)
{
	Suite *s = suite_create("torture");
	TCase *tc = tcase_create("torture");
	SRunner *sr;
	int failed;

	tcase_add_test(tc, torture);
	suite_add_tcase(s, tc);
	sr = srunner_create(s);
	srunner_set_fork_status(sr, CK_NOFORK);
	srunner_run_all(sr, CK_SILENT);
	failed = srunner_ntests_failed(sr);
	if (failed > 0) {
		TestResult **tr = srunner_failures(sr);

		printf("torture: ended early during %s by a harness check at "
		       "%s:%d: %s\n", phase, tr_lfile(tr[0]), tr_lno(tr[0]),
		       tr_msg(tr[0]));
		free(tr);
	}
	srunner_free(sr);
	return failed > 0;
}

int main(int argc, char **argv)
{
	const char *keep = getenv("HARNESS_KEEP");
	int bad;

	if (parse_opts(argc, argv, &opt) != 0)
		return 2;
	if (opt.restart_pg && (harness_db_url() == NULL ||
			       getenv("JOBQ_TEST_PG_DIR") == NULL)) {
		fprintf(stderr, "torture: --restart-pg needs JOBQ_TEST_DB_URL and "
			"JOBQ_TEST_PG_DIR (see make check-pg)\n");
		return 2;
	}
	family_skipped[F_INTEGRITY] = harness_db_url() != NULL;
	family_skipped[F_OUTAGE] = !opt.restart_pg;
	setvbuf(stdout, NULL, _IOLBF, 0);
	atexit(at_exit_report);
	printf("torture: seed %" PRIu64 ", %ld %s, %d clients, %g s per round, "
	       "%g jobs/s%s\n", opt.seed, opt.kills,
	       opt.restart_pg ? "PostgreSQL restarts" : "kills", opt.clients,
	       opt.round_s, opt.rate, harness_db_url() ? ", on PostgreSQL" : "");
	if (setup(work_dir, sizeof work_dir, tally_path, sizeof tally_path) != 0) {
		ended_early = 1;
		print_final();
		return 1;
	}
	snprintf(log_path, sizeof log_path, "%s/jobqd.log", work_dir);
	curl_global_init(CURL_GLOBAL_ALL);
	harness_suite_begin();

	ended_early = run_under_check();
	atomic_store(&kill_issued, 1);
	stat_cut += stop_clients(); /* left running only if the harness aborted */
	harness_suite_end();

	print_report(&opt, stat_kills, stat_cut, stat_lookups, stat_found, &totals);
	bad = failed_families() + ended_early;
	if (bad) {
		print_evidence(log_path);
		printf("kept for inspection: %s (tally, jobqd.log of every run, "
		       "jobq.db)\n", work_dir);
	} else if (keep == NULL || strcmp(keep, "1") != 0) {
		remove_dir(work_dir);
	}
	curl_global_cleanup();
	print_final();
	return bad ? 1 : 0;
}
