/* Many jobqd on one schema: each node's coordination session (issue 14).
 *
 * Every jobqd has a node id per boot and a row in `nodes`; a thread of its
 * own, on a session of its own, holds the node's advisory lock for the
 * node's whole life, beats its heartbeat every interval, LISTENs for the
 * other nodes' notices and runs for the leader row. The leader rescues
 * dead nodes' attempts; every node polls as a fallback once per interval,
 * so a lost notice costs at most that.
 *
 * A node is dead when its heartbeat is older than the timeout, or when its
 * lock is free (its process or its session is gone) and its heartbeat is
 * older than two intervals, or at once when it ran on this host and its
 * process is gone. The second rule finds a killed node in about two
 * seconds instead of the timeout; locks are not judged until the server
 * has been up for three intervals, so that after a restart of the server
 * every node has had time to take its lock back.
 *
 * Every write here is compare-and-set: the rescue matches the dead node
 * (dead_at set once), the job's state and its owner, so two leaders at
 * once (one whose TTL just ran out) do no harm, and an attempt that
 * finished meanwhile is never touched.
 *
 * Notices: one per commit group of the writer (pg.c pends it with the
 * COMMIT), on channel jobq_<schema>: "<node> r j:<id> b:<id> k:<id> ...",
 * r: jobs may be runnable; j: a job changed; b: a batch finished; k: stop
 * the run of this job (a cancel); "*" when the list did not fit. The
 * leader's rescue signs its notices "-", which every node, itself
 * included, applies. A node alone in the cluster sends none. */
#include "store/pg.h"

#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdint.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "core/clock.h"
#include "core/log.h"
#include "core/uuid.h"

/* The database server's clock in unix ms: the one clock all nodes share. */
#define SRV_NOW "(extract(epoch from clock_timestamp()) * 1000)::bigint"
#define LEADER_NAME "'maintenance'"
#define RECONNECT_MAX_MS 2000
#define WATCHED_MAX 512
#define DEAD_KEEP_MS (3600 * 1000)  /* dead nodes stay listed an hour */
#define ORPHAN_AFTER_MS 10000        /* a running job with no run here this long is lost */

static const char register_sql[] =
	"INSERT INTO nodes (id, lock_key, host, pid, pidns, started_at, heartbeat_at)"
	" VALUES ($1, $2, $3, $4, $5, " SRV_NOW ", " SRV_NOW ")";

static const char beat_sql[] =
	"UPDATE nodes SET heartbeat_at = " SRV_NOW " WHERE id = $1 AND dead_at IS NULL RETURNING id";

/* The other nodes, with whether each one's lock is free. A lock is
 * tested only once the server has been up for $2 ms (after a restart
 * every lock is free until its node reconnects), and given back at once
 * when the test took it. */
static const char others_sql[] =
	"SELECT id, " SRV_NOW " - heartbeat_at, coalesce(host, '') || ' ' || coalesce(pidns, ''), coalesce(pid, 0),"
	" CASE WHEN clock_timestamp() - pg_postmaster_start_time() > $2::bigint * interval '1 millisecond' THEN"
	"   CASE WHEN pg_try_advisory_lock(lock_key) THEN pg_advisory_unlock(lock_key) ELSE false END"
	" ELSE false END"
	" FROM nodes WHERE dead_at IS NULL AND id <> $1";

/* Takes or keeps the leader row: ours already, run out, or held by a
 * node found dead ($3). */
static const char lead_sql[] =
	"INSERT INTO leader (name, node_id, since, expires_at) VALUES (" LEADER_NAME ", $1, " SRV_NOW ", "
	SRV_NOW " + $2::bigint)"
	" ON CONFLICT (name) DO UPDATE SET node_id = excluded.node_id, expires_at = excluded.expires_at,"
	" since = CASE WHEN leader.node_id = excluded.node_id THEN leader.since ELSE excluded.since END"
	" WHERE leader.node_id = excluded.node_id OR leader.expires_at < " SRV_NOW
	" OR leader.node_id = ANY($3::text[])"
	" RETURNING node_id";

/* The rescue of one dead node, in one transaction: claimed once (dead_at
 * set by whoever gets there first), then its attempts without a lease,
 * matched by state and owner: recorded interrupted; canceled when a
 * cancel was asked for, failed with no attempts left, else queued again.
 * A NULL owner is a job left running before nodes were recorded. */
