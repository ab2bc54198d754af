/* The PostgreSQL backend: sessions, the group transaction, reads and open
 * (the write ops are in store/pg_write.c; the schema in store/pg_schema.c).
 *
 * One writer session, driven by store/writer.c on its thread; a
 * coordination session of the cluster's (store/pg_cluster.c): many jobqd
 * share one schema. Readers borrow sessions from a pool of at most 16 and run one statement at a
 * time outside any transaction, so no session of jobqd's holds a snapshot
 * open for long (statement and idle-in-transaction timeouts enforce it).
 *
 * A lost session is closed and opened again at its next use, after a
 * backoff of 100 ms doubling to 5 s while it keeps failing: the ops of the
 * group it took fail with STORE_UNAVAILABLE (503) and nothing else is lost.
 *
 * Each op runs inside SAVEPOINT op within the group transaction. The
 * RELEASE of one op's savepoint travels with the SAVEPOINT of the next:
 * one round trip per op for its scope. */
#include "store/pg.h"

#include <limits.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/clock.h"
#include "core/deps.h"
#include "core/log.h"

#define DEFAULT_SCHEMA "jobq"
#define BACKOFF_FIRST_MS 100
#define BACKOFF_MAX_MS 5000
#define CONNECT_TIMEOUT_S "10"
#define LIST_VARIANTS 64 /* state, queue, type, cursor, batch, ids: one bit each */
#define READER_STMTS 32  /* statements prepared per reader session */

/* Every session: bounded statements, lock waits and idle transactions,
 * and the schema first (and only) on the search path. */
#define SESSION_SETTINGS "SET statement_timeout = '30s'; SET lock_timeout = '10s';" \
	" SET idle_in_transaction_session_timeout = '60s'"

/* The op's savepoint and its deferred release (see the top). */
enum { SP_NONE, SP_OPEN, SP_ENDED };

struct pg_reader {
	PGconn *conn;
	const struct pg_store *st;
	const char *stmt_sql[READER_STMTS];
	int nstmts;
	struct pg_reader *next;           /* idle list */
	struct pg_reader *all_next;       /* every reader, for close */
};

/* ---- conninfo ---------------------------------------------------------- */

/* A URI with its password, in the user part or as a password= parameter,
 * replaced by ***: what every message shows. */
void store_mask_uri(const char *uri, char *out, size_t outlen)
{
	if (outlen == 0)
		return;
	out[0] = '\0';
	size_t o = 0;
#define PUT(c) do { if (o + 1 < outlen) out[o++] = (c); } while (0)
#define PUTS(s) do { for (const char *p_ = (s); *p_; p_++) PUT(*p_); } while (0)
	const char *scheme = strstr(uri, "://");
	const char *rest = scheme ? scheme + 3 : uri;
	for (const char *c = uri; c < rest; c++)
		PUT(*c);
	/* The authority ends at the first '/', '?' or '#'; its userinfo at
	 * its last '@'. */
	size_t alen = strcspn(rest, "/?#");
	const char *at = NULL;
	for (const char *c = rest; c < rest + alen; c++)
		if (*c == '@')
			at = c;
	const char *c = rest;
	if (scheme && at) {
		const char *colon = memchr(rest, ':', (size_t)(at - rest));
		for (; c < (colon ? colon : at); c++)
			PUT(*c);
		if (colon)
			PUTS(":***");
		c = at;
	}
	/* The query: each password=VALUE becomes password=***. */
	bool in_query = false;
	while (*c) {
		if (*c == '?')
			in_query = true;
		if (in_query && (*c == '?' || *c == '&') && strncmp(c + 1, "password=", 9) == 0) {
			PUT(*c);
			PUTS("password=***");
			c += 10;
			while (*c && *c != '&' && *c != '#')
				c++;
			continue;
		}
		PUT(*c);
		c++;
	}
	out[o] = '\0';
#undef PUT
#undef PUTS
}

/* [a-z_][a-z0-9_]{0,62} */
static bool schema_valid(const char *s)
{
	size_t n = strlen(s);
	if (n < 1 || n > 63 || !((s[0] >= 'a' && s[0] <= 'z') || s[0] == '_'))
		return false;
	for (size_t i = 1; i < n; i++)
		if (!((s[i] >= 'a' && s[i] <= 'z') || (s[i] >= '0' && s[i] <= '9') || s[i] == '_'))
			return false;
	return true;
}

/* ---- errors ------------------------------------------------------------ */

static const char *pg_errstr(int rc)
{
	switch (rc) {
	case 0: return "ok";
	case PG_ERR_NOMEM: return "out of memory";
	case PG_ERR_SQL: return "a statement failed";
	case PG_ERR_DOWN: return "the database connection is down";
	default: return "unknown error";
	}
}

/* The server's (or libpq's) message on one line. */
void pg_message(PGconn *conn, const PGresult *r, char *why, size_t whylen)
{
	const char *msg = r ? PQresultErrorField(r, PG_DIAG_MESSAGE_PRIMARY) : NULL;
	snprintf(why, whylen, "%s", msg ? msg : conn ? PQerrorMessage(conn) : "out of memory");
	for (char *c = why; *c; c++)
		if (*c == '\n' || *c == '\r' || *c == '\t')
			*c = ' ';
	size_t len = strlen(why);
	while (len > 0 && why[len - 1] == ' ')
		why[--len] = '\0';
}

/* ---- sessions ---------------------------------------------------------- */

static PGconn *session_open(const struct pg_store *st, const char *extra, char *why, size_t whylen);

PGconn *pg_session_open(const struct pg_store *st, const char *extra, char *why, size_t whylen)
{
	return session_open(st, extra, why, whylen);
}

/* Opens a session with the settings every session has (extra: more SET
 * commands, or NULL); on failure NULL with the reason in why. */
static PGconn *session_open(const struct pg_store *st, const char *extra, char *why, size_t whylen)
{
	/* Before dbname: what the URI says wins. Keepalives find a server
	 * that vanished mid-statement within a minute, not the system's two
	 * hours. */
	const char *keys[] = {"connect_timeout", "fallback_application_name", "keepalives_idle",
	                      "keepalives_interval", "keepalives_count", "dbname", NULL};
	const char *vals[] = {CONNECT_TIMEOUT_S, "jobqd", "30", "10", "3", st->conninfo, NULL};
	PGconn *conn = PQconnectdbParams(keys, vals, 1);
	if (!conn || PQstatus(conn) != CONNECTION_OK) {
		pg_message(conn, NULL, why, whylen);
		PQfinish(conn);
		return NULL;
	}
	if (PQserverVersion(conn) < 150000) {
		snprintf(why, whylen, "the server is PostgreSQL %d.%d; jobqd needs 15 or later",
		         PQserverVersion(conn) / 10000, PQserverVersion(conn) % 10000);
		PQfinish(conn);
		return NULL;
	}
	char sql[512];
	snprintf(sql, sizeof sql, SESSION_SETTINGS "; SET search_path TO \"%s\"%s%s", st->schema,
	         extra ? "; " : "", extra ? extra : "");
	PGresult *r = PQexec(conn, sql);
	if (PQresultStatus(r) != PGRES_COMMAND_OK) {
		pg_message(conn, r, why, whylen);
		PQclear(r);
		PQfinish(conn);
		return NULL;
	}
	PQclear(r);
	return conn;
}

/* Sends ahead[0..nahead-1] (commands without parameters), then sql with
 * its text params, then behind[0..nbehind-1] (commands without
 * parameters, e.g. COMMIT) in one pipeline, and reads all their results:
 * one round trip. Returns sql's result, or NULL when any part failed (the
 * first failure is in *fail, the caller clears it; *broken when the
 * pipeline could not be closed). A command behind that answers ROLLBACK
 * (a COMMIT of an aborted transaction) is a failure too. */
