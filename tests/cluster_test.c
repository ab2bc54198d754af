/* Many jobqd on one PostgreSQL, black box: each test starts three jobqd
 * (the test build, env JOBQD_TEST) on one schema of the server at
 * JOBQ_TEST_DB_URL with --node-timeout 3, and checks what the cluster
 * promises: every job runs once unless it fails, a node killed with -9 or
 * stopped past its heartbeat bound has its jobs rerun on the others (the
 * stopped one's late completion refused), a killed leader is replaced and
 * maintenance goes on, and long-poll, SSE, cancel, queue limits, pause and
 * idempotency keys hold across nodes. Each node appends its tally runs to
 * its own file, so a run is attributed to the process that made it. Every
 * wait is bounded; timings are printed, never asserted but as the bounds
 * the cluster promises. */
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>

#include "tests/harness.h"

#define ARGS(...) ((const char *const[]){__VA_ARGS__, NULL})
#define NODES 3
#define NODE_TIMEOUT_S 3
#define WORKERS "4"
/* A dead node's jobs run again within the heartbeat bound + 5 s. */
#define RESCUE_BOUND_MS ((NODE_TIMEOUT_S + 5) * 1000.0)
/* The leader row's TTL is 3 heartbeat intervals (1 s at --node-timeout 3). */
#define LEADER_TTL_MS 3000.0
#define LEADER_BOUND_MS (LEADER_TTL_MS + 5000.0)
#define GATE_FILE "gate.open"

/* Three jobqd on one schema; id[i] is node i's id as its GET /v1/cluster
 * says (it changes when the node re-registers); dir holds tally.<i> (node
 * i's tally runs) and the gate file. */
struct cluster {
	struct jobqd n[NODES];
	char id[NODES][64];
	char dir[HARNESS_PATH_MAX / 2];
};

#define call(d, method, path, body, want) harness_call((d), (method), (path), (body), NULL, (want))
#define get_job(d, id) harness_get_job((d), (id), NULL)
#define wait_terminal(d, id) harness_wait_terminal((d), (id), NULL)

static cJSON *queue_action(const struct jobqd *d, const char *queue, const char *action)
{
	char path[128];

	snprintf(path, sizeof path, "/v1/queues/%s%s%s", queue, action ? "/" : "", action ? action : "");
	return call(d, action ? "POST" : "GET", path, NULL, 200);
}

/* ---- the cluster ---- */

/* GET /v1/cluster on d: 200, and the Jobq-Node header names the node. */
static cJSON *cluster_view(const struct jobqd *d)
{
	struct resp r;
	char hdr[128];
	cJSON *j;

	harness_request(d, "GET", "/v1/cluster", NULL, NULL, NULL, &r);
	ck_assert_msg(r.status == 200, "GET /v1/cluster on %s: status %ld (want 200) %s; body: %.800s",
		      d->base, r.status, r.error, r.body);
	j = take_json(&r);
	ck_assert_msg(j != NULL && jstr(j, "node") != NULL, "GET /v1/cluster: no node: %.800s", r.body);
	ck_assert_msg(harness_header(&r, "Jobq-Node", hdr, sizeof hdr) && str_eq(hdr, jstr(j, "node")),
		      "Jobq-Node header '%s', the body says node %s", hdr, jstr(j, "node"));
	harness_resp_free(&r);
	return j;
}

/* The entry of nodes[] with this id, or NULL. */
static const cJSON *view_node(const cJSON *view, const char *id)
{
	const cJSON *e;

	cJSON_ArrayForEach(e, jget(view, "nodes"))
		if (str_eq(jstr(e, "id"), id))
			return e;
	return NULL;
}

/* 1 when the view shows node id dead: listed with alive false, or gone. */
static int view_dead(const cJSON *view, const char *id)
{
	const cJSON *e = view_node(view, id);

	return e == NULL || cJSON_IsFalse(jget(e, "alive"));
}

/* Polls GET /v1/cluster on d until node id shows dead; fails once
 * bound_ms have passed since t0 (mono_ms). Returns when it was seen. */
static double wait_dead(const struct jobqd *d, const char *id, double t0, double bound_ms)
{
	for (;;) {
		cJSON *v = cluster_view(d);
		char *s = harness_json_text(v);
		int dead = view_dead(v, id);

		cJSON_Delete(v);
		if (dead) {
			free(s);
			return mono_ms() - t0;
		}
		ck_assert_msg(mono_ms() - t0 < bound_ms, "node %s still alive %.0f ms on: %s", id, bound_ms, s);
		free(s);
		nap_ms(20);
	}
}

static int node_index(const struct cluster *c, const char *id)
{
	for (int i = 0; i < NODES; i++)
		if (str_eq(c->id[i], id))
			return i;
	return -1;
}

static void refresh_id(struct cluster *c, int i)
{
	cJSON *v = cluster_view(&c->n[i]);

	snprintf(c->id[i], sizeof c->id[i], "%s", jstr(v, "node"));
	cJSON_Delete(v);
}

/* Starts the three nodes on one schema: the test build, --node-timeout 3,
 * 4 workers each, node i's tally file tally.<i>, the shared gate file. */
static void cluster_start(struct cluster *c, const char *const *extra)
{
	const char *args[32];
	char tally[HARNESS_PATH_MAX + 32], gate[HARNESS_PATH_MAX + 32];
	size_t n = 0;

	memset(c, 0, sizeof *c);
	for (int i = 0; i < NODES; i++)
		c->n[i].pid = -1;
	ck_assert_msg(harness_db_url() != NULL, "the cluster tests need JOBQ_TEST_DB_URL");
	harness_make_dir(c->dir, sizeof c->dir);
	args[n++] = "--node-timeout";
	args[n++] = "3";
	args[n++] = "--workers";
	args[n++] = WORKERS;
	args[n++] = "--shutdown-grace";
	args[n++] = "1";
	for (size_t k = 0; extra != NULL && extra[k] != NULL; k++)
		args[n++] = extra[k];
	args[n] = NULL;
	snprintf(gate, sizeof gate, "JOBQ_TEST_GATE=%s/%s", c->dir, GATE_FILE);
	for (int i = 0; i < NODES; i++) {
		snprintf(tally, sizeof tally, "JOBQ_TEST_TALLY=%s/tally.%d", c->dir, i);
		harness_start_bin_schema(&c->n[i], i == 0 ? NULL : c->n[0].schema, "JOBQD_TEST",
					 "build/jobqd-test", args, ARGS(tally, gate));
	}
	for (int i = 0; i < NODES; i++)
		refresh_id(c, i);
	for (int i = 0; i < NODES; i++)
		for (int k = 0; k < i; k++)
			ck_assert_msg(!str_eq(c->id[i], c->id[k]), "nodes %d and %d share the id %s", k, i,
				      c->id[i]);
}

/* SIGTERM to every node still running (each must exit 0); the killed
 * ones' temp dirs are removed. */
static void cluster_stop(struct cluster *c)
{
	for (int i = 0; i < NODES; i++) {
		if (c->n[i].pid > 0) {
			int st = harness_stop(&c->n[i]);

			ck_assert_msg(WIFEXITED(st) && WEXITSTATUS(st) == 0,
				      "node %d did not exit 0 on SIGTERM (wait status %d)", i, st);
		} else {
			harness_cleanup(&c->n[i]);
		}
	}
}

/* Polls the live nodes (alive[i]) until each shows a leader, all the same
 * one, a live node; returns its index. Fails after bound_ms. */