static const char mark_dead_sql[] =
	"UPDATE nodes SET dead_at = " SRV_NOW " WHERE id = $1 AND dead_at IS NULL RETURNING id";

#define OWNED(NODE, ID) "state = " S_RUNNING " AND lease_id IS NULL AND node_id IS NOT DISTINCT FROM " NODE \
	"::text AND (" ID "::text IS NULL OR id = " ID "::text)"
#define OWNED_BY_DEAD OWNED("$1", "$3")

static const char rescue_attempts_sql[] =
	"INSERT INTO job_attempts (job_seq, attempt, started_at, finished_at, outcome, error)"
	"  SELECT seq, attempts, started_at, $2::bigint, CASE WHEN cancel_at IS NULL THEN 'interrupted' ELSE"
	"    'canceled' END, CASE WHEN cancel_at IS NULL THEN 'jobqd stopped while the job ran' ELSE 'canceled' END"
	"  FROM jobs WHERE " OWNED_BY_DEAD
	" ON CONFLICT (job_seq, attempt) DO UPDATE SET started_at = excluded.started_at,"
	" finished_at = excluded.finished_at, outcome = excluded.outcome, error = excluded.error";

static const char rescue_end_sql[] =
	"UPDATE jobs SET state = CASE WHEN cancel_at IS NULL THEN " S_FAILED " ELSE " S_CANCELED " END,"
	"  finished_at = $2::bigint, expires_at = " EXPIRES("$2::bigint") "," CALLBACK_DUE("$2::bigint") ","
	"  error = CASE WHEN cancel_at IS NULL THEN"
	"    'interrupted: jobqd stopped while the job ran and no attempts are left' ELSE 'canceled' END,"
	"  node_id = NULL, cancel_at = NULL"
	"  WHERE " OWNED_BY_DEAD " AND (attempts >= max_attempts OR cancel_at IS NOT NULL)"
	" RETURNING id, batch_id";

static const char rescue_requeue_sql[] =
	"UPDATE jobs SET state = " S_QUEUED ", started_at = NULL, node_id = NULL"
	"  WHERE " OWNED("$1", "$2") " RETURNING id";

/* This node's running jobs its pool has not run for a while: their
 * outcome's commit was lost (an outage), or the run was lost. */
static const char orphans_sql[] =
	"SELECT id FROM jobs WHERE state = " S_RUNNING " AND lease_id IS NULL AND node_id = $1"
	" AND started_at < $2::bigint LIMIT 100";

static const char rescue_batches_sql[] =
	"UPDATE batches SET finished_at = $1::bigint,"
	"  callback_state = CASE WHEN callback_url IS NULL THEN NULL ELSE " S_PENDING " END,"
	"  callback_next_at = CASE WHEN callback_url IS NULL THEN NULL ELSE $1::bigint END"
	"  WHERE finished_at IS NULL AND id = ANY($2::text[]) AND NOT EXISTS (SELECT 1 FROM batch_counts"
	"    WHERE batch_id = batches.id AND state IN (" S_WAITING ") AND n > 0)"
	" RETURNING id";

/* Jobs left running by a process from before nodes were recorded. */
static const char legacy_sql[] =
	"SELECT 1 FROM jobs WHERE state = " S_RUNNING " AND lease_id IS NULL AND node_id IS NULL LIMIT 1";

static const char prune_sql[] = "DELETE FROM nodes WHERE dead_at < " SRV_NOW " - " JOBQ_STR(DEAD_KEEP_MS);

static const char changed_sql[] =
	"SELECT id, state, attempts, queue, type FROM jobs WHERE id = ANY($1::text[])";

static const char watched_sql[] =
	"SELECT id, state, attempts, queue, type FROM jobs WHERE id = ANY($1::text[])"
	" AND state IN (" S_FINISHED ")";

static const char cancels_sql[] =
	"SELECT id FROM jobs WHERE state = " S_RUNNING " AND node_id = $1 AND cancel_at IS NOT NULL";

static const char nodes_sql[] =
	"SELECT n.id, coalesce(n.host, ''), coalesce(n.pid, 0), n.started_at, n.heartbeat_at,"
	" n.dead_at IS NULL AND " SRV_NOW " - n.heartbeat_at <= $1::bigint,"
	" coalesce(l.node_id = n.id AND l.expires_at >= " SRV_NOW ", false),"
	" (SELECT count(*) FROM jobs j WHERE j.state = " S_RUNNING " AND j.node_id = n.id)"
	" FROM nodes n LEFT JOIN leader l ON l.name = " LEADER_NAME
	" WHERE n.dead_at IS NULL OR n.dead_at > " SRV_NOW " - " JOBQ_STR(DEAD_KEEP_MS)
	" ORDER BY n.started_at, n.id LIMIT " JOBQ_STR(STORE_NODES_MAX);