static PGresult *pipeline_run(PGconn *conn, const char *const *ahead, int nahead, const char *name, const char *sql,
                              int n, const char *const *params, const char *const *behind, int nbehind,
                              PGresult **fail, bool *broken)
{
	PGresult *last = NULL;
	bool rolled_back = false;
	int nq = nahead + 1 + nbehind;
	*fail = NULL;
	if (PQenterPipelineMode(conn) != 1)
		return NULL;
	bool sent = true;
	for (int i = 0; sent && i < nahead; i++)
		sent = PQsendQueryParams(conn, ahead[i], 0, NULL, NULL, NULL, NULL, 0) == 1;
	if (sent)
		sent = name ? PQsendQueryPrepared(conn, name, n, params, NULL, NULL, 0) == 1
		            : PQsendQueryParams(conn, sql, n, NULL, params, NULL, NULL, 0) == 1;
	for (int i = 0; sent && i < nbehind; i++)
		sent = PQsendQueryParams(conn, behind[i], 0, NULL, NULL, NULL, NULL, 0) == 1;
	if (sent)
		sent = PQpipelineSync(conn) == 1;
	/* Each query's results end with a NULL; the sync's result ends the
	 * pipeline. A dead connection ends the loop with NULL. */
	for (int q = 0; sent && q <= nq; q++) {
		PGresult *r = PQgetResult(conn);
		if (!r)
			break;
		ExecStatusType s = PQresultStatus(r);
		if (s == PGRES_PIPELINE_SYNC) {
			PQclear(r);
			break;
		}
		if (q > nahead && s == PGRES_COMMAND_OK && strcmp(PQcmdStatus(r), "ROLLBACK") == 0)
			rolled_back = true;
		if (s == PGRES_FATAL_ERROR && !*fail)
			*fail = r;
		else if (q == nahead && (s == PGRES_TUPLES_OK || s == PGRES_COMMAND_OK))
			last = r;
		else
			PQclear(r);
		while (q < nq && (r = PQgetResult(conn)) != NULL)
			PQclear(r);
	}
	if (PQexitPipelineMode(conn) != 1) {
		/* Results left unread: the session cannot be trusted again. */
		*broken = true;
		PQclear(last);
		return NULL;
	}
	if (rolled_back && !*fail) {
		log_error("postgres: the transaction was rolled back at COMMIT");
		sent = false;
	}
	if (*fail || !sent) {
		PQclear(last);
		return NULL;
	}
	return last;
}

/* Runs sql with text params on conn, prepared once per session when cache
 * is not NULL (by the address of sql, up to cap statements), with the
 * commands ahead before it and behind after it (either count > 0: in one
 * pipeline); returns the result or NULL after logging the failure. *lost
 * tells whether the session is gone. */
static PGresult *session_run(PGconn *conn, const char **cache, int *ncache, int cap, const char *const *ahead,
                             int nahead, const char *sql, int n, const char *const *params,
                             const char *const *behind, int nbehind, bool *lost)
{
	*lost = false;
	PGresult *r = NULL, *fail = NULL;
	bool broken = false;
	int slot = -1;
	char name[16] = "";
	for (int i = 0; cache && i < *ncache; i++)
		if (cache[i] == sql)
			slot = i;
	if (slot < 0 && cache && *ncache < cap) {
		snprintf(name, sizeof name, "jq%d", *ncache);
		r = PQprepare(conn, name, sql, 0, NULL);
		if (PQresultStatus(r) != PGRES_COMMAND_OK) {
			fail = r;
			goto failed;
		}
		slot = (*ncache)++;
		cache[slot] = sql;
		PQclear(r);
	}
	if (slot >= 0)
		snprintf(name, sizeof name, "jq%d", slot);
	if (nahead > 0 || nbehind > 0)
		r = pipeline_run(conn, ahead, nahead, slot >= 0 ? name : NULL, sql, n, params, behind, nbehind, &fail,
		                 &broken);
	else if (slot >= 0)
		r = PQexecPrepared(conn, name, n, params, NULL, NULL, 0);
	else
		r = PQexecParams(conn, sql, n, NULL, params, NULL, NULL, 0);
	ExecStatusType s = PQresultStatus(r);
	if (r && (s == PGRES_TUPLES_OK || s == PGRES_COMMAND_OK))
		return r;
	if (!fail)
		fail = r;
	else
		PQclear(r);
failed:;
	char why[512];
	pg_message(conn, fail, why, sizeof why);
	PQclear(fail);
	*lost = broken || PQstatus(conn) != CONNECTION_OK;
	if (*lost)
		log_error("database connection lost: %s", why);
	else
		log_error("postgres: %s (in: %.80s)", why, sql);
	return NULL;
}

/* ---- the writer session ------------------------------------------------ */

void pg_writer_lost(struct pg_store *st)
{
	PQfinish(st->wconn);
	st->wconn = NULL;
	st->in_tx = false;
	st->nstmts = 0;
	st->npending = 0;
	st->savepoint = SP_NONE;
	/* The first reconnect comes at once; the backoff grows with failures. */
	st->retry_at = 0;
	st->backoff_ms = 0;
}

/* The writer's session: the common settings, and synchronous_commit off
 * for --sync normal (a commit survives a crash of jobqd, not of the
 * server's machine). enable_seqscan off: every writer statement has an
 * index path, and a cached plan made while a table was small (an early
 * autoanalyze) would otherwise scan the whole table for each claim and
 * finish once it is large (200 claims over 50,000 jobs: 17 s, against
 * 0.24 s with it; see docs/decisions.md). */
static PGconn *writer_open(const struct pg_store *st, char *why, size_t whylen)
{
	return session_open(st,
	                    st->durability == STORE_DURABLE_CRASH ? "SET enable_seqscan = off; SET synchronous_commit = off"
	                                                          : "SET enable_seqscan = off",
	                    why, whylen);
}

int pg_writer_up(struct pg_store *st)
{
	if (st->wconn)
		return 0;
	int64_t now = clock_mono_ms();
	if (now < st->retry_at)
		return PG_ERR_DOWN;
	char why[512] = "";
	PGconn *conn = writer_open(st, why, sizeof why);
	if (!conn) {
		st->backoff_ms = st->backoff_ms ? st->backoff_ms * 2 : BACKOFF_FIRST_MS;
		if (st->backoff_ms > BACKOFF_MAX_MS)
			st->backoff_ms = BACKOFF_MAX_MS;
		st->retry_at = now + st->backoff_ms;
		log_warn("database %s: cannot reconnect (%s); next try in %lld ms", st->shown, why,
		         (long long)st->backoff_ms);
		return PG_ERR_DOWN;
	}
	log_info("database %s: reconnected", st->shown);
	st->wconn = conn;
	st->backoff_ms = 0;
	st->retry_at = 0;
	st->nstmts = 0;
	st->in_tx = false;
	st->savepoint = SP_NONE;
	return 0;
}

static const char sql_begin[] = "BEGIN";
static const char sql_async[] = "SET LOCAL synchronous_commit = off";
static const char sql_savepoint[] = "SAVEPOINT op";
static const char sql_release[] = "RELEASE op";
static const char sql_commit[] = "COMMIT";

/* Queues a command without parameters to go ahead of the next
 * statement. */
static void pend(struct pg_store *st, const char *sql)
{
	if (st->npending < PG_PENDING_MAX)
		st->pending[st->npending++] = sql;
	else
		log_error("postgres: too many commands queued; %s dropped", sql);
}

/* Whether the group's BEGIN has not been sent yet: nothing of it ran. */
static bool begin_pending(const struct pg_store *st)
{
	return st->npending > 0 && st->pending[0] == sql_begin;
}

/* Whether a session that sat idle is still there: a server that ended it
 * (a restart) has left its goodbye or an end of file on the socket. One
 * non-blocking read, no round trip. */
static bool session_alive(PGconn *conn)
{
	struct pollfd p = {.fd = PQsocket(conn), .events = POLLIN};
	if (p.fd < 0)
		return false;
	if (poll(&p, 1, 0) > 0 && !PQconsumeInput(conn))
		return false;
	return PQstatus(conn) == CONNECTION_OK;
}