static int wait_leader(struct cluster *c, const int *alive, const char *not_id, double bound_ms)
{
	double end = mono_ms() + bound_ms;
	char last[256] = "";

	for (;;) {
		char leader[64] = "";
		int agree = 1;

		for (int i = 0; i < NODES && agree; i++) {
			if (!alive[i])
				continue;
			cJSON *v = cluster_view(&c->n[i]);
			const char *l = jstr(v, "leader");

			snprintf(last, sizeof last, "node %d says leader %s", i, l ? l : "null");
			if (l == NULL || (not_id != NULL && str_eq(l, not_id)) ||
			    (leader[0] != '\0' && !str_eq(l, leader)))
				agree = 0;
			else
				snprintf(leader, sizeof leader, "%s", l);
			cJSON_Delete(v);
		}
		int k = node_index(c, leader);

		if (agree && k >= 0 && alive[k])
			return k;
		ck_assert_msg(mono_ms() < end, "no agreed live leader after %.0f ms (%s)", bound_ms, last);
		nap_ms(20);
	}
}

/* Polls job id on node src until it is running with a known node; returns
 * the job and sets *runner. Fails on a terminal state or after 15 s. */
static cJSON *wait_running(const struct cluster *c, int src, const char *id, int *runner)
{
	double end = mono_ms() + 15000.0;

	for (;;) {
		cJSON *j = get_job(&c->n[src], id);
		const char *state = jstr(j, "state"), *node = jstr(j, "node");

		if (str_eq(state, "running") && node != NULL) {
			*runner = node_index(c, node);
			ck_assert_msg(*runner >= 0, "job %s runs on node %s, not one of ours", id, node);
			return j;
		}
		ck_assert_msg(node == NULL, "job %s is %s but has node %s: only a running job has one", id,
			      jstr_or(j, "state"), node);
		ck_assert_msg(!is_terminal(state) && mono_ms() < end,
			      "job %s never seen running with a node (state %s)", id, jstr_or(j, "state"));
		cJSON_Delete(j);
		nap_ms(5);
	}
}

/* ---- attempt history and tally ---- */

/* Checks that the history numbers its attempts 1, 2, ... once each, as
 * many as attempts (one fewer while the job runs: the running attempt is
 * not recorded yet); *interrupted counts the interrupted ones. */
static const cJSON *check_history(const cJSON *j, int *interrupted)
{
	const cJSON *h = jget(j, "attempt_history"), *e;
	char *s = harness_json_text(j);
	long want = 1;

	*interrupted = 0;
	ck_assert_msg(cJSON_IsArray(h), "no attempt_history: %s", s);
	cJSON_ArrayForEach(e, h) {
		ck_assert_msg(jlong(e, "attempt") == want, "attempt_history entry %ld has attempt %ld: %s",
			      want, jlong(e, "attempt"), s);
		ck_assert_msg(jts(e, "started_at") > 0 && jts(e, "finished_at") >= jts(e, "started_at"),
			      "attempt %ld has no sane started_at/finished_at: %s", want, s);
		if (str_eq(jstr(e, "outcome"), "interrupted"))
			(*interrupted)++;
		want++;
	}
	ck_assert_msg(jlong(j, "attempts") - str_eq(jstr(j, "state"), "running") == want - 1,
		      "attempts %ld but %ld history entries (state %s): %s", jlong(j, "attempts"), want - 1,
		      jstr_or(j, "state"), s);
	free(s);
	return h;
}

struct run_line {
	char id[40];
	int attempt;
	int node;
};

struct tally {
	struct run_line *v;
	size_t n;
	size_t per_node[NODES];
};

/* Reads every node's tally file: lines "<job id> <attempt>". */
static void tally_load(const struct cluster *c, struct tally *t)
{
	char path[HARNESS_PATH_MAX + 16];
	size_t cap = 0;

	memset(t, 0, sizeof *t);
	for (int i = 0; i < NODES; i++) {
		snprintf(path, sizeof path, "%s/tally.%d", c->dir, i);
		char *text = harness_read_file(path), *line = text, *eol;

		while ((eol = strchr(line, '\n')) != NULL) {
			*eol = '\0';
			if (t->n == cap) {
				cap = cap ? cap * 2 : 512;
				t->v = realloc(t->v, cap * sizeof *t->v);
				ck_assert_msg(t->v != NULL, "out of memory");
			}
			struct run_line *r = &t->v[t->n];
			int used = 0;

			ck_assert_msg(sscanf(line, "%39s %d%n", r->id, &r->attempt, &used) == 2 &&
					      line[used] == '\0' && r->attempt >= 1,
				      "tally.%d: malformed line '%.80s'", i, line);
			r->node = i;
			t->n++;
			t->per_node[i]++;
			line = eol + 1;
		}
		ck_assert_msg(*line == '\0', "tally.%d: torn last line '%.80s'", i, line);
		free(text);
	}
}

/* How many runs of (id, attempt) the tally holds; *node is the last one's. */
static int tally_count(const struct tally *t, const char *id, int attempt, int *node)
{
	int k = 0;

	for (size_t i = 0; i < t->n; i++)
		if (t->v[i].attempt == attempt && strcmp(t->v[i].id, id) == 0) {
			k++;
			if (node != NULL)
				*node = t->v[i].node;
		}
	return k;
}

static int tally_runs(const struct tally *t, const char *id)
{
	int k = 0;

	for (size_t i = 0; i < t->n; i++)
		k += strcmp(t->v[i].id, id) == 0;
	return k;
}

/* ---- the tests ---- */

START_TEST(cluster_view_lists_three_live_nodes_and_one_leader)
{
	struct cluster c;
	int alive[NODES] = {1, 1, 1};

	cluster_start(&c, NULL);
	int leader = wait_leader(&c, alive, NULL, 10000.0);

	for (int i = 0; i < NODES; i++) {
		cJSON *v = cluster_view(&c.n[i]);
		char *s = harness_json_text(v);
		const cJSON *e;
		int leaders = 0, seen[NODES] = {0};

		ck_assert_msg(str_eq(jstr(v, "node"), c.id[i]) && c.id[i][0] != '\0', "node: %s", s);
		ck_assert_msg(str_eq(jstr(v, "leader"), c.id[leader]), "leader: %s", s);
		ck_assert_msg(str_eq(jstr(v, "backend"), "pg"), "backend: %s", s);
		ck_assert_msg(cJSON_GetArraySize(jget(v, "nodes")) == NODES, "not %d nodes: %s", NODES, s);
		cJSON_ArrayForEach(e, jget(v, "nodes")) {
			int k = node_index(&c, jstr(e, "id"));
			long n;

			ck_assert_msg(k >= 0 && !seen[k], "unknown or repeated node: %s", s);
			seen[k] = 1;
			ck_assert_msg(cJSON_IsTrue(jget(e, "alive")), "node %d not alive: %s", k, s);
			ck_assert_msg(is_rfc3339_ms(jstr(e, "started_at")) && is_rfc3339_ms(jstr(e, "heartbeat_at")),
				      "timestamps: %s", s);
			ck_assert_msg(jts(e, "heartbeat_at") >= jts(e, "started_at"), "heartbeat before start: %s", s);
			ck_assert_msg(jstr(e, "host") != NULL && jstr(e, "host")[0] != '\0', "host: %s", s);
			ck_assert_msg(jlong(e, "pid") == (long)c.n[k].pid, "node %d pid %ld, want %d: %s", k,
				      jlong(e, "pid"), (int)c.n[k].pid, s);
			ck_assert_msg(jint(e, "running", &n) && n == 0, "running (idle cluster): %s", s);
			ck_assert_msg(cJSON_IsBool(jget(e, "leader")), "leader flag: %s", s);
			if (cJSON_IsTrue(jget(e, "leader"))) {
				leaders++;
				ck_assert_msg(k == leader, "node %d flagged leader, leader is %d: %s", k, leader, s);
			}
		}
		ck_assert_msg(leaders == 1, "%d nodes flagged leader: %s", leaders, s);
		free(s);
		cJSON_Delete(v);
	}

	/* every answer names its node, errors included */
	for (int i = 0; i < NODES; i++) {
		struct resp r;
		char hdr[128];

		harness_request(&c.n[i], "GET", "/v1/jobs/01a236a1-93bb-7008-beca-a95e550fc34c", NULL, NULL,
				NULL, &r);
		assert_problem(&r, 404, "job_not_found", NULL);
		ck_assert_msg(harness_header(&r, "Jobq-Node", hdr, sizeof hdr) && str_eq(hdr, c.id[i]),
			      "404 of node %d: Jobq-Node '%s', want %s", i, hdr, c.id[i]);
		harness_resp_free(&r);
		harness_request(&c.n[i], "GET", "/healthz", NULL, NULL, NULL, &r);
		ck_assert_msg(r.status == 200 && harness_header(&r, "Jobq-Node", hdr, sizeof hdr) &&
				      str_eq(hdr, c.id[i]),
			      "/healthz of node %d: %ld, Jobq-Node '%s'", i, r.status, hdr);
		harness_resp_free(&r);
	}
	cluster_stop(&c);
}
END_TEST