struct pg_cluster {
	struct pg_store *st;
	struct store_hooks hooks;
	pthread_t thread;
	bool started;
	atomic_bool stopping;
	PGconn *conn;                     /* the coordination session; NULL while down */
	int64_t backoff_ms;
	int64_t retry_at;                 /* monotonic ms */
	int64_t next_tick;                /* monotonic ms */
	char channel[80];                 /* jobq_<schema>, quoted where SQL needs it */
	int64_t lock_key;
	int64_t timeout_ms, interval_ms;
};

/* ---- the node id --------------------------------------------------------- */

void pg_node_id(struct pg_store *st, char out[UUID_LEN + 1])
{
	pthread_mutex_lock(&st->node_mu);
	memcpy(out, st->node_id, UUID_LEN + 1);
	pthread_mutex_unlock(&st->node_mu);
}

bool pg_is_leader(struct pg_store *st)
{
	return atomic_load(&st->leader);
}

bool pg_alone(struct pg_store *st)
{
	return atomic_load(&st->alone);
}

/* ---- sessions -------------------------------------------------------------- */

/* Runs sql on the coordination session; the result (the caller clears it)
 * or NULL after logging. A lost session is closed: the loop reconnects. */
static PGresult *run(struct pg_cluster *c, const char *sql, int n, const char *const *params)
{
	if (!c->conn)
		return NULL;
	PGresult *r = PQexecParams(c->conn, sql, n, NULL, params, NULL, NULL, 0);
	ExecStatusType s = PQresultStatus(r);
	if (s == PGRES_TUPLES_OK || s == PGRES_COMMAND_OK)
		return r;
	char why[512];
	pg_message(c->conn, r, why, sizeof why);
	PQclear(r);
	if (PQstatus(c->conn) != CONNECTION_OK) {
		log_warn("cluster: database session lost: %s", why);
		PQfinish(c->conn);
		c->conn = NULL;
		atomic_store(&c->st->leader, false);
	} else {
		log_error("cluster: %s (in: %.60s)", why, sql);
		if (PQtransactionStatus(c->conn) != PQTRANS_IDLE)
			PQclear(PQexec(c->conn, "ROLLBACK"));
	}
	return NULL;
}

static bool run_ok(struct pg_cluster *c, const char *sql, int n, const char *const *params)
{
	PGresult *r = run(c, sql, n, params);
	PQclear(r);
	return r != NULL;
}

/* Where this process's pid means something: the host name and the PID
 * namespace ("" when /proc does not say). Containers that share a network
 * namespace share a host name, not a PID namespace. */
static void pid_space(char *out, size_t n)
{
	char host[256] = "", ns[64] = "";
	gethostname(host, sizeof host - 1);
	ssize_t len = readlink("/proc/self/ns/pid", ns, sizeof ns - 1);
	ns[len > 0 ? len : 0] = '\0';
	snprintf(out, n, "%s %s", host, ns);
}

/* A new node id and its lock, taken on conn, and its row. */
static int node_register(struct pg_cluster *c)
{
	struct pg_store *st = c->st;
	char id[UUID_LEN + 1], key[32], pid[24], host[256] = "", space[400], pidns[64] = "";
	uuid_v7(id);
	c->lock_key = pg_lock_key("node", id);
	snprintf(key, sizeof key, "%lld", (long long)c->lock_key);
	snprintf(pid, sizeof pid, "%ld", (long)getpid());
	gethostname(host, sizeof host - 1);
	pid_space(space, sizeof space);
	const char *sp = strchr(space, ' ');
	snprintf(pidns, sizeof pidns, "%s", sp ? sp + 1 : "");
	const char *kp[] = {key};
	PGresult *r = run(c, "SELECT pg_try_advisory_lock($1::bigint)", 1, kp);
	bool locked = r && PQntuples(r) == 1 && strcmp(PQgetvalue(r, 0, 0), "t") == 0;
	PQclear(r);
	if (!locked)
		return -1;
	const char *rp[] = {id, key, host, pid, pidns[0] ? pidns : NULL};
	if (!run_ok(c, register_sql, 5, rp))
		return -1;
	pthread_mutex_lock(&st->node_mu);
	memcpy(st->node_id, id, sizeof st->node_id);
	pthread_mutex_unlock(&st->node_mu);
	log_info("cluster: this is node %s", id);
	return 0;
}