/* The commands that end a group: those queued for the COMMIT, then it;
 * returns how many went into tail (at most PG_PENDING_MAX + 1). */
static int commit_tail(const struct pg_store *st, const char **tail)
{
	int n = 0;
	for (int i = 0; i < st->nat_commit; i++)
		tail[n++] = st->at_commit[i];
	tail[n++] = sql_commit;
	return n;
}

/* Runs sql on the writer session, the queued commands ahead of it; cache
 * says whether it is prepared. A session found dead when the group's
 * BEGIN goes out is replaced once, at once: nothing of the group ran.
 *
 * The statement of the group's last op, when that op has no scope of its
 * own (pg_scope_none), carries the group's COMMIT in the same pipeline: a
 * lone submit is BEGIN, INSERT, COMMIT, one round trip instead of two.
 * Should the statement fail, the COMMIT is skipped and the transaction
 * waits aborted for the op's undo, which rolls the group back, as without
 * it; a session lost on the way is not retried then (the COMMIT may have
 * gone through), so its liveness is checked first. */
static int writer_run(struct pg_store *st, bool cache, bool read, const char *sql, int n,
                      const char *const *params, PGresult **out)
{
	if (out)
		*out = NULL;
	if (!st->wconn)
		return PG_ERR_DOWN;
	const char *ahead[PG_PENDING_MAX], *tail[PG_PENDING_MAX + 1];
	bool begins = st->npending > 0 && st->pending[0] == sql_begin;
	int nahead = st->npending, ntail = 0;
	if (read) {
		/* The queued commands wait; nothing of the group runs here. */
		for (int attempt = 0;; attempt++) {
			bool lost = false;
			PGresult *r = session_run(st->wconn, cache ? st->stmt_sql : NULL, &st->nstmts, PG_STMT_CACHE, NULL, 0,
			                          sql, n, params, NULL, 0, &lost);
			if (r) {
				if (out)
					*out = r;
				else
					PQclear(r);
				return 0;
			}
			if (!lost)
				return PG_ERR_SQL;
			bool in_group = st->in_tx;
			int savepoint = st->savepoint;
			const char *keep[PG_PENDING_MAX];
			memcpy(keep, st->pending, sizeof keep);
			pg_writer_lost(st);
			if (attempt > 0 || !begins || pg_writer_up(st) != 0)
				return PG_ERR_DOWN;
			/* Nothing of the group was sent: it goes on, on the new
			 * session. */
			memcpy(st->pending, keep, sizeof keep);
			st->npending = nahead;
			st->in_tx = in_group;
			st->savepoint = savepoint;
		}
	}
	if (st->ops_left == 0 && st->in_tx && st->unscoped && !st->unscoped_sent) {
		ntail = commit_tail(st, tail);
		if (begins && !session_alive(st->wconn)) {
			log_error("database connection lost while idle");
			pg_writer_lost(st);
			if (pg_writer_up(st) != 0)
				return PG_ERR_DOWN;
			st->in_tx = true;
		}
	}
	st->unscoped_sent |= st->unscoped;
	memcpy(ahead, st->pending, sizeof ahead);
	st->npending = 0;
	for (int attempt = 0;; attempt++) {
		bool lost = false;
		PGresult *r = session_run(st->wconn, cache ? st->stmt_sql : NULL, &st->nstmts, PG_STMT_CACHE, ahead, nahead,
		                          sql, n, params, tail, ntail, &lost);
		if (r) {
			if (ntail > 0) {
				st->in_tx = false;
				st->committed = true;
			}
			if (out)
				*out = r;
			else
				PQclear(r);
			return 0;
		}
		if (!lost) {
			/* A failed COMMIT ended the transaction: nothing of the
			 * group holds. */
			if (ntail > 0 && PQtransactionStatus(st->wconn) == PQTRANS_IDLE)
				st->in_tx = false;
			return PG_ERR_SQL;
		}
		pg_writer_lost(st);
		if (attempt > 0 || !begins || ntail > 0 || pg_writer_up(st) != 0)
			return PG_ERR_DOWN;
		st->in_tx = true;
	}
}

int pg_query(struct pg_store *st, const char *sql, int n, const char *const *params, PGresult **out)
{
	return writer_run(st, true, false, sql, n, params, out);
}

int pg_read(struct pg_store *st, const char *sql, int n, const char *const *params, PGresult **out)
{
	return writer_run(st, true, true, sql, n, params, out);
}

int pg_exec(struct pg_store *st, const char *sql, int n, const char *const *params, PGresult **out)
{
	return writer_run(st, false, false, sql, n, params, out);
}

int pg_command(struct pg_store *st, const char *sql)
{
	if (!st->wconn)
		return PG_ERR_DOWN;
	st->unscoped_sent |= st->unscoped;
	char joined[512];
	if (st->npending > 0) {
		size_t len = 0;
		for (int i = 0; i < st->npending; i++)
			len += (size_t)snprintf(joined + len, sizeof joined - len, "%s; ", st->pending[i]);
		snprintf(joined + len, sizeof joined - len, "%s", sql);
		st->npending = 0;
		sql = joined;
	}
	PGresult *r = PQexec(st->wconn, sql);
	ExecStatusType s = PQresultStatus(r);
	if (s == PGRES_COMMAND_OK || s == PGRES_TUPLES_OK) {
		PQclear(r);
		return 0;
	}
	char why[512];
	pg_message(st->wconn, r, why, sizeof why);
	PQclear(r);
	if (PQstatus(st->wconn) != CONNECTION_OK) {
		log_error("database connection lost: %s", why);
		pg_writer_lost(st);
		return PG_ERR_DOWN;
	}
	log_error("postgres: %s (in: %.80s)", why, sql);
	return PG_ERR_SQL;
}

/* ---- the group and each op's scope ------------------------------------ */

/* A group of claims, leases and pings only may be lost in a crash of the
 * server (see writer.c): its commit does not wait for the WAL flush. BEGIN
 * goes out with the first statement of the group.
 *
 * Every group takes the schema's write lock first, held to its COMMIT:
 * the count rows (queue_counts, batch_counts) are shared by every node,
 * and two nodes' groups that update them in different orders would
 * deadlock (each waits a second, then one group is rolled back whole).
 * Writes are serialized across nodes; a lone node takes the lock
 * uncontended, in the same round trip as BEGIN.
 *
 * With other nodes alive the last op does not carry the COMMIT: the
 * group's notice for them is known only once every op has run, and it
 * must go with the COMMIT (pg_commit). */
int pg_begin(void *be, bool durable, int nops)
{
	struct pg_store *st = be;
	int rc = pg_writer_up(st);
	st->npending = 0;
	st->nat_commit = 0;
	st->savepoint = SP_NONE;
	st->unscoped = st->unscoped_sent = false;
	st->notice[0] = '\0';
	/* unknown, or other nodes to tell: no op carries the COMMIT */
	st->ops_left = nops > 0 && pg_alone(st) ? nops : -1;
	st->committed = false;
	st->in_tx = rc == 0;
	if (rc != 0)
		return rc;
	pend(st, sql_begin);
	if (!durable)
		pend(st, sql_async);
	pend(st, st->write_lock_sql);
	return 0;
}

/* Ends the group: forgets what was queued for it. */
static void group_end(struct pg_store *st)
{
	st->in_tx = false;
	st->savepoint = SP_NONE;
	st->npending = 0;
	st->nat_commit = 0;
	st->ops_left = -1;
	st->committed = false;
}

/* COMMIT releases the last op's savepoint with the rest; the commands
 * queued for it go in the same round trip. COMMIT of a failed
 * transaction answers ROLLBACK, successfully. The last op's statement may
 * have carried the COMMIT already. */