#define RR_JOBS 300
#define RR_FAIL_EVERY 5   /* every 5th job fails each attempt (2 attempts) */

START_TEST(round_robin_exactly_once)
{
	struct cluster c;
	struct tally t;
	char *ids[RR_JOBS], body[256];
	int nodes_used = 0;
	long runs_expected = 0;

	cluster_start(&c, NULL);
	for (int i = 0; i < RR_JOBS; i++) {
		if (i % RR_FAIL_EVERY == 0)
			snprintf(body, sizeof body, "{\"type\":\"tally\",\"payload\":{\"fail\":true},"
						    "\"max_attempts\":2,\"backoff_s\":0.05,\"max_backoff_s\":0.05}");
		else
			snprintf(body, sizeof body, "{\"type\":\"tally\",\"payload\":{\"seconds\":%s},"
						    "\"max_attempts\":3}", i % 3 == 0 ? "0.05" : "0");
		ids[i] = harness_submit(&c.n[i % NODES], body);
	}
	for (int i = 0; i < RR_JOBS; i++) {
		cJSON *j = wait_terminal(&c.n[(i + 1) % NODES], ids[i]);
		char *s = harness_json_text(j);
		int fails = i % RR_FAIL_EVERY == 0, intr;
		const cJSON *h = check_history(j, &intr);

		ck_assert_msg(intr == 0, "job %d: interrupted attempt with every node up: %s", i, s);
		if (fails) {
			ck_assert_msg(str_eq(jstr(j, "state"), "failed") && jlong(j, "attempts") == 2,
				      "failing job %d: %s", i, s);
			ck_assert_msg(str_eq(jstr(history_at(j, 0), "outcome"), "failed") &&
					      str_eq(jstr(history_at(j, 1), "outcome"), "failed"),
				      "failing job %d history: %s", i, s);
		} else {
			ck_assert_msg(str_eq(jstr(j, "state"), "succeeded") && jlong(j, "attempts") == 1 &&
					      jlong(jget(j, "result"), "attempt") == 1,
				      "job %d did not succeed at its one attempt: %s", i, s);
			ck_assert_msg(cJSON_GetArraySize(h) == 1, "job %d history: %s", i, s);
		}
		ck_assert_msg(jget(j, "node") == NULL, "finished job %d still has a node: %s", i, s);
		runs_expected += jlong(j, "attempts");
		free(s);
		cJSON_Delete(j);
	}
	tally_load(&c, &t);
	for (int i = 0; i < RR_JOBS; i++) {
		int want = i % RR_FAIL_EVERY == 0 ? 2 : 1;

		for (int a = 1; a <= want; a++)
			ck_assert_msg(tally_count(&t, ids[i], a, NULL) == 1,
				      "job %d attempt %d ran %d times (want once)", i, a,
				      tally_count(&t, ids[i], a, NULL));
		ck_assert_msg(tally_runs(&t, ids[i]) == want, "job %d ran %d times, want %d", i,
			      tally_runs(&t, ids[i]), want);
	}
	ck_assert_msg((long)t.n == runs_expected, "%zu tally runs, want %ld", t.n, runs_expected);
	for (int i = 0; i < NODES; i++)
		nodes_used += t.per_node[i] > 0;
	fprintf(stderr, "round_robin_exactly_once: %d jobs, %zu runs: node0 %zu, node1 %zu, node2 %zu\n",
		RR_JOBS, t.n, t.per_node[0], t.per_node[1], t.per_node[2]);
	ck_assert_msg(nodes_used >= 2, "only %d node ran jobs (%zu/%zu/%zu)", nodes_used, t.per_node[0],
		      t.per_node[1], t.per_node[2]);
	free(t.v);
	for (int i = 0; i < RR_JOBS; i++)
		free(ids[i]);
	cluster_stop(&c);
}
END_TEST

#define KILL_JOBS 6

