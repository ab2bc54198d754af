/* The PostgreSQL schema: SQLite's schema at its version 5
 * (store/sqlite_schema.c) as migration 1, same tables, columns, indexes and
 * meanings, and the migrations after it. */
#include "store/pg_schema.h"
#include "store/pg.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/hash.h"
#include "core/log.h"

/* The per-row counts, as SQLite's triggers keep them, but once per
 * statement: a claim of 100 jobs changes each (queue, state) count once,
 * not 200 times. An UPDATE that moves no job between states nets to
 * nothing and writes nothing. Each function pins its search_path, so a
 * session that does not name the schema still keeps the counts. */
#define COUNT_DELTA(TABLE, KEY, ROWS) \
	"  INSERT INTO " TABLE " (" KEY ", state, n)" \
	"    SELECT " KEY ", state, sum(d) FROM (" ROWS ") AS r" \
	"    GROUP BY " KEY ", state HAVING sum(d) <> 0" \
	"    ON CONFLICT (" KEY ", state) DO UPDATE SET n = " TABLE ".n + excluded.n;"

/* Version 1 is SQLite's five in one, in parts (a C string has a length
 * limit); each migration is a NULL-terminated list of parts run in order.
 * Never edit one that has shipped: append a new one. */
static const char *const migration_1[] = {
	/* Text keys compare as bytes (COLLATE "C"), as SQLite's do: queue
	 * names are listed and taken in turn in byte order. Every integer is
	 * bigint, every REAL double precision; times are unix ms from jobqd's
	 * clock, never the server's. */
	"CREATE TABLE meta (key text COLLATE \"C\" PRIMARY KEY, value text);"
	"CREATE TABLE jobs ("
	"  seq bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,"
	"  id text COLLATE \"C\" NOT NULL UNIQUE,"
	"  type text COLLATE \"C\" NOT NULL,"
	"  queue text COLLATE \"C\" NOT NULL,"
	"  priority bigint NOT NULL DEFAULT 0,"
	"  state bigint NOT NULL,"                  /* enum job_state */
	"  payload text,"
	"  result text,"
	"  error text,"
	"  progress_percent double precision,"
	"  progress_message text,"
	"  attempts bigint NOT NULL DEFAULT 0,"
	"  created_at bigint NOT NULL,"             /* unix ms */
	"  started_at bigint,"
	"  finished_at bigint,"
	"  max_attempts bigint NOT NULL DEFAULT 3,"
	"  backoff_s double precision NOT NULL DEFAULT 1,"
	"  max_backoff_s double precision NOT NULL DEFAULT 300,"
	"  timeout_s double precision NOT NULL DEFAULT 3600,"
	"  retention_s double precision NOT NULL DEFAULT 604800,"
	"  run_at bigint NOT NULL DEFAULT 0,"
	"  expires_at bigint,"                      /* unix ms; set when finished */
	"  idem_key text COLLATE \"C\","
	"  idem_hash text,"
	"  batch_id text COLLATE \"C\","
	"  callback_url text,"
	"  callback_state bigint,"                  /* NULL, 0 pending, 1 delivered, 2 failed */
	"  callback_attempts bigint NOT NULL DEFAULT 0,"
	"  callback_next_at bigint,"                /* unix ms, while pending */
	"  callback_status bigint,"
	"  callback_error text,"
	/* A running job with a lease_id is run by an external worker until
	 * lease_expires_at (a lease of lease_ms); a canceled one keeps its
	 * lease_id, without an expiry, until the worker's heartbeat learns of
	 * the cancel. */
	"  lease_id text COLLATE \"C\","
	"  lease_expires_at bigint,"
	"  lease_ms bigint)"
	/* Every job row is updated a few times and deleted in the end:
	 * vacuum it after 2% of it changed (not the default 20%), in small
	 * steps; room in each page for an update to stay there. */
	" WITH (fillfactor = 90, autovacuum_vacuum_scale_factor = 0.02, autovacuum_vacuum_threshold = 1000,"
	"  autovacuum_vacuum_insert_scale_factor = 0.02, autovacuum_analyze_scale_factor = 0.02,"
	"  autovacuum_vacuum_cost_delay = 1);"
	,
	"CREATE INDEX jobs_by_state ON jobs (state, seq);"
	"CREATE INDEX jobs_by_queue ON jobs (queue, seq);"
	"CREATE INDEX jobs_by_type ON jobs (type, seq);"
	"CREATE INDEX jobs_ready ON jobs (queue, priority DESC, seq) WHERE state = " S_QUEUED ";"
	"CREATE INDEX jobs_queued_since ON jobs (queue, run_at) WHERE state = " S_QUEUED ";"
	"CREATE INDEX jobs_scheduled ON jobs (run_at) WHERE state = " S_SCHEDULED ";"
	"CREATE INDEX jobs_expiry ON jobs (expires_at) WHERE expires_at IS NOT NULL;"
	"CREATE UNIQUE INDEX jobs_idem ON jobs (idem_key) WHERE idem_key IS NOT NULL;"
	"CREATE INDEX jobs_batch ON jobs (batch_id, seq) WHERE batch_id IS NOT NULL;"
	"CREATE INDEX jobs_callback_due ON jobs (callback_next_at) WHERE callback_state = " S_PENDING ";"
	"CREATE INDEX jobs_lease_expiry ON jobs (lease_expires_at)"
	"  WHERE state = " S_RUNNING " AND lease_expires_at IS NOT NULL;"
	,
	"CREATE TABLE job_attempts ("
	"  job_seq bigint NOT NULL,"
	"  attempt bigint NOT NULL,"
	"  started_at bigint,"
	"  finished_at bigint,"
	"  outcome text NOT NULL,"
	"  error text,"
	"  PRIMARY KEY (job_seq, attempt))"
	" WITH (autovacuum_vacuum_scale_factor = 0.02, autovacuum_vacuum_threshold = 1000,"
	"  autovacuum_vacuum_insert_scale_factor = 0.02);"
	"CREATE TABLE queues (name text COLLATE \"C\" PRIMARY KEY, paused bigint NOT NULL DEFAULT 0);"
	/* The counts: one row per (queue, state) updated by nearly every
	 * transaction. Half-empty pages keep the updates HOT; a vacuum every
	 * few hundred dead rows keeps the table a page or two. */
	"CREATE TABLE queue_counts ("
	"  queue text COLLATE \"C\" NOT NULL, state bigint NOT NULL, n bigint NOT NULL,"
	"  PRIMARY KEY (queue, state))"
	" WITH (fillfactor = 50, autovacuum_vacuum_scale_factor = 0, autovacuum_vacuum_threshold = 200,"
	"  autovacuum_analyze_scale_factor = 0.2, autovacuum_vacuum_cost_delay = 0);"
	"CREATE TABLE batches ("
	"  id text COLLATE \"C\" PRIMARY KEY, created_at bigint NOT NULL, total bigint NOT NULL,"
	"  finished_at bigint, callback_url text, callback_state bigint,"
	"  callback_attempts bigint NOT NULL DEFAULT 0, callback_next_at bigint,"
	"  callback_status bigint, callback_error text,"
	"  idem_key text COLLATE \"C\", idem_hash text);"
	"CREATE INDEX batches_callback_due ON batches (callback_next_at) WHERE callback_state = " S_PENDING ";"
	"CREATE UNIQUE INDEX batches_idem ON batches (idem_key) WHERE idem_key IS NOT NULL;"
	"CREATE TABLE batch_counts ("
	"  batch_id text COLLATE \"C\" NOT NULL, state bigint NOT NULL, n bigint NOT NULL,"
	"  PRIMARY KEY (batch_id, state))"
	" WITH (fillfactor = 50, autovacuum_vacuum_scale_factor = 0, autovacuum_vacuum_threshold = 200,"
	"  autovacuum_analyze_scale_factor = 0.2, autovacuum_vacuum_cost_delay = 0);"
	,
	"CREATE FUNCTION jobs_count_insert() RETURNS trigger LANGUAGE plpgsql"
	"  SET search_path FROM CURRENT AS $$ BEGIN"
	COUNT_DELTA("queue_counts", "queue", "SELECT queue, state, 1 AS d FROM new_rows")
	COUNT_DELTA("batch_counts", "batch_id", "SELECT batch_id, state, 1 AS d FROM new_rows WHERE batch_id IS NOT NULL")
	"  RETURN NULL; END $$;"
	"CREATE FUNCTION jobs_count_delete() RETURNS trigger LANGUAGE plpgsql"
	"  SET search_path FROM CURRENT AS $$ BEGIN"
	"  UPDATE queue_counts c SET n = c.n - o.n FROM (SELECT queue, state, count(*) AS n FROM old_rows"
	"    GROUP BY queue, state) AS o WHERE c.queue = o.queue AND c.state = o.state;"
	"  UPDATE batch_counts c SET n = c.n - o.n FROM (SELECT batch_id, state, count(*) AS n FROM old_rows"
	"    WHERE batch_id IS NOT NULL GROUP BY batch_id, state) AS o"
	"    WHERE c.batch_id = o.batch_id AND c.state = o.state;"
	"  RETURN NULL; END $$;"
	"CREATE FUNCTION jobs_count_update() RETURNS trigger LANGUAGE plpgsql"
	"  SET search_path FROM CURRENT AS $$ BEGIN"
	COUNT_DELTA("queue_counts", "queue",
	            "SELECT queue, state, -1 AS d FROM old_rows UNION ALL SELECT queue, state, 1 FROM new_rows")
	COUNT_DELTA("batch_counts", "batch_id",
	            "SELECT batch_id, state, -1 AS d FROM old_rows WHERE batch_id IS NOT NULL"
	            " UNION ALL SELECT batch_id, state, 1 FROM new_rows WHERE batch_id IS NOT NULL")
	"  RETURN NULL; END $$;"
	,
	"CREATE TRIGGER jobs_count_insert AFTER INSERT ON jobs REFERENCING NEW TABLE AS new_rows"
	"  FOR EACH STATEMENT EXECUTE FUNCTION jobs_count_insert();"
	"CREATE TRIGGER jobs_count_delete AFTER DELETE ON jobs REFERENCING OLD TABLE AS old_rows"
	"  FOR EACH STATEMENT EXECUTE FUNCTION jobs_count_delete();"
	"CREATE TRIGGER jobs_count_update AFTER UPDATE ON jobs REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows"
	"  FOR EACH STATEMENT EXECUTE FUNCTION jobs_count_update();",
	NULL,
};