int pg_commit(void *be)
{
	struct pg_store *st = be;
	bool ran = !begin_pending(st), committed = st->committed;
	const char *tail[PG_PENDING_MAX + 1];
	int ntail = commit_tail(st, tail);
	group_end(st);
	if (committed || !ran)
		return 0; /* committed already, or nothing of the group reached the server */
	if (!st->wconn)
		return PG_ERR_DOWN;
	/* The group's notice rides with the COMMIT: delivered when it
	 * commits, never when it does not. Its text is ids, tags and the
	 * channel (a schema name): nothing to escape. */
	char sql[PG_NOTICE_MAX + 640] = "";
	size_t len = 0;
	if (st->notice[0] && !pg_alone(st))
		len = (size_t)snprintf(sql, sizeof sql, "SELECT pg_notify('%s', '%s'); ", st->channel, st->notice);
	st->notice[0] = '\0';
	for (int i = 0; i < ntail; i++)
		len += (size_t)snprintf(sql + len, sizeof sql - len, "%s%s", i ? "; " : "", tail[i]);
	PGresult *r = PQexec(st->wconn, sql);
	int rc = 0;
	if (PQresultStatus(r) != PGRES_COMMAND_OK) {
		char why[512];
		pg_message(st->wconn, r, why, sizeof why);
		bool lost = PQstatus(st->wconn) != CONNECTION_OK;
		log_error("%s: %s", lost ? "database connection lost at COMMIT" : "postgres: COMMIT", why);
		if (lost)
			pg_writer_lost(st);
		else if (PQtransactionStatus(st->wconn) != PQTRANS_IDLE)
			st->in_tx = true; /* a command before COMMIT failed: the writer rolls back */
		rc = lost ? PG_ERR_DOWN : PG_ERR_SQL;
	} else if (strcmp(PQcmdStatus(r), "COMMIT") != 0) {
		log_error("postgres: the transaction was rolled back at COMMIT");
		rc = PG_ERR_SQL;
	}
	PQclear(r);
	return rc;
}

void pg_rollback(void *be)
{
	struct pg_store *st = be;
	st->npending = 0;
	if (st->wconn && PQtransactionStatus(st->wconn) != PQTRANS_IDLE)
		pg_command(st, "ROLLBACK");
	group_end(st);
}

/* A group whose last op carried the COMMIT holds, whatever that op met
 * after. */
static bool pg_in_transaction(void *be)
{
	struct pg_store *st = be;
	if (st->committed)
		return true;
	if (!st->wconn || !st->in_tx)
		return false;
	PGTransactionStatusType t = PQtransactionStatus(st->wconn);
	return begin_pending(st) || t == PQTRANS_INTRANS || t == PQTRANS_INERROR;
}

/* The savepoint goes out with the op's first statement, after the
 * release of the one before; an op that ran nothing reuses its unsent
 * one. */
static int pg_op_begin(void *be)
{
	struct pg_store *st = be;
	st->unscoped = st->unscoped_sent = false;
	if (st->ops_left > 0)
		st->ops_left--;
	if (!(st->npending > 0 && st->pending[st->npending - 1] == sql_savepoint)) {
		if (st->savepoint == SP_ENDED)
			pend(st, sql_release);
		pend(st, sql_savepoint);
	}
	st->savepoint = SP_OPEN;
	return 0;
}

/* The release goes with the next op's SAVEPOINT, or the COMMIT. */
static int pg_op_end(void *be)
{
	struct pg_store *st = be;
	if (!st->unscoped)
		st->savepoint = SP_ENDED;
	st->unscoped = false;
	return 0;
}

void pg_scope_none(struct pg_store *st)
{
	if (st->savepoint == SP_OPEN && st->npending > 0 && st->pending[st->npending - 1] == sql_savepoint) {
		st->npending--;
		st->savepoint = SP_NONE;
		st->unscoped = true;
		st->unscoped_sent = false;
	}
}

/* An op without its own savepoint that sent a statement cannot be taken
 * back alone: the group goes (in_transaction() turns false). */
static int pg_op_undo(void *be)
{
	struct pg_store *st = be;
	if (st->committed) {
		/* The op failed after its statement committed the group; that
		 * statement wrote nothing (pg_scope_none): it fails alone. */
		st->unscoped = st->unscoped_sent = false;
		return 0;
	}
	if (st->unscoped) {
		bool sent = st->unscoped_sent;
		st->unscoped = st->unscoped_sent = false;
		if (sent)
			pg_rollback(st);
		return 0;
	}
	st->savepoint = SP_NONE;
	if (st->npending > 0 && st->pending[st->npending - 1] == sql_savepoint) {
		st->npending--; /* never sent: nothing to take back */
		return 0;
	}
	return pg_command(st, "ROLLBACK TO op; RELEASE op");
}

static void pg_after_writes(void *be)
{
	(void)be;
}

static void pg_notice(void *be, const struct store_notice *nt)
{
	struct pg_store *st = be;
	pg_notice_build(st, nt, st->notice, sizeof st->notice);
}

static bool pg_backend_alone(void *be)
{
	return pg_alone(be);
}

static void pg_backend_node_id(void *be, char out[UUID_LEN + 1])
{
	pg_node_id(be, out);
}

static bool pg_backend_leader(void *be)
{
	return pg_is_leader(be);
}

/* Integrity is the server's business. */
static bool pg_damaged(void *be)
{
	(void)be;
	return false;
}

/* ---- parameters and results ------------------------------------------- */

static void arg_add(struct pg_args *a, const char *v)
{
	if (a->n < PG_ARGS_MAX)
		a->v[a->n++] = v;
	else
		log_error("pg_args: more than %d parameters", PG_ARGS_MAX);
}

void pg_arg_text(struct pg_args *a, const char *s)
{
	arg_add(a, s);
}

void pg_arg_null(struct pg_args *a)
{
	arg_add(a, NULL);
}

void pg_arg_i64(struct pg_args *a, int64_t v)
{
	if (a->n < PG_ARGS_MAX)
		snprintf(a->buf[a->n], sizeof a->buf[a->n], "%lld", (long long)v);
	arg_add(a, a->n < PG_ARGS_MAX ? a->buf[a->n] : NULL);
}

void pg_arg_i64_or_null(struct pg_args *a, int64_t v)
{
	if (v)
		pg_arg_i64(a, v);
	else
		pg_arg_null(a);
}

void pg_arg_f64(struct pg_args *a, double v)
{
	if (a->n < PG_ARGS_MAX)
		snprintf(a->buf[a->n], sizeof a->buf[a->n], "%.17g", v);
	arg_add(a, a->n < PG_ARGS_MAX ? a->buf[a->n] : NULL);
}

int64_t pg_i64(const PGresult *r, int row, int col)
{
	return PQgetisnull(r, row, col) ? 0 : strtoll(PQgetvalue(r, row, col), NULL, 10);
}

double pg_f64(const PGresult *r, int row, int col)
{
	return PQgetisnull(r, row, col) ? 0 : strtod(PQgetvalue(r, row, col), NULL);
}

bool pg_null(const PGresult *r, int row, int col)
{
	return PQgetisnull(r, row, col) != 0;
}

void pg_copy(const PGresult *r, int row, int col, char *dst, size_t n)
{
	snprintf(dst, n, "%s", PQgetisnull(r, row, col) ? "" : PQgetvalue(r, row, col));
}

char *pg_strdup(const PGresult *r, int row, int col)
{
	return PQgetisnull(r, row, col) ? NULL : strdup(PQgetvalue(r, row, col));
}

int pg_each_name(const PGresult *r, int (*each)(void *arg, const char *name), void *arg)
{
	for (int i = 0; i < PQntuples(r); i++) {
		char name[JOB_NAME_MAX + 1];
		pg_copy(r, i, 0, name, sizeof name);
		if (each(arg, name) != 0)
			return PG_ERR_NOMEM;
	}
	return 0;
}

int64_t pg_changes(const PGresult *r)
{
	return strtoll(PQcmdTuples((PGresult *)r), NULL, 10);
}

static enum job_state state_at(const PGresult *r, int row, int col)
{
	int64_t s = pg_i64(r, row, col);
	return s >= 0 && s < JOB_STATE_COUNT ? (enum job_state)s : JOB_FAILED;
}