START_TEST(kill9_node_rescued)
{
	struct cluster c;
	struct tally t;
	int alive[NODES] = {1, 1, 1}, victim = -1, mine[KILL_JOBS] = {0}, nmine = 0;
	char *ids[KILL_JOBS];
	double rescued_ms[KILL_JOBS], worst = 0;

	cluster_start(&c, NULL);
	int leader = wait_leader(&c, alive, NULL, 10000.0);

	/* 6 s jobs, submitted to every node, the victim too; 12 workers in all */
	for (int i = 0; i < KILL_JOBS; i++)
		ids[i] = harness_submit(&c.n[i % NODES], "{\"type\":\"tally\",\"payload\":{\"seconds\":6}}");
	/* once all run, the victim: the node other than the leader that runs
	 * the most of them (the leader if it runs them all) */
	int held[NODES] = {0}, running = 0;
	double end = mono_ms() + 15000.0;

	while (running < KILL_JOBS) {
		memset(held, 0, sizeof held);
		running = 0;
		for (int i = 0; i < KILL_JOBS; i++) {
			cJSON *j = get_job(&c.n[0], ids[i]);
			int k = node_index(&c, jstr(j, "node"));

			ck_assert_msg(!is_terminal(jstr(j, "state")), "job %d ended before the kill", i);
			if (str_eq(jstr(j, "state"), "running") && k >= 0) {
				held[k]++;
				running++;
			}
			cJSON_Delete(j);
		}
		ck_assert_msg(running == KILL_JOBS || mono_ms() < end, "only %d of %d jobs running after 15 s",
			      running, KILL_JOBS);
		if (running < KILL_JOBS)
			nap_ms(10);
	}
	for (int k = 0; k < NODES; k++)
		if (k != leader && held[k] > 0 && (victim < 0 || held[k] > held[victim]))
			victim = k;
	if (victim < 0)
		victim = leader;
	fprintf(stderr, "kill9_node_rescued: jobs per node %d/%d/%d, leader %d, killing node %d\n", held[0],
		held[1], held[2], leader, victim);
	char victim_id[64];

	snprintf(victim_id, sizeof victim_id, "%s", c.id[victim]);
	harness_kill9(&c.n[victim]);
	double t0 = mono_ms();

	alive[victim] = 0;
	int s = (victim + 1) % NODES;

	/* what the store still shows as the victim's: running there */
	for (int i = 0; i < KILL_JOBS; i++) {
		cJSON *j = get_job(&c.n[s], ids[i]);

		if (str_eq(jstr(j, "state"), "running") && str_eq(jstr(j, "node"), victim_id)) {
			mine[i] = 1;
			nmine++;
		}
		cJSON_Delete(j);
	}
	ck_assert_msg(nmine > 0, "the victim held none of the jobs right after its kill");

	/* each runs again on another node (or has finished) within the bound */
	for (int left = nmine; left > 0;) {
		left = 0;
		for (int i = 0; i < KILL_JOBS; i++) {
			if (!mine[i] || mine[i] == 2)
				continue;
			cJSON *j = get_job(&c.n[s], ids[i]);
			const char *st = jstr(j, "state"), *node = jstr(j, "node");

			if (is_terminal(st) || (str_eq(st, "running") && node != NULL && !str_eq(node, victim_id))) {
				mine[i] = 2;
				rescued_ms[i] = mono_ms() - t0;
				if (rescued_ms[i] > worst)
					worst = rescued_ms[i];
			} else {
				left++;
			}
			cJSON_Delete(j);
		}
		ck_assert_msg(left == 0 || mono_ms() - t0 < RESCUE_BOUND_MS,
			      "%d of the killed node's %d jobs not running elsewhere %.0f ms after the kill",
			      left, nmine, RESCUE_BOUND_MS);
		if (left > 0)
			nap_ms(20);
	}
	fprintf(stderr, "kill9_node_rescued: %d jobs of the killed node running again after at most %.0f ms "
			"(bound %.0f ms)\n", nmine, worst, RESCUE_BOUND_MS);

	/* nothing acknowledged is lost; each attempt recorded once */
	for (int i = 0; i < KILL_JOBS; i++) {
		cJSON *j = wait_terminal(&c.n[s], ids[i]);
		char *js = harness_json_text(j);
		int intr;

		check_history(j, &intr);
		ck_assert_msg(str_eq(jstr(j, "state"), "succeeded"), "job %d: %s", i, js);
		if (mine[i]) {
			const cJSON *h0 = history_at(j, 0), *h1 = history_at(j, 1);

			ck_assert_msg(jlong(j, "attempts") == 2 && intr == 1 &&
					      str_eq(jstr(h0, "outcome"), "interrupted") &&
					      str_eq(jstr(h1, "outcome"), "succeeded"),
				      "killed node's job %d: %s", i, js);
			ck_assert_msg(jstr(h0, "error") != NULL, "interrupted attempt has no error: %s", js);
			ck_assert_msg(jts(h0, "finished_at") <= jts(h1, "started_at"),
				      "the rerun started before the interrupted attempt ended: %s", js);
			ck_assert_msg(jlong(jget(j, "result"), "attempt") == 2, "result: %s", js);
		} else {
			ck_assert_msg(jlong(j, "attempts") == 1 && intr == 0, "job %d of a live node: %s", i, js);
		}
		free(js);
		cJSON_Delete(j);
	}
	tally_load(&c, &t);
	for (int i = 0; i < KILL_JOBS; i++) {
		int node = -1;

		if (mine[i]) {
			/* attempt 1 may have been claimed ahead and never started */
			ck_assert_msg(tally_count(&t, ids[i], 1, &node) <= 1 &&
					      (node == -1 || node == victim),
				      "job %d attempt 1: %d runs, node %d", i, tally_count(&t, ids[i], 1, NULL),
				      node);
			ck_assert_msg(tally_count(&t, ids[i], 2, &node) == 1 && node != victim,
				      "job %d attempt 2: %d runs, last on node %d (victim %d)", i,
				      tally_count(&t, ids[i], 2, NULL), node, victim);
		} else {
			ck_assert_msg(tally_runs(&t, ids[i]) == 1 && tally_count(&t, ids[i], 1, NULL) == 1,
				      "job %d: %d runs", i, tally_runs(&t, ids[i]));
		}
	}
	free(t.v);

	/* the survivors see the victim dead */
	wait_dead(&c.n[s], victim_id, t0, RESCUE_BOUND_MS);
	for (int i = 0; i < KILL_JOBS; i++)
		free(ids[i]);
	cluster_stop(&c);
}
END_TEST

START_TEST(sigstop_fenced)
{
	struct cluster c;
	struct tally t;
	int x, y = -1, s;
	char old_id[64];

	cluster_start(&c, NULL);
	/* 8 s: the stopped node wakes while the rerun still runs */
	char *id = harness_submit(&c.n[0], "{\"type\":\"tally\",\"payload\":{\"seconds\":8}}");

	cJSON_Delete(wait_running(&c, 0, id, &x));
	snprintf(old_id, sizeof old_id, "%s", c.id[x]);
	s = (x + 1) % NODES;
	ck_assert_msg(kill(c.n[x].pid, SIGSTOP) == 0, "SIGSTOP");
	double t0 = mono_ms();

	/* past the heartbeat bound: rescued and rerun elsewhere */
	for (;;) {
		cJSON *j = get_job(&c.n[s], id);
		const char *node = jstr(j, "node");

		if (str_eq(jstr(j, "state"), "running") && jlong(j, "attempts") == 2 && node != NULL &&
		    !str_eq(node, old_id)) {
			int intr;
			char *js = harness_json_text(j);

			y = node_index(&c, node);
			ck_assert_msg(y >= 0 && y != x, "rerun on an unknown node: %s", js);
			check_history(j, &intr);
			ck_assert_msg(intr == 1 && str_eq(jstr(history_at(j, 0), "outcome"), "interrupted"),
				      "rescued attempt not interrupted: %s", js);
			free(js);
			cJSON_Delete(j);
			break;
		}
		ck_assert_msg(!is_terminal(jstr(j, "state")) && mono_ms() - t0 < RESCUE_BOUND_MS,
			      "the stopped node's job not rerun elsewhere %.0f ms after SIGSTOP (state %s, "
			      "attempts %ld)", mono_ms() - t0, jstr_or(j, "state"), jlong(j, "attempts"));
		cJSON_Delete(j);
		nap_ms(20);
	}
	fprintf(stderr, "sigstop_fenced: rerun on node %d %.0f ms after SIGSTOP (bound %.0f ms)\n", y,
		mono_ms() - t0, RESCUE_BOUND_MS);
	wait_dead(&c.n[s], old_id, t0, RESCUE_BOUND_MS);
	cJSON *v;
	char *vs;

	/* it wakes and completes attempt 1 late: refused, the rerun stands */
	ck_assert_msg(kill(c.n[x].pid, SIGCONT) == 0, "SIGCONT");
	double end = mono_ms() + 30000.0;
	cJSON *j;

	for (;;) {
		j = get_job(&c.n[s], id);
		char *js = harness_json_text(j);

		if (is_terminal(jstr(j, "state"))) {
			free(js);
			break;
		}
		ck_assert_msg(str_eq(jstr(j, "state"), "running") && jlong(j, "attempts") == 2 &&
				      str_eq(jstr(j, "node"), c.id[y]) &&
				      cJSON_GetArraySize(jget(j, "attempt_history")) == 1,
			      "the job changed under its rerun: %s", js);
		ck_assert_msg(mono_ms() < end, "rerun not finished after 30 s: %s", js);
		free(js);
		cJSON_Delete(j);
		nap_ms(20);
	}
	char *js = harness_json_text(j);
	int intr;

	check_history(j, &intr);
	const cJSON *h0 = history_at(j, 0), *h1 = history_at(j, 1);

	ck_assert_msg(str_eq(jstr(j, "state"), "succeeded") && jlong(j, "attempts") == 2 &&
			      jlong(jget(j, "result"), "attempt") == 2,
		      "final result not the rerun's: %s", js);
	ck_assert_msg(intr == 1 && str_eq(jstr(h0, "outcome"), "interrupted") &&
			      str_eq(jstr(h1, "outcome"), "succeeded"),
		      "history: %s", js);
	ck_assert_msg(jts(h0, "finished_at") <= jts(h1, "started_at"),
		      "in the store the two attempts overlap: %s", js);
	free(js);
	cJSON_Delete(j);
	tally_load(&c, &t);
	int node = -1;

	ck_assert_msg(tally_count(&t, id, 1, &node) == 1 && node == x, "attempt 1: %d runs, node %d (want %d)",
		      tally_count(&t, id, 1, NULL), node, x);
	ck_assert_msg(tally_count(&t, id, 2, &node) == 1 && node == y, "attempt 2: %d runs, node %d (want %d)",
		      tally_count(&t, id, 2, NULL), node, y);
	ck_assert_msg(t.n == 2, "%zu tally runs, want 2", t.n);
	free(t.v);

	/* the woken node carries on under a new id */
	end = mono_ms() + 15000.0;
	for (;;) {
		refresh_id(&c, x);
		if (!str_eq(c.id[x], old_id))
			break;
		ck_assert_msg(mono_ms() < end, "the woken node still has its old id %s after 15 s", old_id);
		nap_ms(20);
	}
	end = mono_ms() + 10000.0;
	for (;;) {
		const cJSON *e;

		v = cluster_view(&c.n[s]);
		e = view_node(v, c.id[x]);
		if (e != NULL && cJSON_IsTrue(jget(e, "alive")))
			break;
		vs = harness_json_text(v);
		ck_assert_msg(mono_ms() < end, "the woken node's new id %s not alive in node %d's view: %s",
			      c.id[x], s, vs);
		free(vs);
		cJSON_Delete(v);
		nap_ms(20);
	}
	vs = harness_json_text(v);
	ck_assert_msg(view_dead(v, old_id), "the old id is alive again: %s", vs);
	ck_assert_msg(jlong(view_node(v, c.id[x]), "pid") == (long)c.n[x].pid, "new id's pid: %s", vs);
	free(vs);
	cJSON_Delete(v);
	char *echo = harness_submit(&c.n[x], "{\"type\":\"echo\",\"payload\":1}");

	j = wait_terminal(&c.n[x], echo);
	ck_assert_str_eq(jstr(j, "state"), "succeeded");
	cJSON_Delete(j);
	free(echo);
	free(id);
	cluster_stop(&c);
}
END_TEST

