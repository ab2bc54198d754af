/* The PostgreSQL schema: its migrations, and how values are spelled in
 * it. Only store/pg*.c include this header. */
#ifndef JOBQ_STORE_PG_SCHEMA_H
#define JOBQ_STORE_PG_SCHEMA_H

#include <libpq-fe.h>
#include <stddef.h>

#include "core/job.h"

#ifndef JOBQ_STR
#define JOBQ_STR_(x) #x
#define JOBQ_STR(x) JOBQ_STR_(x)
#endif

/* Integers stored for enums, as SQL literals, as in SQLite's schema: a
 * partial index (WHERE state = 0) serves only a query that spells the
 * same literal. */
#ifndef S_QUEUED
#define S_QUEUED JOBQ_STR(JOB_QUEUED_V)
#define S_RUNNING JOBQ_STR(JOB_RUNNING_V)
#define S_SUCCEEDED JOBQ_STR(JOB_SUCCEEDED_V)
#define S_FAILED JOBQ_STR(JOB_FAILED_V)
#define S_CANCELED JOBQ_STR(JOB_CANCELED_V)
#define S_SCHEDULED JOBQ_STR(JOB_SCHEDULED_V)
#define S_BLOCKED JOBQ_STR(JOB_BLOCKED_V)
#define S_FINISHED S_SUCCEEDED ", " S_FAILED ", " S_CANCELED   /* for IN (...) */
#define S_WAITING S_QUEUED ", " S_RUNNING ", " S_SCHEDULED ", " S_BLOCKED   /* not finished */
#define S_PENDING JOBQ_STR(DELIVERY_PENDING_V)
#endif

/* The number of migrations this release knows: a schema it opens ends at
 * this version (meta key 'schema_version'). */
#define PG_SCHEMA_LATEST 5

/* Creates the schema if it is missing and applies the migrations it
 * lacks, all in one transaction under a transaction advisory lock keyed on
 * the schema, so that two jobqd starting together migrate once. conn's
 * search_path names the schema already. Returns 0, or -1 with the reason
 * in why (the server's message, never the SQL or the conninfo). */
int pg_schema_migrate(PGconn *conn, const char *schema, char *why, size_t whylen);

/* The schema version (meta's 'schema_version'); -1 on failure, 0 when
 * there is none. */
int pg_schema_version(PGconn *conn);

/* A 64-bit advisory lock key for what ("migrate", "node", "queue") on name:
 * FNV-1a of "jobq:<what>:<schema>". */
int64_t pg_lock_key(const char *what, const char *schema);

#endif