/* (Re)connects: the session, LISTEN, and the node's lock again (a lock
 * goes with its session). 0 when up. */
static int connect_session(struct pg_cluster *c, char *why, size_t whylen)
{
	if (!(c->conn = pg_session_open(c->st, NULL, why, whylen)))
		return -1;
	char listen[128], key[32];
	snprintf(listen, sizeof listen, "LISTEN \"%s\"", c->channel);
	snprintf(key, sizeof key, "%lld", (long long)c->lock_key);
	const char *kp[] = {key};
	if (!run_ok(c, listen, 0, NULL))
		goto fail;
	if (c->lock_key) {
		PGresult *r = run(c, "SELECT pg_try_advisory_lock($1::bigint)", 1, kp);
		bool locked = r && PQntuples(r) == 1 && strcmp(PQgetvalue(r, 0, 0), "t") == 0;
		PQclear(r);
		if (!locked)
			goto fail;
	}
	return 0;
fail:
	snprintf(why, whylen, "cannot listen or take the node's lock");
	PQfinish(c->conn);
	c->conn = NULL;
	return -1;
}

/* ---- applying notices --------------------------------------------------- */

/* Builds a text[] literal of ids ("{a,b}"): ids are UUIDs, nothing to
 * quote. */
struct idlist {
	char text[(UUID_LEN + 1) * WATCHED_MAX + 8];
	size_t len;
	int n;
};

static void idlist_add(struct idlist *l, const char *id, size_t len)
{
	if (len != UUID_LEN || l->len + UUID_LEN + 3 > sizeof l->text)
		return;
	for (size_t i = 0; i < len; i++)
		if (!((id[i] >= '0' && id[i] <= '9') || (id[i] >= 'a' && id[i] <= 'f') || id[i] == '-'))
			return;
	l->text[l->len++] = l->n ? ',' : '{';
	memcpy(l->text + l->len, id, len);
	l->len += len;
	l->n++;
	l->text[l->len] = '\0';
}

static const char *idlist_end(struct idlist *l)
{
	if (l->n == 0)
		snprintf(l->text, sizeof l->text, "{}");
	else
		snprintf(l->text + l->len, sizeof l->text - l->len, "}");
	return l->text;
}

/* Reads the jobs of ids and hands each to hooks.remote (as it is now). */
static void deliver_jobs(struct pg_cluster *c, const char *sql, struct idlist *ids)
{
	if (ids->n == 0 || !c->hooks.remote)
		return;
	const char *p[] = {idlist_end(ids)};
	PGresult *r = run(c, sql, 1, p);
	for (int i = 0; r && i < PQntuples(r); i++) {
		char id[UUID_LEN + 1], queue[JOB_NAME_MAX + 1], type[JOB_NAME_MAX + 1];
		pg_copy(r, i, 0, id, sizeof id);
		pg_copy(r, i, 3, queue, sizeof queue);
		pg_copy(r, i, 4, type, sizeof type);
		int64_t state = pg_i64(r, i, 1);
		struct job_change ch = {.id = id, .queue = queue, .type = type,
		                        .state = state >= 0 && state < JOB_STATE_COUNT ? (enum job_state)state : JOB_FAILED,
		                        .attempts = (int)pg_i64(r, i, 2)};
		c->hooks.remote(c->hooks.arg, &ch);
	}
	PQclear(r);
}

/* The fallback: jobs local requests wait on that finished, and cancels
 * asked of this node's runs. */
static void poll_fallback(struct pg_cluster *c)
{
	if (c->hooks.watched && c->hooks.remote) {
		char (*ids)[UUID_LEN + 1] = malloc(WATCHED_MAX * sizeof *ids);
		struct idlist *l = calloc(1, sizeof *l);
		if (ids && l) {
			int n = c->hooks.watched(c->hooks.arg, ids, WATCHED_MAX);
			for (int i = 0; i < n; i++)
				idlist_add(l, ids[i], strlen(ids[i]));
			deliver_jobs(c, watched_sql, l);
		}
		free(ids);
		free(l);
	}
	if (c->hooks.stop) {
		char me[UUID_LEN + 1];
		pg_node_id(c->st, me);
		const char *p[] = {me};
		PGresult *r = run(c, cancels_sql, 1, p);
		for (int i = 0; r && i < PQntuples(r); i++)
			c->hooks.stop(c->hooks.arg, PQgetvalue(r, i, 0));
		PQclear(r);
	}
	if (c->hooks.wake)
		c->hooks.wake(c->hooks.arg);
}