#define LEADER_JOBS 24

START_TEST(leader_killed_replaced)
{
	struct cluster c;
	int alive[NODES] = {1, 1, 1}, runner = -1;
	char *ids[LEADER_JOBS] = {NULL}, *held = NULL, old_id[64];
	int n = 0;

	cluster_start(&c, NULL);
	int leader = wait_leader(&c, alive, NULL, 10000.0);

	snprintf(old_id, sizeof old_id, "%s", c.id[leader]);
	/* until the leader itself runs a job (12 workers in all) */
	while (runner != leader) {
		ck_assert_msg(n < LEADER_JOBS, "the leader ran none of %d jobs", LEADER_JOBS);
		ids[n] = harness_submit(&c.n[n % NODES], "{\"type\":\"tally\",\"payload\":{\"seconds\":4}}");
		cJSON_Delete(wait_running(&c, n % NODES, ids[n], &runner));
		held = ids[n++];
	}
	harness_kill9(&c.n[leader]);
	double t0 = mono_ms();

	alive[leader] = 0;
	int next = wait_leader(&c, alive, old_id, LEADER_BOUND_MS);

	fprintf(stderr, "leader_killed_replaced: node %d leads %.0f ms after the leader's kill -9 "
			"(TTL %.0f ms)\n", next, mono_ms() - t0, LEADER_TTL_MS);
	int s = next, o = 3 - next - leader;

	fprintf(stderr, "leader_killed_replaced: the old leader dead %.0f ms after its kill\n",
		wait_dead(&c.n[o], old_id, t0, RESCUE_BOUND_MS));

	/* maintenance goes on: the old leader's job is rescued ... */
	for (;;) {
		cJSON *j = get_job(&c.n[o], held);
		const char *st = jstr(j, "state"), *node = jstr(j, "node");

		if (is_terminal(st) || (str_eq(st, "running") && node != NULL && !str_eq(node, old_id))) {
			cJSON_Delete(j);
			break;
		}
		ck_assert_msg(mono_ms() - t0 < RESCUE_BOUND_MS, "the old leader's job not rerun %.0f ms after "
			      "its kill (state %s)", RESCUE_BOUND_MS, jstr_or(j, "state"));
		cJSON_Delete(j);
		nap_ms(20);
	}
	cJSON *j = wait_terminal(&c.n[s], held);
	char *js = harness_json_text(j);
	int intr;

	check_history(j, &intr);
	ck_assert_msg(str_eq(jstr(j, "state"), "succeeded") && jlong(j, "attempts") == 2 && intr == 1 &&
			      str_eq(jstr(history_at(j, 0), "outcome"), "interrupted"),
		      "the old leader's job: %s", js);
	free(js);
	cJSON_Delete(j);

	/* ... and retention deletes what finishes after the change */
	char *gone = harness_submit(&c.n[o], "{\"type\":\"echo\",\"retention_s\":0}");

	cJSON_Delete(wait_terminal(&c.n[s], gone));
	double end = mono_ms() + 10000.0;
	char path[128];

	snprintf(path, sizeof path, "/v1/jobs/%s", gone);
	for (;;) {
		struct resp r;

		harness_request(&c.n[o], "GET", path, NULL, NULL, NULL, &r);
		if (r.status == 404) {
			assert_problem(&r, 404, "job_not_found", NULL);
			harness_resp_free(&r);
			break;
		}
		ck_assert_msg(r.status == 200 && mono_ms() < end,
			      "retention_s 0 job still answers %ld 10 s after the leader change: %.400s", r.status,
			      r.body);
		harness_resp_free(&r);
		nap_ms(50);
	}
	free(gone);
	for (int i = 0; i < n; i++) {
		cJSON_Delete(wait_terminal(&c.n[s], ids[i]));
		free(ids[i]);
	}
	cluster_stop(&c);
}
END_TEST

START_TEST(cross_node_long_poll)
{
	struct cluster c;

	cluster_start(&c, NULL);
	for (int round = 0; round < NODES; round++) {
		int runner;
		char *id = harness_submit(&c.n[round], "{\"type\":\"sleep\",\"payload\":{\"seconds\":2}}");
		cJSON *j = wait_running(&c, round, id, &runner);

		fprintf(stderr, "cross_node_long_poll: submitted on node %d, claimed by node %d %lld ms after "
				"created_at\n", round, runner, jts(j, "started_at") - jts(j, "created_at"));
		cJSON_Delete(j);
		int w = (runner + 1) % NODES;
		struct resp r;
		char path[160], hdr[128];

		snprintf(path, sizeof path, "/v1/jobs/%s?wait=30", id);
		harness_request(&c.n[w], "GET", path, NULL, NULL, NULL, &r);
		ck_assert_msg(r.status == 200, "long poll on node %d: %ld %s", w, r.status, r.error);
		ck_assert_msg(str_eq(jstr(r.json, "state"), "succeeded"),
			      "long poll on node %d answered before the job on node %d ended: %.400s", w, runner,
			      r.body);
		/* answered by the end on the other node, not by the wait running out */
		ck_assert_msg(r.ms < 20000.0, "long poll answered after %.0f ms of its 30 s", r.ms);
		ck_assert_msg(harness_header(&r, "Jobq-Node", hdr, sizeof hdr) && str_eq(hdr, c.id[w]),
			      "long poll answered by '%s', not node %d", hdr, w);
		fprintf(stderr, "cross_node_long_poll: node %d's long poll answered after %.0f ms\n", w, r.ms);
		harness_resp_free(&r);
		free(id);
	}

	/* claim latency across nodes: a figure, not an assertion */
	for (int i = 0; i < 9; i++) {
		int runner;
		char *id = harness_submit(&c.n[i % NODES], "{\"type\":\"sleep\",\"payload\":{\"seconds\":0.3}}");
		cJSON *j = wait_running(&c, i % NODES, id, &runner);

		fprintf(stderr, "cross_node_long_poll: claim %lld ms after submit (%s node)\n",
			jts(j, "started_at") - jts(j, "created_at"), runner == i % NODES ? "same" : "other");
		cJSON_Delete(j);
		cJSON_Delete(wait_terminal(&c.n[i % NODES], id));
		free(id);
	}
	cluster_stop(&c);
}
END_TEST