/* Version 2: many jobqd on one schema (issue 14). A running attempt
 * records the node that runs it (or granted its lease), so a dead node's
 * attempts can be told apart and fenced; a cancel of an attempt another
 * node runs leaves cancel_at for that node to see. Each jobqd has a row in
 * nodes for its life, and one of them holds the leader row. Times in
 * nodes and leader are the database server's clock (the one clock every
 * node shares); times in jobs stay each jobqd's. */
static const char *const migration_2[] = {
	"ALTER TABLE jobs ADD COLUMN node_id text COLLATE \"C\", ADD COLUMN cancel_at bigint;"
	"CREATE INDEX jobs_running_node ON jobs (node_id) WHERE state = " S_RUNNING ";"
	/* Updated every second by each node: half-empty pages keep the
	 * updates HOT, frequent vacuum keeps the table a page. */
	"CREATE TABLE nodes ("
	"  id text COLLATE \"C\" PRIMARY KEY,"
	"  lock_key bigint NOT NULL,"              /* its session advisory lock, held for its life */
	"  host text, pid bigint,"
	"  pidns text,"                            /* its PID namespace: a pid means something only in it */
	"  started_at bigint NOT NULL,"            /* server ms */
	"  heartbeat_at bigint NOT NULL,"          /* server ms */
	"  dead_at bigint)"                        /* server ms: declared dead, its attempts rescued */
	" WITH (fillfactor = 50, autovacuum_vacuum_scale_factor = 0, autovacuum_vacuum_threshold = 100);"
	"CREATE TABLE leader ("
	"  name text COLLATE \"C\" PRIMARY KEY,"
	"  node_id text COLLATE \"C\" NOT NULL,"
	"  since bigint NOT NULL,"                 /* server ms */
	"  expires_at bigint NOT NULL)"            /* server ms */
	" WITH (fillfactor = 50, autovacuum_vacuum_scale_factor = 0, autovacuum_vacuum_threshold = 100);",
	NULL,
};