/* Reads url, state, attempts, status, error from columns col.. col+4. */
static void delivery_at(const PGresult *r, int row, int col, struct delivery *d)
{
	d->url = pg_strdup(r, row, col);
	d->state = pg_null(r, row, col + 1) ? DELIVERY_NONE : (enum delivery_state)pg_i64(r, row, col + 1);
	d->attempts = (int)pg_i64(r, row, col + 2);
	d->last_status = (int)pg_i64(r, row, col + 3);
	d->last_error = pg_strdup(r, row, col + 4);
}

struct job *pg_row_to_job(const PGresult *r, int row)
{
	struct job *job = job_new();
	if (!job)
		return NULL;
	job->seq = pg_i64(r, row, 0);
	pg_copy(r, row, 1, job->id, sizeof job->id);
	pg_copy(r, row, 2, job->type, sizeof job->type);
	pg_copy(r, row, 3, job->queue, sizeof job->queue);
	job->priority = (int)pg_i64(r, row, 4);
	job->state = state_at(r, row, 5);
	job->payload = pg_strdup(r, row, 6);
	job->result = pg_strdup(r, row, 7);
	job->error = pg_strdup(r, row, 8);
	if (!pg_null(r, row, 9)) {
		job->has_progress = true;
		job->progress_percent = pg_f64(r, row, 9);
		pg_copy(r, row, 10, job->progress_message, sizeof job->progress_message);
	}
	job->attempts = (int)pg_i64(r, row, 11);
	job->created_at = pg_i64(r, row, 12);
	job->started_at = pg_i64(r, row, 13);
	job->finished_at = pg_i64(r, row, 14);
	job->max_attempts = (int)pg_i64(r, row, 15);
	job->backoff_s = pg_f64(r, row, 16);
	job->max_backoff_s = pg_f64(r, row, 17);
	job->timeout_s = pg_f64(r, row, 18);
	job->retention_s = pg_f64(r, row, 19);
	job->run_at = pg_i64(r, row, 20);
	pg_copy(r, row, 21, job->batch_id, sizeof job->batch_id);
	delivery_at(r, row, 22, &job->callback);
	if (job->state == JOB_RUNNING)
		pg_copy(r, row, 27, job->node, sizeof job->node);
	pg_copy(r, row, 31, job->schedule_name, sizeof job->schedule_name);
	job->schedule_fire_at = pg_i64(r, row, 32);
	int64_t policy = pg_i64(r, row, 29);
	job->deps.policy = policy >= 0 && policy < DEP_POLICY_COUNT ? (enum dep_policy)policy : DEP_CANCEL;
	job->deps.pending = (int)pg_i64(r, row, 30);
	if ((!pg_null(r, row, 28) && deps_ids_from_text(PQgetvalue(r, row, 28), &job->deps) != 0) ||
	    (!pg_null(r, row, 6) && !job->payload) || (!pg_null(r, row, 7) && !job->result) ||
	    (!pg_null(r, row, 8) && !job->error) || (!pg_null(r, row, 22) && !job->callback.url) ||
	    (!pg_null(r, row, 26) && !job->callback.last_error)) {
		job_free(job);
		return NULL;
	}
	return job;
}

/* ---- readers ----------------------------------------------------------- */

static const char reader_settings[] = "SET default_transaction_read_only = on";

static void reader_close(struct pg_reader *r)
{
	if (!r)
		return;
	PQfinish(r->conn);
	free(r);
}

/* Unlinks r from all_readers; readers_mu held. */
static void reader_unlink(struct pg_store *st, struct pg_reader *r)
{
	for (struct pg_reader **p = &st->all_readers; *p; p = &(*p)->all_next)
		if (*p == r) {
			*p = r->all_next;
			return;
		}
}

/* Takes an idle reader, opens a new one while there are fewer than
 * max_readers (unless the last try failed and its backoff runs), or waits
 * for one to come back; NULL when none can be had. */
static struct pg_reader *reader_take(struct pg_store *st)
{
	pthread_mutex_lock(&st->readers_mu);
	while (!st->idle && st->nreaders >= st->max_readers)
		pthread_cond_wait(&st->readers_cv, &st->readers_mu);
	struct pg_reader *r = st->idle;
	if (r) {
		st->idle = r->next;
	} else if (clock_mono_ms() < st->read_retry_at) {
		pthread_mutex_unlock(&st->readers_mu);
		return NULL;
	} else {
		st->nreaders++;           /* this thread opens one: its slot */
	}
	pthread_mutex_unlock(&st->readers_mu);
	if (r)
		return r;

	char why[512] = "";
	r = calloc(1, sizeof *r);
	if (r)
		r->st = st;
	if (r && !(r->conn = session_open(st, reader_settings, why, sizeof why))) {
		free(r);
		r = NULL;
	}
	pthread_mutex_lock(&st->readers_mu);
	if (r) {
		r->all_next = st->all_readers;
		st->all_readers = r;
		st->read_backoff_ms = 0;
		st->read_retry_at = 0;
	} else {
		st->nreaders--;           /* the slot is free again */
		st->read_backoff_ms = st->read_backoff_ms ? st->read_backoff_ms * 2 : BACKOFF_FIRST_MS;
		if (st->read_backoff_ms > BACKOFF_MAX_MS)
			st->read_backoff_ms = BACKOFF_MAX_MS;
		st->read_retry_at = clock_mono_ms() + st->read_backoff_ms;
		pthread_cond_signal(&st->readers_cv);
	}
	pthread_mutex_unlock(&st->readers_mu);
	if (!r)
		log_error("database %s: cannot open a read session: %s", st->shown, why[0] ? why : "out of memory");
	return r;
}

/* Gives r back; a reader whose session is gone is closed and its slot
 * freed, so the next read opens a new one. */
static void reader_give(struct pg_store *st, struct pg_reader *r)
{
	bool dead = PQstatus(r->conn) != CONNECTION_OK;
	pthread_mutex_lock(&st->readers_mu);
	if (dead) {
		reader_unlink(st, r);
		st->nreaders--;
	} else {
		r->next = st->idle;
		st->idle = r;
	}
	pthread_cond_signal(&st->readers_cv);
	pthread_mutex_unlock(&st->readers_mu);
	if (dead)
		reader_close(r);
}

/* Runs a read: prepared once per session (sql with static storage) when
 * prepared, else planned for its parameters each time. A session found
 * dead (the server restarted since it was last used) is replaced once and
 * the read tried again: a read changes nothing. */
static PGresult *reader_exec(struct pg_reader *r, bool prepared, const char *sql, int n, const char *const *params)
{
	bool lost = false;
	const char **cache = prepared ? r->stmt_sql : NULL;
	PGresult *res = session_run(r->conn, cache, &r->nstmts, READER_STMTS, NULL, 0, sql, n, params, NULL, 0, &lost);
	if (res || !lost)
		return res;
	char why[512] = "";
	PGconn *fresh = session_open(r->st, reader_settings, why, sizeof why);
	if (!fresh)
		return NULL; /* the dead session goes at reader_give */
	PQfinish(r->conn);
	r->conn = fresh;
	r->nstmts = 0;
	return session_run(r->conn, cache, &r->nstmts, READER_STMTS, NULL, 0, sql, n, params, NULL, 0, &lost);
}

static PGresult *reader_run(struct pg_reader *r, const char *sql, int n, const char *const *params)
{
	return reader_exec(r, true, sql, n, params);
}

PGresult *pg_reader_query(struct pg_store *st, const char *sql, int n, const char *const *params)
{
	struct pg_reader *r = reader_take(st);
	if (!r)
		return NULL;
	PGresult *res = reader_run(r, sql, n, params);
	reader_give(st, r);
	return res;
}

/* ---- reads ------------------------------------------------------------- */