START_TEST(cross_node_sse)
{
	struct cluster c;
	int runner;

	cluster_start(&c, NULL);
	char *id = harness_submit(&c.n[0], "{\"type\":\"sleep\",\"payload\":{\"seconds\":3}}");

	cJSON_Delete(wait_running(&c, 0, id, &runner));
	int w = (runner + 1) % NODES;
	struct resp r;
	char path[160], ct[128];

	snprintf(path, sizeof path, "/v1/jobs/%s/events", id);
	harness_request(&c.n[w], "GET", path, NULL, NULL, NULL, &r);
	ck_assert_msg(r.status == 200, "event stream on node %d did not end (job on node %d): %ld %s; got: %.600s",
		      w, runner, r.status, r.error, r.body);
	ck_assert_msg(harness_header(&r, "Content-Type", ct, sizeof ct) &&
			      strncmp(ct, "text/event-stream", 17) == 0,
		      "Content-Type %s", ct);
	/* job events: the first running, the last succeeded */
	char first[32] = "", last[32] = "", *p = r.body;
	int events = 0;

	while ((p = strstr(p, "event: job\ndata: ")) != NULL) {
		p += strlen("event: job\ndata: ");
		char *eol = strchr(p, '\n');

		ck_assert_msg(eol != NULL, "torn event: %.200s", p);
		*eol = '\0';
		cJSON *e = cJSON_Parse(p);

		ck_assert_msg(e != NULL && str_eq(jstr(e, "id"), id), "job event of another job: %s", p);
		if (events == 0)
			snprintf(first, sizeof first, "%s", jstr_or(e, "state"));
		snprintf(last, sizeof last, "%s", jstr_or(e, "state"));
		events++;
		cJSON_Delete(e);
		p = eol + 1;
	}
	ck_assert_msg(str_eq(first, "running") && str_eq(last, "succeeded"),
		      "job events on node %d: first %s, last %s (job ran on node %d)", w, first, last, runner);
	harness_resp_free(&r);
	free(id);
	cluster_stop(&c);
}
END_TEST

START_TEST(cross_node_cancel)
{
	struct cluster c;
	int runner;

	cluster_start(&c, NULL);
	char *id = harness_submit(&c.n[0], "{\"type\":\"sleep\",\"payload\":{\"seconds\":30}}");

	cJSON_Delete(wait_running(&c, 0, id, &runner));
	int k = (runner + 1) % NODES;
	struct resp r;

	job_action(&c.n[k], id, "cancel", &r);
	ck_assert_msg(r.status == 200, "cancel on node %d: %ld %.400s", k, r.status, r.body);
	char *js = harness_json_text(r.json);

	ck_assert_msg(str_eq(jstr(r.json, "state"), "canceled") && jstr(r.json, "error") != NULL &&
			      jnull(r.json, "result"),
		      "cancel reply: %s", js);
	long long ran = jts(r.json, "finished_at") - jts(r.json, "started_at");

	ck_assert_msg(jts(r.json, "started_at") > 0 && ran >= 0 && ran < 5000,
		      "the 30 s job on node %d ran %lld ms before the cancel on node %d took", runner, ran, k);
	fprintf(stderr, "cross_node_cancel: cancel on node %d of the job on node %d answered in %.0f ms\n", k,
		runner, r.ms);
	free(js);
	harness_resp_free(&r);

	cJSON *j = get_job(&c.n[runner], id);
	int intr;

	js = harness_json_text(j);
	check_history(j, &intr);
	ck_assert_msg(str_eq(jstr(j, "state"), "canceled") && jlong(j, "attempts") == 1 &&
			      str_eq(jstr(history_at(j, 0), "outcome"), "canceled") && jget(j, "node") == NULL,
		      "job on its node after the cancel: %s", js);
	free(js);
	cJSON_Delete(j);

	/* the runner's pool let it go */
	double end = mono_ms() + 5000.0;

	for (;;) {
		cJSON *v = cluster_view(&c.n[runner]);
		long busy = jlong(view_node(v, c.id[runner]), "running");

		cJSON_Delete(v);
		if (busy == 0)
			break;
		ck_assert_msg(mono_ms() < end, "node %d still runs %ld jobs 5 s after the cancel", runner, busy);
		nap_ms(20);
	}
	job_action(&c.n[3 - k - runner], id, "cancel", &r);
	assert_problem(&r, 409, "job_finished", NULL);
	harness_resp_free(&r);
	free(id);
	cluster_stop(&c);
}
END_TEST

#define LIM 5
#define LIM_JOBS 15

/* counts.running of queue lim as node i sees it, checked <= LIM. */
static long lim_running(const struct cluster *c, int i)
{
	cJSON *q = queue_action(&c->n[i], "lim", NULL);
	long n = jlong(jget(q, "counts"), "running");

	cJSON_Delete(q);
	ck_assert_msg(n >= 0 && n <= LIM, "node %d sees %ld jobs of queue lim=%d running", i, n, LIM);
	return n;
}

static int cmp_ev(const void *a, const void *b)
{
	const long long *x = a, *y = b;

	/* by time; at one time the end (-1) before the start (+1) */
	if (x[0] != y[0])
		return x[0] < y[0] ? -1 : 1;
	return (x[1] > y[1]) - (x[1] < y[1]);
}

START_TEST(cluster_queue_limit)
{
	struct cluster c;
	char *ids[LIM_JOBS], gate[HARNESS_PATH_MAX + 16];
	long long ev[2 * LIM_JOBS][2];
	int per_node[NODES] = {0};

	cluster_start(&c, ARGS("--queue", "lim=5"));
	for (int i = 0; i < LIM_JOBS; i++)
		ids[i] = harness_submit(&c.n[i % NODES], "{\"type\":\"gate\",\"queue\":\"lim\"}");
	double end = mono_ms() + 15000.0;

	for (int i = 0; lim_running(&c, i % NODES) < LIM; i++) {
		ck_assert_msg(mono_ms() < end, "queue lim never had %d running in 15 s", LIM);
		nap_ms(10);
	}
	/* 12 free workers in all: the limit, not the workers, holds the rest,
	 * through more than one polling interval */
	end = mono_ms() + 2000.0;
	for (int i = 0; mono_ms() < end; i++) {
		ck_assert_msg(lim_running(&c, i % NODES) == LIM, "running fell below the limit with the gate shut");
		nap_ms(20);
	}
	cJSON *l = call(&c.n[1], "GET", "/v1/jobs?queue=lim&state=running&limit=100", NULL, 200);
	const cJSON *e;

	ck_assert_msg(cJSON_GetArraySize(jget(l, "jobs")) == LIM, "%d jobs of lim listed running",
		      cJSON_GetArraySize(jget(l, "jobs")));
	cJSON_ArrayForEach(e, jget(l, "jobs")) {
		int k = node_index(&c, jstr(e, "node"));

		ck_assert_msg(k >= 0, "running job without a node of ours");
		per_node[k]++;
	}
	cJSON_Delete(l);
	fprintf(stderr, "cluster_queue_limit: %d running of lim: node0 %d, node1 %d, node2 %d\n", LIM,
		per_node[0], per_node[1], per_node[2]);
	l = queue_action(&c.n[2], "lim", NULL);
	ck_assert_msg(jlong(jget(l, "counts"), "queued") == LIM_JOBS - LIM, "queued: %ld",
		      jlong(jget(l, "counts"), "queued"));
	cJSON_Delete(l);

	snprintf(gate, sizeof gate, "%s/%s", c.dir, GATE_FILE);
	FILE *f = fopen(gate, "w");

	ck_assert_msg(f != NULL, "cannot create the gate file");
	fclose(f);
	for (int i = 0; i < LIM_JOBS; i++) {
		(void)lim_running(&c, i % NODES);
		cJSON *j = wait_terminal(&c.n[i % NODES], ids[i]);

		char *js = harness_json_text(j);

		ck_assert_msg(str_eq(jstr(j, "state"), "succeeded") && jlong(j, "attempts") == 1,
			      "gate job %d did not succeed at its one attempt: %s", i, js);
		free(js);
		ev[2 * i][0] = jts(j, "started_at");
		ev[2 * i][1] = 1;
		ev[2 * i + 1][0] = jts(j, "finished_at");
		ev[2 * i + 1][1] = -1;
		cJSON_Delete(j);
		free(ids[i]);
	}
	/* in the store, never more than the limit running at once */
	qsort(ev, 2 * LIM_JOBS, sizeof ev[0], cmp_ev);
	long long at = 0, most = 0;

	for (int i = 0; i < 2 * LIM_JOBS; i++) {
		at += ev[i][1];
		if (at > most)
			most = at;
	}
	ck_assert_msg(most == LIM, "%lld jobs of lim=%d overlapped in the store", most, LIM);
	cluster_stop(&c);
}
END_TEST