/* Version 3: per-queue rate limits (core/bucket.h), as SQLite's 6. The
 * row is read and written under the queue's lock by every claim of the
 * queue on any node: half-empty pages keep the updates HOT. Times are
 * jobqd's clock (unix ms), as in jobs. */
static const char *const migration_3[] = {
	"CREATE TABLE queue_rates ("
	"  queue text COLLATE \"C\" PRIMARY KEY,"
	"  rate_limit double precision NOT NULL,"
	"  period_ms bigint NOT NULL,"
	"  burst double precision NOT NULL,"
	"  retry_after bigint NOT NULL DEFAULT 0,"
	"  tokens double precision NOT NULL,"
	"  refilled_at bigint NOT NULL,"
	"  paused_until bigint NOT NULL DEFAULT 0)"
	" WITH (fillfactor = 50, autovacuum_vacuum_scale_factor = 0, autovacuum_vacuum_threshold = 200);",
	NULL,
};

/* Version 4: dependencies, as SQLite's 7. A blocked job (state 6) waits
 * for deps_pending parents; job_deps holds its edges (resolved once the
 * parent's end was applied) and goes with the child job. */
static const char *const migration_4[] = {
	"ALTER TABLE jobs ADD COLUMN depends_on text, ADD COLUMN dep_policy bigint NOT NULL DEFAULT 0,"
	"  ADD COLUMN deps_pending bigint NOT NULL DEFAULT 0;"
	"CREATE TABLE job_deps ("
	"  child text COLLATE \"C\" NOT NULL REFERENCES jobs (id) ON DELETE CASCADE,"
	"  parent text COLLATE \"C\" NOT NULL,"
	"  resolved bigint NOT NULL DEFAULT 0,"
	"  PRIMARY KEY (child, parent));"
	"CREATE INDEX job_deps_waiting ON job_deps (parent) WHERE resolved = 0;",
	NULL,
};