/* Applies one notice; own notices (signed with this node's id) were
 * applied by the writer already. */
static void apply_notice(struct pg_cluster *c, const char *payload)
{
	char me[UUID_LEN + 1];
	pg_node_id(c->st, me);
	const char *p = payload, *sp = strchr(p, ' ');
	size_t slen = sp ? (size_t)(sp - p) : strlen(p);
	if (slen == UUID_LEN && strncmp(p, me, UUID_LEN) == 0)
		return;
	struct idlist *jobs = calloc(1, sizeof *jobs);
	if (!jobs)
		return;
	bool runnable = false, all = false;
	for (p = sp; p && *p;) {
		while (*p == ' ')
			p++;
		const char *end = strchr(p, ' ');
		size_t len = end ? (size_t)(end - p) : strlen(p);
		char item[UUID_LEN + 3] = "";
		if (len > 2 && len - 2 == UUID_LEN)
			memcpy(item, p + 2, UUID_LEN);
		if (len == 1 && *p == 'r')
			runnable = true;
		else if (len == 1 && *p == '*')
			all = true;
		else if (item[0] && p[0] == 'j' && p[1] == ':')
			idlist_add(jobs, item, UUID_LEN);
		else if (item[0] && p[0] == 'b' && p[1] == ':' && c->hooks.batch_done)
			c->hooks.batch_done(c->hooks.arg, item);
		else if (item[0] && p[0] == 'k' && p[1] == ':' && c->hooks.stop)
			c->hooks.stop(c->hooks.arg, item);
		p = end;
	}
	/* Idle workers first: reading the changed jobs back costs a round
	 * trip, and a claim need not wait for it. */
	if (runnable && c->hooks.submitted)
		c->hooks.submitted(c->hooks.arg);
	deliver_jobs(c, changed_sql, jobs);
	free(jobs);
	if (all)
		poll_fallback(c);
}

static void drain_notices(struct pg_cluster *c)
{
	if (!c->conn || PQconsumeInput(c->conn) != 1)
		return;
	PGnotify *n;
	while (c->conn && (n = PQnotifies(c->conn)) != NULL) {
		apply_notice(c, n->extra);
		PQfreemem(n);
	}
}

/* ---- the leader's work ---------------------------------------------------- */

/* Sends a notice signed "-" (every node applies it) from the coordination
 * session, inside its transaction. */
static bool notify(struct pg_cluster *c, const char *payload)
{
	const char *p[] = {c->channel, payload};
	return run_ok(c, "SELECT pg_notify($1, $2)", 2, p);
}

/* Appends "tag:id" for each row's first column to the notice. */
static void notice_ids(char *notice, size_t cap, const PGresult *r, char tag)
{
	size_t len = strlen(notice);
	for (int i = 0; r && i < PQntuples(r); i++) {
		if (pg_null(r, i, 0))
			continue;
		int w = snprintf(notice + len, cap - len, " %c:%s", tag, PQgetvalue(r, i, 0));
		if (w < 0 || (size_t)w >= cap - len - 2) {
			notice[len] = '\0';
			snprintf(notice + len, cap - len, " *");
			return;
		}
		len += (size_t)w;
	}
}

/* Rescues dead's attempts (dead NULL: those of no node), or only job
 * only_id's, in one transaction. */