static const char sql_get[] = "SELECT " PG_JOB_COLUMNS " FROM jobs WHERE id = $1";
static const char sql_history[] = "SELECT attempt, started_at, finished_at, outcome, error FROM job_attempts"
                                  " WHERE job_seq = $1 ORDER BY attempt";
static const char sql_queue_counts[] = "SELECT state, n FROM queue_counts WHERE queue = $1";
static const char sql_queue_paused[] = "SELECT paused FROM queues WHERE name = $1";
static const char sql_queue_oldest[] = "SELECT run_at FROM jobs WHERE state = " S_QUEUED " AND queue = $1"
                                       " ORDER BY run_at LIMIT 1";
/* Both halves walk a primary key from $1 on, at most $2 rows each. */
static const char sql_queue_names[] =
	"SELECT queue FROM (SELECT DISTINCT queue FROM queue_counts WHERE queue > $1 AND n > 0"
	"   ORDER BY queue LIMIT $2) AS c"
	" UNION SELECT name FROM (SELECT name FROM queues WHERE name > $1 AND paused <> 0"
	"   ORDER BY name LIMIT $2) AS p"
	" ORDER BY 1 LIMIT $2";
static const char sql_batch_get[] = "SELECT total, created_at, finished_at, callback_url, callback_state,"
                                    " callback_attempts, callback_status, callback_error FROM batches WHERE id = $1";
static const char sql_batch_counts[] = "SELECT state, n FROM batch_counts WHERE batch_id = $1";
/* Due callbacks of jobs (up to $2, is_batch false), of batches (up to
 * $2, true), and a last row with no id holding the earliest pending due
 * time of either: one round trip, so the deliverer's view is as fresh as
 * one statement. */
static const char sql_due[] =
	"(SELECT id, false, NULL::bigint FROM jobs WHERE callback_state = " S_PENDING " AND callback_next_at <= $1"
	"  ORDER BY callback_next_at LIMIT $2)"
	" UNION ALL (SELECT id, true, NULL FROM batches WHERE callback_state = " S_PENDING
	"  AND callback_next_at <= $1 ORDER BY callback_next_at LIMIT $2)"
	" UNION ALL SELECT NULL, NULL, least((SELECT min(callback_next_at) FROM jobs WHERE callback_state = " S_PENDING "),"
	"  (SELECT min(callback_next_at) FROM batches WHERE callback_state = " S_PENDING "))";
/* Every queue with queued jobs, deepest first, with its oldest queued
 * job: one index probe per such queue, no scan of the jobs. */
static const char sql_deepest[] =
	"SELECT c.queue, c.n, (SELECT run_at FROM jobs WHERE state = " S_QUEUED " AND queue = c.queue"
	"  ORDER BY run_at LIMIT 1)"
	" FROM queue_counts c WHERE c.state = " S_QUEUED " AND c.n > 0 ORDER BY c.n DESC, c.queue";

/* Loads job's attempt history; -1 on failure. */
static int read_history(struct pg_reader *r, struct job *job)
{
	char seq[24];
	snprintf(seq, sizeof seq, "%lld", (long long)job->seq);
	const char *params[] = {seq};
	PGresult *res = reader_run(r, sql_history, 1, params);
	if (!res)
		return -1;
	int n = PQntuples(res);
	job->has_history = true;
	if (n > 0 && !(job->history = calloc((size_t)n, sizeof *job->history))) {
		PQclear(res);
		return -1;
	}
	for (int i = 0; i < n; i++) {
		struct job_attempt *a = &job->history[job->nhistory++];
		a->attempt = (int)pg_i64(res, i, 0);
		a->started_at = pg_i64(res, i, 1);
		a->finished_at = pg_i64(res, i, 2);
		if (pg_null(res, i, 3) || attempt_outcome_parse(PQgetvalue(res, i, 3), &a->outcome) != 0)
			a->outcome = ATTEMPT_FAILED;
		a->error = pg_strdup(res, i, 4);
	}
	PQclear(res);
	return 0;
}

static enum store_rc pg_get_job(void *be, const char *id, struct job **out)
{
	struct pg_store *st = be;
	struct pg_reader *r = reader_take(st);
	if (!r)
		return STORE_UNAVAILABLE;
	const char *params[] = {id};
	enum store_rc rc = STORE_OK;
	PGresult *res = reader_run(r, sql_get, 1, params);
	if (!res) {
		rc = STORE_UNAVAILABLE;
	} else if (PQntuples(res) == 0) {
		rc = STORE_NOT_FOUND;
	} else {
		*out = pg_row_to_job(res, 0);
		if (!*out || read_history(r, *out) != 0) {
			job_free(*out);
			*out = NULL;
			rc = STORE_UNAVAILABLE;
		}
	}
	PQclear(res);
	reader_give(st, r);
	return rc;
}

enum { LIST_STATE = 1, LIST_QUEUE = 2, LIST_TYPE = 4, LIST_BEFORE = 8, LIST_BATCH = 16, LIST_IDS = 32 };

/* The list's SQL per variant, built once. Parameters are numbered in the
 * order of the terms below, then the limit. */
static char list_sqls[LIST_VARIANTS][640];
static pthread_once_t list_once = PTHREAD_ONCE_INIT;

/* Each term is its left side, the parameter, its right side. */
static const struct {
	int bit;
	const char *left, *right;
} list_terms[] = {
	{LIST_IDS, "id = ANY(", "::text[])"}, {LIST_BATCH, "batch_id = ", ""}, {LIST_STATE, "state = ", ""},
	{LIST_QUEUE, "queue = ", ""}, {LIST_TYPE, "type = ", ""}, {LIST_BEFORE, "seq < ", ""},
};

static void list_build(void)
{
	for (int v = 0; v < LIST_VARIANTS; v++) {
		char *sql = list_sqls[v];
		size_t cap = sizeof list_sqls[v];
		size_t len = (size_t)snprintf(sql, cap, "SELECT " PG_JOB_COLUMNS " FROM jobs WHERE true");
		int p = 0;
		for (size_t i = 0; i < sizeof list_terms / sizeof list_terms[0]; i++) {
			if (!(v & list_terms[i].bit))
				continue;
			len += (size_t)snprintf(sql + len, cap - len, " AND %s$%d%s", list_terms[i].left, ++p,
			                        list_terms[i].right);
		}
		snprintf(sql + len, cap - len, " ORDER BY seq DESC LIMIT $%d", ++p);
	}
}

/* The ids as a PostgreSQL array literal (they are UUIDs: nothing to
 * escape); the caller frees it. */
static char *ids_array(const char *const *ids, size_t n)
{
	size_t cap = 3 + n * (UUID_LEN + 3);
	char *out = malloc(cap), *p = out;
	if (!out)
		return NULL;
	*p++ = '{';
	for (size_t i = 0; i < n; i++)
		p += snprintf(p, cap - (size_t)(p - out), "%s\"%.36s\"", i ? "," : "", ids[i]);
	snprintf(p, cap - (size_t)(p - out), "}");
	return out;
}