/* Version 5: schedules. spec is the definition (core/schedule.h's stored
 * form); next_fire_at is NULL while paused or when it never fires again.
 * A fired job names its schedule and fire time, unique together: one fire
 * can never make two jobs, whichever node fires it. */
static const char *const migration_5[] = {
	"CREATE TABLE schedules ("
	"  name text COLLATE \"C\" PRIMARY KEY,"
	"  spec text NOT NULL,"
	"  next_fire_at bigint,"
	"  last_fire_at bigint,"
	"  paused boolean NOT NULL DEFAULT false,"
	"  created_at bigint NOT NULL,"
	"  updated_at bigint NOT NULL);"
	"CREATE INDEX schedules_due ON schedules (next_fire_at) WHERE next_fire_at IS NOT NULL;"
	"ALTER TABLE jobs ADD COLUMN schedule_name text COLLATE \"C\", ADD COLUMN schedule_fire_at bigint;"
	"CREATE UNIQUE INDEX jobs_schedule_fire ON jobs (schedule_name, schedule_fire_at)"
	"  WHERE schedule_name IS NOT NULL;",
	NULL,
};

static const char *const *const migrations[] = {migration_1, migration_2, migration_3, migration_4, migration_5};

_Static_assert(sizeof migrations / sizeof migrations[0] == PG_SCHEMA_LATEST,
               "PG_SCHEMA_LATEST counts the migrations");

int64_t pg_lock_key(const char *what, const char *schema)
{
	char text[160];
	snprintf(text, sizeof text, "jobq:%s:%s", what, schema);
	uint64_t h = hash_str(text); /* FNV-1a: the same key as every earlier jobqd */
	int64_t key;
	memcpy(&key, &h, sizeof key);
	return key;
}

/* Runs sql (text parameters); *out gets a successful result (the caller
 * clears it) or NULL. -1 with why on failure. */