static void rescue(struct pg_cluster *c, const char *dead, const char *only_id)
{
	char now[24], notice[PG_NOTICE_MAX] = "- r";
	snprintf(now, sizeof now, "%lld", (long long)clock_now_ms());
	const char *one[] = {dead, only_id}, *two[] = {dead, now, only_id};
	/* The write lock first, as every writing transaction (pg_begin). */
	if (!run_ok(c, "BEGIN", 0, NULL) || !run_ok(c, c->st->write_lock_sql, 0, NULL))
		return;
	if (dead && !only_id) {
		PGresult *r = run(c, mark_dead_sql, 1, one);
		bool mine = r && PQntuples(r) == 1;
		PQclear(r);
		if (!mine) {
			run_ok(c, "ROLLBACK", 0, NULL); /* another leader did it */
			return;
		}
	}
	PGresult *ended = NULL, *queued = NULL, *batches = NULL;
	if (!run_ok(c, rescue_attempts_sql, 3, two) || !(ended = run(c, rescue_end_sql, 3, two)) ||
	    !(queued = run(c, rescue_requeue_sql, 2, one)))
		goto fail;
	struct idlist *bl = calloc(1, sizeof *bl);
	if (!bl)
		goto fail;
	for (int i = 0; i < PQntuples(ended); i++)
		if (!pg_null(ended, i, 1))
			idlist_add(bl, PQgetvalue(ended, i, 1), strlen(PQgetvalue(ended, i, 1)));
	const char *bp[] = {now, idlist_end(bl)};
	batches = bl->n ? run(c, rescue_batches_sql, 2, bp) : NULL;
	bool bfail = bl->n && !batches;
	free(bl);
	if (bfail)
		goto fail;
	notice_ids(notice, sizeof notice, ended, 'j');
	notice_ids(notice, sizeof notice, queued, 'j');
	notice_ids(notice, sizeof notice, batches, 'b');
	int n = PQntuples(ended) + PQntuples(queued);
	if (!notify(c, notice) || !run_ok(c, "COMMIT", 0, NULL))
		goto fail;
	if (only_id && n > 0)
		log_warn("recovered job %s, left running here without a run (its outcome was lost)", only_id);
	else if (dead && n > 0)
		log_warn("recovered %d job(s) left running by node %s, which is gone", n, dead);
	else if (dead)
		log_info("cluster: node %s is gone; it ran no job", dead);
	else if (n > 0)
		log_warn("recovered %d job(s) left running by a previous process", n);
	PQclear(ended);
	PQclear(queued);
	PQclear(batches);
	apply_notice(c, notice);
	return;
fail:
	PQclear(ended);
	PQclear(queued);
	PQclear(batches);
	if (c->conn)
		run_ok(c, "ROLLBACK", 0, NULL);
}

/* Jobs this node owns that its pool does not run: an outcome whose commit
 * met an outage, or a run lost to a fault. Only those started a while
 * ago: a claim's commit comes a moment before its run is registered. */
static void rescue_orphans(struct pg_cluster *c, const char *me)
{
	if (!c->hooks.runs_here)
		return;
	char cutoff[24];
	snprintf(cutoff, sizeof cutoff, "%lld", (long long)(clock_now_ms() - ORPHAN_AFTER_MS));
	const char *p[] = {me, cutoff};
	PGresult *r = run(c, orphans_sql, 2, p);
	for (int i = 0; r && i < PQntuples(r); i++)
		if (!c->hooks.runs_here(c->hooks.arg, PQgetvalue(r, i, 0)))
			rescue(c, me, PQgetvalue(r, i, 0));
	PQclear(r);
}

/* ---- the tick ------------------------------------------------------------- */

/* Whether a process pid runs in this PID namespace (a node of this host
 * and namespace whose lock is free and whose process is gone is dead now,
 * not in two intervals: a jobqd restarted after a crash rescues at
 * once). */
static bool pid_alive(int64_t pid)
{
	return pid > 0 && pid <= INT32_MAX && (kill((pid_t)pid, 0) == 0 || errno != ESRCH);
}