START_TEST(cross_node_pause)
{
	struct cluster c;
	char *held[6], *ctl[NODES];

	cluster_start(&c, NULL);
	cJSON *q = queue_action(&c.n[0], "pz", "pause");

	ck_assert_msg(cJSON_IsTrue(jget(q, "paused")), "pause reply not paused");
	cJSON_Delete(q);
	for (int i = 1; i < NODES; i++) {
		q = queue_action(&c.n[i], "pz", NULL);
		ck_assert_msg(cJSON_IsTrue(jget(q, "paused")), "node %d: pz not paused", i);
		cJSON_Delete(q);
	}
	for (int i = 0; i < 6; i++)
		held[i] = harness_submit(&c.n[i % NODES], "{\"type\":\"echo\",\"queue\":\"pz\",\"payload\":\"held\"}");
	/* every node's workers run other queues meanwhile ... */
	for (int i = 0; i < NODES; i++)
		ctl[i] = harness_submit(&c.n[i], "{\"type\":\"echo\",\"queue\":\"free\"}");
	for (int i = 0; i < NODES; i++) {
		cJSON *j = wait_terminal(&c.n[i], ctl[i]);

		ck_assert_str_eq(jstr(j, "state"), "succeeded");
		cJSON_Delete(j);
		free(ctl[i]);
	}
	/* ... but none starts pz, through more than one polling interval */
	double end = mono_ms() + 1500.0;

	for (int k = 0; mono_ms() < end; k++) {
		for (int i = 0; i < 6; i++) {
			cJSON *j = get_job(&c.n[k % NODES], held[i]);

			ck_assert_msg(str_eq(jstr(j, "state"), "queued") && jlong(j, "attempts") == 0,
				      "job %d of paused pz is %s (attempts %ld)", i, jstr_or(j, "state"),
				      jlong(j, "attempts"));
			cJSON_Delete(j);
		}
		nap_ms(50);
	}
	q = queue_action(&c.n[2], "pz", "resume");
	ck_assert_msg(cJSON_IsFalse(jget(q, "paused")), "resume reply still paused");
	cJSON_Delete(q);
	for (int i = 0; i < 6; i++) {
		cJSON *j = wait_terminal(&c.n[(i + 1) % NODES], held[i]);

		ck_assert_msg(str_eq(jstr(j, "state"), "succeeded") && str_eq(jstr(j, "result"), "held"),
			      "resumed job %d: %s", i, jstr_or(j, "state"));
		cJSON_Delete(j);
		free(held[i]);
	}
	cluster_stop(&c);
}
END_TEST

/* One POST /v1/jobs of a concurrent round (no assertions off the main thread). */
struct racer {
	const struct jobqd *d;
	pthread_barrier_t *go;
	char key[96];
	const char *body;
	long status;
	char id[64];
};

static void *race_submit(void *arg)
{
	struct racer *r = arg;
	struct resp out;

	pthread_barrier_wait(r->go);
	harness_request(r->d, "POST", "/v1/jobs", "application/json", r->body, r->key, &out);
	r->status = out.status;
	snprintf(r->id, sizeof r->id, "%s", out.json ? jstr_or(out.json, "id") : "");
	harness_resp_free(&out);
	return NULL;
}

#define IDEM_ROUNDS 10

START_TEST(cross_node_idempotency)
{
	struct cluster c;
	const char *body = "{\"type\":\"echo\",\"payload\":{\"n\":1}}";
	const char *key = "Idempotency-Key: cluster-key-1";
	struct resp r;

	cluster_start(&c, NULL);
	cJSON *first = harness_call(&c.n[0], "POST", "/v1/jobs", body, key, 201);

	for (int i = 1; i < NODES; i++) {
		cJSON *j = harness_call(&c.n[i], "POST", "/v1/jobs", body, key, 200);

		ck_assert_msg(str_eq(jstr(j, "id"), jstr(first, "id")), "node %d replayed job %s, not %s", i,
			      jstr_or(j, "id"), jstr_or(first, "id"));
		cJSON_Delete(j);
	}
	harness_request(&c.n[1], "POST", "/v1/jobs", "application/json", "{\"type\":\"echo\",\"payload\":2}",
			key, &r);
	assert_problem(&r, 409, "idempotency_conflict", "Idempotency-Key");
	harness_resp_free(&r);

	/* one fresh key sent to the three nodes at once: one job */
	for (int round = 0; round < IDEM_ROUNDS; round++) {
		struct racer rc[NODES];
		pthread_t th[NODES];
		pthread_barrier_t go;
		int created = 0, replayed = 0;

		pthread_barrier_init(&go, NULL, NODES);
		for (int i = 0; i < NODES; i++) {
			rc[i].d = &c.n[i];
			rc[i].go = &go;
			rc[i].body = body;
			snprintf(rc[i].key, sizeof rc[i].key, "Idempotency-Key: race-%d", round);
			ck_assert_int_eq(pthread_create(&th[i], NULL, race_submit, &rc[i]), 0);
		}
		for (int i = 0; i < NODES; i++)
			pthread_join(th[i], NULL);
		pthread_barrier_destroy(&go);
		for (int i = 0; i < NODES; i++) {
			created += rc[i].status == 201;
			replayed += rc[i].status == 200;
			ck_assert_msg(str_eq(rc[i].id, rc[0].id) && rc[i].id[0] != '\0',
				      "round %d: node %d answered %ld with job '%s', node 0 '%s'", round, i,
				      rc[i].status, rc[i].id, rc[0].id);
		}
		ck_assert_msg(created == 1 && replayed == NODES - 1, "round %d: %d created, %d replayed", round,
			      created, replayed);
	}
	cJSON *l = call(&c.n[2], "GET", "/v1/jobs?limit=100", NULL, 200);

	ck_assert_msg(cJSON_GetArraySize(jget(l, "jobs")) == 1 + IDEM_ROUNDS, "%d jobs, want %d",
		      cJSON_GetArraySize(jget(l, "jobs")), 1 + IDEM_ROUNDS);
	cJSON_Delete(l);
	cJSON_Delete(first);
	cluster_stop(&c);
}
END_TEST

/* ---- one rate limit for the cluster ---- */

#define RL_LIMIT 10
#define RL_PERIOD_MS 500
#define RL_BURST 3
#define RL_AFTER 60 /* starts after the burst: 6 periods */

static int cmp_ll(const void *a, const void *b)
{
	long long x = *(const long long *)a, y = *(const long long *)b;

	return (x > y) - (x < y);
}