static int run(PGconn *conn, const char *sql, int n, const char *const *params, PGresult **out, char *why,
               size_t whylen)
{
	PGresult *r = n > 0 ? PQexecParams(conn, sql, n, NULL, params, NULL, NULL, 0) : PQexec(conn, sql);
	ExecStatusType s = PQresultStatus(r);
	if (s != PGRES_COMMAND_OK && s != PGRES_TUPLES_OK) {
		pg_message(conn, r, why, whylen);
		PQclear(r);
		if (out)
			*out = NULL;
		return -1;
	}
	if (out)
		*out = r;
	else
		PQclear(r);
	return 0;
}

/* The version inside a transaction: 0 when meta does not exist yet. */
static int version_in(PGconn *conn, char *why, size_t whylen)
{
	PGresult *r = NULL;
	if (run(conn, "SELECT to_regclass('meta') IS NOT NULL", 0, NULL, &r, why, whylen) != 0)
		return -1;
	bool have_meta = PQntuples(r) == 1 && strcmp(PQgetvalue(r, 0, 0), "t") == 0;
	PQclear(r);
	if (!have_meta)
		return 0;
	if (run(conn, "SELECT value FROM meta WHERE key = 'schema_version'", 0, NULL, &r, why, whylen) != 0)
		return -1;
	int v = PQntuples(r) == 1 ? atoi(PQgetvalue(r, 0, 0)) : 0;
	PQclear(r);
	return v;
}

int pg_schema_version(PGconn *conn)
{
	char why[256];
	PGresult *r = NULL;
	if (run(conn, "SELECT value FROM meta WHERE key = 'schema_version'", 0, NULL, &r, why, sizeof why) != 0)
		return -1;
	int v = PQntuples(r) == 1 ? atoi(PQgetvalue(r, 0, 0)) : 0;
	PQclear(r);
	return v;
}

int pg_schema_migrate(PGconn *conn, const char *schema, char *why, size_t whylen)
{
	int want = (int)(sizeof migrations / sizeof migrations[0]);
	char key[32], create[128];
	snprintf(key, sizeof key, "%lld", (long long)pg_lock_key("migrate", schema));
	snprintf(create, sizeof create, "CREATE SCHEMA IF NOT EXISTS \"%s\"", schema);
	const char *kp[] = {key}, *sp[] = {schema};
	PGresult *r = NULL;
	if (run(conn, "BEGIN", 0, NULL, NULL, why, whylen) != 0)
		return -1;
	if (run(conn, "SELECT pg_advisory_xact_lock($1::bigint)", 1, kp, NULL, why, whylen) != 0 ||
	    run(conn, "SELECT 1 FROM pg_namespace WHERE nspname = $1", 1, sp, &r, why, whylen) != 0)
		goto fail;
	/* Only when missing: CREATE SCHEMA asks for the database's CREATE
	 * privilege even when the schema exists. */
	bool exists = PQntuples(r) == 1;
	PQclear(r);
	if (!exists && run(conn, create, 0, NULL, NULL, why, whylen) != 0)
		goto fail;
	int have = version_in(conn, why, whylen);
	if (have < 0)
		goto fail;
	if (have > want) {
		snprintf(why, whylen, "its schema version %d is newer than this jobqd knows (%d)", have, want);
		goto fail;
	}
	for (int v = have; v < want; v++) {
		char bump[160];
		snprintf(bump, sizeof bump, "INSERT INTO meta (key, value) VALUES ('schema_version', '%d')"
		         " ON CONFLICT (key) DO UPDATE SET value = excluded.value", v + 1);
		for (const char *const *part = migrations[v]; *part; part++)
			if (run(conn, *part, 0, NULL, NULL, why, whylen) != 0)
				goto fail;
		if (run(conn, bump, 0, NULL, NULL, why, whylen) != 0)
			goto fail;
	}
	if (run(conn, "COMMIT", 0, NULL, NULL, why, whylen) != 0)
		goto fail;
	if (want > have)
		log_info("schema %s migrated to version %d", schema, want);
	return 0;
fail:
	PQclear(PQexec(conn, "ROLLBACK"));
	return -1;
}