static void tick(struct pg_cluster *c)
{
	struct pg_store *st = c->st;
	char me[UUID_LEN + 1], ttl[24];
	pg_node_id(st, me);
	const char *mp[] = {me};
	PGresult *r = run(c, beat_sql, 1, mp);
	if (!r)
		return;
	bool alive = PQntuples(r) == 1;
	PQclear(r);
	if (!alive) {
		/* Declared dead while it could not beat (stopped, cut off): its
		 * attempts were rescued and its late outcomes are refused. It
		 * carries on as a new node. */
		char key[32];
		snprintf(key, sizeof key, "%lld", (long long)c->lock_key);
		const char *kp[] = {key};
		run_ok(c, "SELECT pg_advisory_unlock($1::bigint)", 1, kp);
		log_warn("cluster: node %s was declared dead while it could not reach the database", me);
		if (node_register(c) != 0)
			return;
		pg_node_id(st, me);
	}
	/* Who else is alive, and who is dead. */
	char up[24], space[400];
	snprintf(up, sizeof up, "%lld", (long long)(3 * c->interval_ms));
	pid_space(space, sizeof space);
	bool space_known = space[strlen(space) - 1] != ' ';
	const char *op[] = {me, up};
	if (!(r = run(c, others_sql, 2, op)))
		return;
	struct idlist *dead = calloc(1, sizeof *dead);
	int alive_others = 0;
	for (int i = 0; dead && i < PQntuples(r); i++) {
		int64_t age = pg_i64(r, i, 1);
		bool free_lock = strcmp(PQgetvalue(r, i, 4), "t") == 0;
		if (free_lock && space_known && strcmp(PQgetvalue(r, i, 2), space) == 0 && !pid_alive(pg_i64(r, i, 3)))
			age = INT64_MAX; /* its process is gone from this very PID namespace */
		bool stale = age > c->timeout_ms;
		bool gone = free_lock && age > 2 * c->interval_ms;
		if (stale || gone)
			idlist_add(dead, PQgetvalue(r, i, 0), strlen(PQgetvalue(r, i, 0)));
		else
			alive_others++;
	}
	PQclear(r);
	atomic_store(&st->alone, alive_others == 0);
	if (!dead)
		return;
	/* The leader row. */
	snprintf(ttl, sizeof ttl, "%lld", (long long)(3 * c->interval_ms));
	const char *lp[] = {me, ttl, idlist_end(dead)};
	r = run(c, lead_sql, 3, lp);
	bool lead = r && PQntuples(r) == 1;
	PQclear(r);
	bool was = atomic_exchange(&st->leader, lead);
	if (lead && !was)
		log_info("cluster: node %s is the leader", me);
	else if (!lead && was)
		log_info("cluster: node %s is no longer the leader", me);
	if (lead) {
		for (const char *p = dead->n ? dead->text + 1 : NULL; p && *p && *p != '}';) {
			char id[UUID_LEN + 1];
			memcpy(id, p, UUID_LEN);
			id[UUID_LEN] = '\0';
			rescue(c, id, NULL);
			p += UUID_LEN + 1;
		}
		if ((r = run(c, legacy_sql, 0, NULL)) && PQntuples(r) > 0)
			rescue(c, NULL, NULL);
		PQclear(r);
		run_ok(c, prune_sql, 0, NULL);
	}
	free(dead);
	rescue_orphans(c, me);
	poll_fallback(c);
}

static void nap_ms(long ms)
{
	struct timespec ts = {.tv_sec = ms / 1000, .tv_nsec = (ms % 1000) * 1000000L};
	while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
		;
}

static void *cluster_main(void *arg)
{
	struct pg_cluster *c = arg;
	while (!atomic_load(&c->stopping)) {
		int64_t now = clock_mono_ms();
		if (!c->conn) {
			if (now < c->retry_at) {
				nap_ms(50);
				continue;
			}
			char why[256];
			if (connect_session(c, why, sizeof why) != 0) {
				c->backoff_ms = c->backoff_ms ? c->backoff_ms * 2 : 100;
				if (c->backoff_ms > RECONNECT_MAX_MS)
					c->backoff_ms = RECONNECT_MAX_MS;
				c->retry_at = now + c->backoff_ms;
				continue;
			}
			c->backoff_ms = 0;
			c->next_tick = now;
		}
		if (now >= c->next_tick) {
			c->next_tick = now + c->interval_ms;
			tick(c);
			continue;
		}
		struct pollfd pfd = {.fd = c->conn ? PQsocket(c->conn) : -1, .events = POLLIN};
		int64_t wait = c->next_tick - now;
		if (wait > 100)
			wait = 100; /* sees stopping within 0.1 s */
		if (pfd.fd >= 0 && poll(&pfd, 1, (int)wait) > 0)
			drain_notices(c);
		else if (pfd.fd < 0)
			nap_ms(50);
	}
	return NULL;
}

/* ---- start and stop --------------------------------------------------- */