START_TEST(cluster_rate_limit_is_global)
{
	enum { N = RL_BURST + RL_AFTER };
	struct cluster c;
	char *ids[N];
	long long started[N];
	struct tally t;

	cluster_start(&c, NULL);
	cJSON_Delete(call(&c.n[0], "PUT", "/v1/queues/rl/rate", "{\"limit\":10,\"period_s\":0.5,\"burst\":3}", 200));
	/* Every job is queued before any may start: the queue is paused
	 * meanwhile (on another node), then resumed (on a third). */
	cJSON_Delete(queue_action(&c.n[1], "rl", "pause"));
	for (int i = 0; i < N; i++)
		ids[i] = harness_submit(&c.n[i % NODES], "{\"type\":\"tally\",\"queue\":\"rl\",\"payload\":{}}");
	cJSON_Delete(queue_action(&c.n[2], "rl", "resume"));
	for (int i = 0; i < N; i++) {
		cJSON *j = wait_terminal(&c.n[(i + 1) % NODES], ids[i]);
		char *js = harness_json_text(j);

		ck_assert_msg(str_eq(jstr(j, "state"), "succeeded") && jlong(j, "attempts") == 1,
			      "job %d did not succeed at its one attempt: %s", i, js);
		free(js);
		started[i] = jts(j, "started_at");
		cJSON_Delete(j);
		free(ids[i]);
	}
	tally_load(&c, &t);
	ck_assert_msg(t.n == N, "%zu runs tallied for %d jobs", t.n, N);
	int nodes_ran = 0;

	for (int i = 0; i < NODES; i++)
		nodes_ran += t.per_node[i] > 0;
	fprintf(stderr, "cluster_rate_limit_is_global: starts per node %zu %zu %zu\n", t.per_node[0],
		t.per_node[1], t.per_node[2]);
	free(t.v);
	ck_assert_msg(nodes_ran >= 2, "only %d node started jobs: the limit was not shared", nodes_ran);

	qsort(started, N, sizeof started[0], cmp_ll);
	double gap = (double)RL_PERIOD_MS / RL_LIMIT;

	ck_assert_msg(started[RL_BURST - 1] - started[0] < gap, "the burst of %d took %lld ms", RL_BURST,
		      started[RL_BURST - 1] - started[0]);
	double window = (double)(started[N - 1] - started[0]);
	double rate = RL_AFTER / window * RL_PERIOD_MS;

	ck_assert_msg(fabs(rate - RL_LIMIT) <= RL_LIMIT * 0.05,
		      "the cluster started %.2f per period over %.0f ms (limit %d)", rate, window, RL_LIMIT);
	for (int i = 0; i < N; i++)
		for (int k = i + 1; k < N; k++)
			ck_assert_msg(k - i <= RL_BURST + (started[k] - started[i]) / gap + 1,
				      "%d starts in %lld ms across the nodes", k - i + 1, started[k] - started[i]);
	cluster_stop(&c);
}
END_TEST

/* ---- schedules ---- */

static long long sched_wall_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* The fire times of the jobs in queue (read on node d), ascending, into
 * t (at most max); how many. */
static int sched_fires(const struct jobqd *d, const char *queue, long long *t, int max)
{
	char path[128];
	int n = 0;

	snprintf(path, sizeof path, "/v1/jobs?queue=%s&limit=1000", queue);
	cJSON *j = call(d, "GET", path, NULL, 200);
	for (const cJSON *job = jget(j, "jobs")->child; job; job = job->next) {
		ck_assert_int_lt(n, max);
		t[n++] = jts(jget(job, "schedule"), "fire_at");
	}
	cJSON_Delete(j);
	for (int i = 0; i < n / 2; i++) {
		long long x = t[i];

		t[i] = t[n - 1 - i];
		t[n - 1 - i] = x;
	}
	return n;
}

/* Polls node d until queue has a fire at or after at; bounded. */
static void sched_wait_fire(const struct jobqd *d, const char *queue, long long at, double bound_ms)
{
	long long t[1000];
	double end = mono_ms() + bound_ms;

	for (;;) {
		int n = sched_fires(d, queue, t, 1000);

		if (n > 0 && t[n - 1] >= at)
			return;
		ck_assert_msg(mono_ms() < end, "no fire of %s at or after %lld within %.0f ms", queue, at, bound_ms);
		nap_ms(20);
	}
}

/* A schedule every second on three nodes; the leader, which fires, is
 * killed with -9: the next leader fires what came due meanwhile (late by
 * less than the grace), so every fire time from the first on has exactly
 * one job, none missing. */
START_TEST(schedule_fires_once_across_a_leader_kill)
{
	struct cluster c;
	int alive[NODES] = {1, 1, 1};
	long long t[1000];
	char old_id[64];

	cluster_start(&c, NULL);
	int leader = wait_leader(&c, alive, NULL, 10000.0);
	int other = (leader + 1) % NODES;

	snprintf(old_id, sizeof old_id, "%s", c.id[leader]);
	cJSON *s = call(&c.n[other], "POST", "/v1/schedules",
			"{\"name\":\"beat\",\"every_s\":1,\"job\":{\"type\":\"echo\",\"queue\":\"beat\"}}", 201);
	long long first = jts(s, "next_fire_at");

	cJSON_Delete(s);
	sched_wait_fire(&c.n[other], "beat", first + 2000, 10000.0);
	harness_kill9(&c.n[leader]);
	long long killed = sched_wall_ms();

	alive[leader] = 0;
	int next = wait_leader(&c, alive, old_id, LEADER_BOUND_MS);

	sched_wait_fire(&c.n[next], "beat", killed + 3000 + (long long)LEADER_TTL_MS, LEADER_BOUND_MS + 10000.0);
	int n = sched_fires(&c.n[next], "beat", t, 1000);

	ck_assert_msg(n > 0, "no fire of beat found");
	ck_assert_int_eq(t[0], first);
	for (int i = 1; i < n; i++)
		ck_assert_msg(t[i] - t[i - 1] == 1000, "fire %lld then %lld: %s", t[i - 1], t[i],
			      t[i] == t[i - 1] ? "twice" : "missing between");
	ck_assert_msg(t[n - 1] > killed, "nothing fired after the kill");
	fprintf(stderr, "schedule_fires_once_across_a_leader_kill: %d fires, one each, across the hand-over\n", n);
	cluster_stop(&c);
}
END_TEST

static Suite *cluster_suite(void)
{
	Suite *s = suite_create("jobq_cluster");
	/* one case per test, so CK_RUN_CASE=<test name> runs one */
	const struct {
		const char *name;
		const TTest *test;
	} tests[] = {
		{"cluster_view_lists_three_live_nodes_and_one_leader", cluster_view_lists_three_live_nodes_and_one_leader},
		{"round_robin_exactly_once", round_robin_exactly_once},
		{"kill9_node_rescued", kill9_node_rescued},
		{"sigstop_fenced", sigstop_fenced},
		{"leader_killed_replaced", leader_killed_replaced},
		{"cross_node_long_poll", cross_node_long_poll},
		{"cross_node_sse", cross_node_sse},
		{"cross_node_cancel", cross_node_cancel},
		{"cluster_queue_limit", cluster_queue_limit},
		{"cross_node_pause", cross_node_pause},
		{"cross_node_idempotency", cross_node_idempotency},
		{"cluster_rate_limit_is_global", cluster_rate_limit_is_global},
		{"schedule_fires_once_across_a_leader_kill", schedule_fires_once_across_a_leader_kill},
	};

	for (size_t i = 0; i < sizeof tests / sizeof tests[0]; i++)
		tcase_add_test(harness_tcase(s, tests[i].name, 180), tests[i].test);
	return s;
}

int main(void)
{
	if (harness_db_url() == NULL) {
		fprintf(stderr, "cluster_test: needs JOBQ_TEST_DB_URL (a PostgreSQL server; run make check-pg)\n");
		return 2;
	}
	return harness_run(cluster_suite());
}