static enum store_rc pg_list_jobs(void *be, const struct store_filter *f, struct job ***jobs, size_t *n,
                                  int64_t *next_seq)
{
	struct pg_store *st = be;
	pthread_once(&list_once, list_build);
	int limit = f->limit < 1 ? 1 : f->limit;
	int variant = (f->has_state ? LIST_STATE : 0) | (f->queue ? LIST_QUEUE : 0) |
	              (f->type ? LIST_TYPE : 0) | (f->before_seq > 0 ? LIST_BEFORE : 0) |
	              (f->batch_id ? LIST_BATCH : 0) | (f->nids > 0 ? LIST_IDS : 0);
	char *ids = f->nids > 0 ? ids_array(f->ids, f->nids) : NULL;
	if (f->nids > 0 && !ids)
		return STORE_UNAVAILABLE;
	/* In the order of list_terms, then the limit: one row more than
	 * asked tells whether another page exists. */
	struct pg_args a = {0};
	if (ids)
		pg_arg_text(&a, ids);
	if (f->batch_id)
		pg_arg_text(&a, f->batch_id);
	if (f->has_state)
		pg_arg_i64(&a, (int64_t)f->state);
	if (f->queue)
		pg_arg_text(&a, f->queue);
	if (f->type)
		pg_arg_text(&a, f->type);
	if (f->before_seq > 0)
		pg_arg_i64(&a, f->before_seq);
	pg_arg_i64(&a, (int64_t)limit + 1);
	struct pg_reader *r = reader_take(st);
	if (!r) {
		free(ids);
		return STORE_UNAVAILABLE;
	}
	enum store_rc rc = STORE_OK;
	struct job **out = NULL;
	size_t count = 0;
	/* Planned for its parameters each time: a generic plan would pick
	 * one index for every state, and walk the primary key past a million
	 * succeeded jobs to list the few failed ones. */
	PGresult *res = reader_exec(r, false, list_sqls[variant], a.n, a.v);
	int rows = res ? PQntuples(res) : 0;
	out = res ? calloc((size_t)rows + 1, sizeof *out) : NULL;
	if (!out) {
		rc = STORE_UNAVAILABLE;
		goto out;
	}
	for (int i = 0; i < rows; i++) {
		if (!(out[count] = pg_row_to_job(res, i))) {
			rc = STORE_UNAVAILABLE;
			goto out;
		}
		count++;
	}
	*next_seq = 0;
	if (count > (size_t)limit) {
		job_free(out[--count]);
		*next_seq = out[count - 1]->seq;
	}
	*jobs = out;
	*n = count;
	out = NULL;
	count = 0;
out:
	for (size_t i = 0; i < count; i++)
		job_free(out[i]);
	free(out);
	PQclear(res);
	free(ids);
	reader_give(st, r);
	return rc;
}

/* ---- queues ------------------------------------------------------------ */

static enum store_rc pg_get_queue(void *be, const char *name, struct queue_info *out)
{
	struct pg_store *st = be;
	memset(out, 0, sizeof *out);
	snprintf(out->name, sizeof out->name, "%s", name);
	struct pg_reader *r = reader_take(st);
	if (!r)
		return STORE_UNAVAILABLE;
	const char *params[] = {name};
	PGresult *counts = reader_run(r, sql_queue_counts, 1, params);
	PGresult *paused = counts ? reader_run(r, sql_queue_paused, 1, params) : NULL;
	PGresult *oldest = paused ? reader_run(r, sql_queue_oldest, 1, params) : NULL;
	enum store_rc rc = oldest ? STORE_OK : STORE_UNAVAILABLE;
	if (rc == STORE_OK) {
		for (int i = 0; i < PQntuples(counts); i++) {
			int64_t state = pg_i64(counts, i, 0);
			if (state >= 0 && state < JOB_STATE_COUNT)
				out->counts[state] = pg_i64(counts, i, 1);
		}
		out->paused = PQntuples(paused) > 0 && pg_i64(paused, 0, 0) != 0;
		out->oldest_queued_run_at = PQntuples(oldest) > 0 ? pg_i64(oldest, 0, 0) : 0;
	}
	PQclear(counts);
	PQclear(paused);
	PQclear(oldest);
	reader_give(st, r);
	return rc;
}

static enum store_rc pg_list_queue_names(void *be, const char *after, int max, char (**names)[JOB_NAME_MAX + 1],
                                         size_t *n)
{
	struct pg_store *st = be;
	struct pg_args a = {0};
	pg_arg_text(&a, after ? after : "");
	pg_arg_i64(&a, max < 1 ? 1 : max);
	struct pg_reader *r = reader_take(st);
	if (!r)
		return STORE_UNAVAILABLE;
	PGresult *res = reader_run(r, sql_queue_names, a.n, a.v);
	reader_give(st, r);
	if (!res)
		return STORE_UNAVAILABLE;
	int rows = PQntuples(res);
	char (*out)[JOB_NAME_MAX + 1] = rows > 0 ? calloc((size_t)rows, sizeof *out) : NULL;
	if (rows > 0 && !out) {
		PQclear(res);
		return STORE_UNAVAILABLE;
	}
	for (int i = 0; i < rows; i++)
		pg_copy(res, i, 0, out[i], sizeof out[i]);
	PQclear(res);
	*names = out;
	*n = (size_t)rows;
	return STORE_OK;
}

static enum store_rc pg_deepest_queues(void *be, struct queue_info *out, int top, int *n, struct queue_info *rest)
{
	struct pg_store *st = be;
	*n = 0;
	memset(rest, 0, sizeof *rest);
	struct pg_reader *r = reader_take(st);
	if (!r)
		return STORE_UNAVAILABLE;
	PGresult *res = reader_run(r, sql_deepest, 0, NULL);
	reader_give(st, r);
	if (!res)
		return STORE_UNAVAILABLE;
	for (int i = 0; i < PQntuples(res); i++) {
		struct queue_info *q = rest;
		if (*n < top) {
			q = &out[(*n)++];
			memset(q, 0, sizeof *q);
			pg_copy(res, i, 0, q->name, sizeof q->name);
		}
		q->counts[JOB_QUEUED] += pg_i64(res, i, 1);
		int64_t oldest = pg_i64(res, i, 2);
		if (oldest && (!q->oldest_queued_run_at || oldest < q->oldest_queued_run_at))
			q->oldest_queued_run_at = oldest;
	}
	PQclear(res);
	return STORE_OK;
}

static enum store_rc pg_state_counts(void *be, int64_t out[JOB_STATE_COUNT])
{
	struct pg_store *st = be;
	memset(out, 0, sizeof(int64_t) * JOB_STATE_COUNT);
	struct pg_reader *r = reader_take(st);
	if (!r)
		return STORE_UNAVAILABLE;
	PGresult *res = reader_run(r, "SELECT state, sum(n)::bigint FROM queue_counts GROUP BY state", 0, NULL);
	reader_give(st, r);
	if (!res)
		return STORE_UNAVAILABLE;
	for (int i = 0; i < PQntuples(res); i++) {
		int64_t state = pg_i64(res, i, 0);
		if (state >= 0 && state < JOB_STATE_COUNT)
			out[state] = pg_i64(res, i, 1);
	}
	PQclear(res);
	return STORE_OK;
}

/* ---- batches and callbacks --------------------------------------------- */

static enum store_rc pg_get_batch(void *be, const char *id, struct batch_info *out)
{
	struct pg_store *st = be;
	memset(out, 0, sizeof *out);
	out->callback.state = DELIVERY_NONE;
	snprintf(out->id, sizeof out->id, "%s", id);
	struct pg_reader *r = reader_take(st);
	if (!r)
		return STORE_UNAVAILABLE;
	const char *params[] = {id};
	PGresult *b = reader_run(r, sql_batch_get, 1, params);
	PGresult *counts = b && PQntuples(b) > 0 ? reader_run(r, sql_batch_counts, 1, params) : NULL;
	reader_give(st, r);
	enum store_rc rc = !b ? STORE_UNAVAILABLE : PQntuples(b) == 0 ? STORE_NOT_FOUND
	                   : !counts ? STORE_UNAVAILABLE : STORE_OK;
	if (rc == STORE_OK) {
		out->total = pg_i64(b, 0, 0);
		out->created_at = pg_i64(b, 0, 1);
		out->finished_at = pg_i64(b, 0, 2);
		delivery_at(b, 0, 3, &out->callback);
		for (int i = 0; i < PQntuples(counts); i++) {
			int64_t state = pg_i64(counts, i, 0);
			if (state >= 0 && state < JOB_STATE_COUNT)
				out->counts[state] = pg_i64(counts, i, 1);
		}
	}
	PQclear(b);
	PQclear(counts);
	return rc;
}