int pg_cluster_start(struct pg_store *st, const struct store_options *opts, char *why, size_t whylen)
{
	struct pg_cluster *c = calloc(1, sizeof *c);
	if (!c) {
		snprintf(why, whylen, "out of memory");
		return -1;
	}
	c->st = st;
	if (opts->hooks)
		c->hooks = *opts->hooks;
	double timeout_s = opts->node_timeout_s > 0 ? opts->node_timeout_s : 30;
	c->timeout_ms = (int64_t)(timeout_s * 1000);
	c->interval_ms = c->timeout_ms / 3 < 1000 ? c->timeout_ms / 3 : 1000;
	snprintf(c->channel, sizeof c->channel, "jobq_%s", st->schema);
	snprintf(st->channel, sizeof st->channel, "%s", c->channel);
	st->cluster = c;
	if (connect_session(c, why, whylen) != 0 || node_register(c) != 0) {
		if (!why[0] || c->conn)
			snprintf(why, whylen, "cannot register this node");
		return -1;
	}
	atomic_store(&st->alone, true);
	c->next_tick = clock_mono_ms();
	tick(c); /* the first heartbeat, leadership, and a rescue if due */
	if (pthread_create(&c->thread, NULL, cluster_main, c) != 0) {
		snprintf(why, whylen, "cannot start the cluster thread");
		return -1;
	}
	c->started = true;
	return 0;
}

/* A node that stops cleanly leaves at once: its heartbeat is made old and
 * its lock given back, so the next leader tick (or its own successor's)
 * rescues whatever it still ran. */
void pg_cluster_stop(struct pg_store *st)
{
	struct pg_cluster *c = st->cluster;
	if (!c)
		return;
	atomic_store(&c->stopping, true);
	if (c->started)
		pthread_join(c->thread, NULL);
	if (c->conn && PQstatus(c->conn) == CONNECTION_OK) {
		char me[UUID_LEN + 1];
		pg_node_id(st, me);
		const char *mp[] = {me};
		run_ok(c, "UPDATE nodes SET heartbeat_at = 0 WHERE id = $1 AND dead_at IS NULL", 1, mp);
		run_ok(c, "DELETE FROM leader WHERE name = " LEADER_NAME " AND node_id = $1", 1, mp);
		run_ok(c, "SELECT pg_advisory_unlock_all()", 0, NULL);
	}
	PQfinish(c->conn);
	free(c);
	st->cluster = NULL;
	atomic_store(&st->leader, false);
}

/* ---- reads --------------------------------------------------------------- */

enum store_rc pg_cluster_info(void *be, struct store_cluster *out)
{
	struct pg_store *st = be;
	pg_node_id(st, out->node);
	out->backend = "pg";
	out->nnodes = 0;
	out->leader[0] = '\0';
	char timeout[24];
	snprintf(timeout, sizeof timeout, "%lld", (long long)(st->cluster ? st->cluster->timeout_ms : 30000));
	const char *p[] = {timeout};
	PGresult *r = pg_reader_query(st, nodes_sql, 1, p);
	if (!r)
		return STORE_UNAVAILABLE;
	for (int i = 0; i < PQntuples(r) && out->nnodes < STORE_NODES_MAX; i++) {
		struct store_node *n = &out->nodes[out->nnodes++];
		pg_copy(r, i, 0, n->id, sizeof n->id);
		pg_copy(r, i, 1, n->host, sizeof n->host);
		n->pid = pg_i64(r, i, 2);
		n->started_at = pg_i64(r, i, 3);
		n->heartbeat_at = pg_i64(r, i, 4);
		n->alive = strcmp(PQgetvalue(r, i, 5), "t") == 0;
		n->leader = strcmp(PQgetvalue(r, i, 6), "t") == 0;
		n->running = pg_i64(r, i, 7);
		if (n->leader)
			memcpy(out->leader, n->id, sizeof out->leader);
	}
	PQclear(r);
	return STORE_OK;
}

/* The notice for a commit group (pg.c sends it with the COMMIT). */
void pg_notice_build(struct pg_store *st, const struct store_notice *nt, char *out, size_t cap)
{
	char me[UUID_LEN + 1];
	pg_node_id(st, me);
	size_t len = (size_t)snprintf(out, cap, "%s%s", me, nt->runnable ? " r" : "");
	for (int i = 0; i < nt->n && len < cap; i++) {
		int w = snprintf(out + len, cap - len, " %c:%s", nt->items[i].tag, nt->items[i].id);
		if (w < 0 || (size_t)w >= cap - len - 2) {
			out[len] = '\0';
			snprintf(out + len, cap - len, " *");
			return;
		}
		len += (size_t)w;
	}
	if (nt->overflow && len + 2 < cap)
		snprintf(out + len, cap - len, " *");
}