static enum store_rc pg_due_callbacks(void *be, int64_t now, struct due_callback *out, int max, int *n,
                                      int64_t *next)
{
	struct pg_store *st = be;
	*n = 0;
	if (!pg_is_leader(st)) {
		*next = now + 1000; /* the leader delivers; look again in a second */
		return STORE_OK;
	}
	struct pg_args a = {0};
	pg_arg_i64(&a, now);
	pg_arg_i64(&a, max);
	struct pg_reader *r = reader_take(st);
	if (!r)
		return STORE_UNAVAILABLE;
	PGresult *res = reader_run(r, sql_due, a.n, a.v);
	reader_give(st, r);
	if (!res)
		return STORE_UNAVAILABLE;
	/* Jobs first, then batches, as many as fit. */
	*next = 0;
	for (int i = 0; i < PQntuples(res); i++) {
		if (pg_null(res, i, 0)) {
			*next = pg_i64(res, i, 2);
		} else if (*n < max) {
			pg_copy(res, i, 0, out[*n].id, sizeof out[*n].id);
			out[(*n)++].is_batch = strcmp(PQgetvalue(res, i, 1), "t") == 0;
		}
	}
	PQclear(res);
	return STORE_OK;
}

static int pg_version(void *be)
{
	struct pg_store *st = be;
	struct pg_reader *r = reader_take(st);
	if (!r)
		return -1;
	int v = pg_schema_version(r->conn);
	reader_give(st, r);
	return v;
}

/* ---- open and close ---------------------------------------------------- */

static void pg_close(void *be)
{
	struct pg_store *st = be;
	if (!st)
		return;
	pg_cluster_stop(st);
	for (struct pg_reader *r = st->all_readers, *next; r; r = next) {
		next = r->all_next;
		reader_close(r);
	}
	PQfinish(st->wconn);
	pthread_cond_destroy(&st->readers_cv);
	pthread_mutex_destroy(&st->readers_mu);
	pthread_mutex_destroy(&st->node_mu);
	free(st->conninfo);
	free(st->shown);
	free(st);
}

static int pg_open(const struct store_options *opts, void **out, char *err, size_t errlen)
{
	struct pg_store *st = calloc(1, sizeof *st);
	if (!st) {
		snprintf(err, errlen, "out of memory");
		return STORE_OPEN_FAILED;
	}
	st->ops_left = -1; /* outside a group */
	pthread_mutex_init(&st->readers_mu, NULL);
	pthread_cond_init(&st->readers_cv, NULL);
	pthread_mutex_init(&st->node_mu, NULL);
	const char *schema = opts->schema ? opts->schema : DEFAULT_SCHEMA;
	size_t shown_len = strlen(opts->path ? opts->path : "") + 16;
	if (!(st->conninfo = strdup(opts->path ? opts->path : "")) || !(st->shown = malloc(shown_len))) {
		snprintf(err, errlen, "out of memory");
		goto fail;
	}
	store_mask_uri(st->conninfo, st->shown, shown_len);
	if (!schema_valid(schema)) {
		snprintf(err, errlen, "invalid schema name %.80s: expected [a-z_][a-z0-9_]{0,62}", schema);
		goto fail;
	}
	snprintf(st->schema, sizeof st->schema, "%s", schema);
	snprintf(st->write_lock_sql, sizeof st->write_lock_sql, "SELECT pg_advisory_xact_lock(%lld)",
	         (long long)pg_lock_key("write", st->schema));
	st->durability = opts->durability;
	st->max_readers = opts->readers > 0 && opts->readers < PG_MAX_READERS ? opts->readers : PG_MAX_READERS;
	char why[512] = "";
	if (!(st->wconn = writer_open(st, why, sizeof why)) ||
	    pg_schema_migrate(st->wconn, st->schema, why, sizeof why) != 0 ||
	    pg_cluster_start(st, opts, why, sizeof why) != 0) {
		snprintf(err, errlen, "cannot open database %s: %s", st->shown, why);
		goto fail;
	}
	*out = st;
	return 0;
fail:
	pg_close(st);
	return STORE_OPEN_FAILED;
}

/* ---- leases now (the dashboard's external workers) --------------------- */

static enum store_rc pg_list_leases(void *be, const char *queue, int max, struct store_lease_info *out, int *n)
{
	static const char sql[] =
		"SELECT id, queue, type, attempts, started_at, lease_expires_at, node_id FROM jobs"
		" WHERE state = " S_RUNNING " AND lease_expires_at IS NOT NULL AND ($1::text IS NULL OR queue = $1)"
		" ORDER BY lease_expires_at, seq LIMIT $2";
	char limit[16];
	snprintf(limit, sizeof limit, "%d", max);
	const char *params[] = {queue, limit};
	PGresult *res = pg_reader_query(be, sql, 2, params);
	if (!res)
		return STORE_UNAVAILABLE;
	for (int i = 0; i < PQntuples(res) && *n < max; i++) {
		struct store_lease_info *l = &out[(*n)++];
		memset(l, 0, sizeof *l);
		pg_copy(res, i, 0, l->id, sizeof l->id);
		pg_copy(res, i, 1, l->queue, sizeof l->queue);
		pg_copy(res, i, 2, l->type, sizeof l->type);
		l->attempt = (int)pg_i64(res, i, 3);
		l->started_at = pg_i64(res, i, 4);
		l->expires_at = pg_i64(res, i, 5);
		pg_copy(res, i, 6, l->node, sizeof l->node);
	}
	PQclear(res);
	return STORE_OK;
}

const struct store_backend store_pg_backend = {
	.name = "pg",
	.open = pg_open,
	.close = pg_close,
	.errstr = pg_errstr,
	.begin = pg_begin,
	.commit = pg_commit,
	.rollback = pg_rollback,
	.in_transaction = pg_in_transaction,
	.op_begin = pg_op_begin,
	.op_end = pg_op_end,
	.op_undo = pg_op_undo,
	.apply = {
		[STORE_OP_SUBMIT] = pg_apply_submit,
		[STORE_OP_BATCH] = pg_apply_batch,
		[STORE_OP_CALLBACK] = pg_apply_callback,
		[STORE_OP_FINISH] = pg_apply_finish,
		[STORE_OP_CANCEL] = pg_apply_cancel,
		[STORE_OP_RETRY] = pg_apply_retry,
		[STORE_OP_DELETE] = pg_apply_delete,
		[STORE_OP_PAUSE] = pg_apply_pause,
		[STORE_OP_PING] = pg_apply_ping,
		[STORE_OP_PROBE] = pg_apply_probe,
		[STORE_OP_HEARTBEAT] = pg_apply_heartbeat,
		[STORE_OP_SCHEDULE] = pg_apply_schedule,
		[STORE_OP_FIRE] = pg_apply_fire,
	},
	.promote = pg_promote,
	.ready_queues = pg_ready_queues,
	.claim = pg_claim,
	.next_due = pg_next_due,
	.running = pg_running,
	.lease_mark = pg_lease_mark,
	.expired = pg_expired,
	.sweep = pg_sweep,
	.get_job = pg_get_job,
	.list_jobs = pg_list_jobs,
	.get_queue = pg_get_queue,
	.list_queue_names = pg_list_queue_names,
	.deepest_queues = pg_deepest_queues,
	.state_counts = pg_state_counts,
	.get_batch = pg_get_batch,
	.due_callbacks = pg_due_callbacks,
	.schema_version = pg_version,
	.damaged = pg_damaged,
	.after_writes = pg_after_writes,
	.notice = pg_notice,
	.alone = pg_backend_alone,
	.node_id = pg_backend_node_id,
	.leader = pg_backend_leader,
	.cluster = pg_cluster_info,
	.lock_queue = pg_lock_queue,
	.rate_load = pg_rate_load,
	.rate_save = pg_rate_save,
	.rate_delete = pg_rate_delete,
	.rate_names = pg_rate_names,
	.get_rate = pg_get_rate,
	.list_rates = pg_list_rates,
	.get_schedule = pg_get_schedule,
	.list_schedules = pg_list_schedules,
	.due_schedules = pg_due_schedules,
	.next_schedule = pg_next_schedule,
	.count_schedules = pg_count_schedules,
	.list_leases = pg_list_leases,
};
