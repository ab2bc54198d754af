/* The SQLite schema: its migrations, and how values are spelled on disk.
 * Only store/sqlite*.c include this header. */
#ifndef JOBQ_STORE_SQLITE_SCHEMA_H
#define JOBQ_STORE_SQLITE_SCHEMA_H

#include <sqlite3.h>
#include <stddef.h>

#include "core/job.h"

#define JOBQ_STR_(x) #x
#define JOBQ_STR(x) JOBQ_STR_(x)

/* Integers stored for enums, as SQL literals. Derived from the pinned
 * values in core/job.h, never typed by hand: a partial index
 * (WHERE state = 0) serves only a query that spells the same literal. */
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

/* Runs sql (one or more statements); logs and returns the SQLite code. */
int sqlite_exec(sqlite3 *db, const char *sql);

/* sqlite_exec for start-up: nothing is logged; on failure why gets
 * SQLite's reason (never the SQL) for the caller's one line. */
int sqlite_exec_quiet(sqlite3 *db, const char *sql, char *why, size_t whylen);

/* The number of migrations this release knows: a database it opens ends
 * at this user_version. */
#define SQLITE_SCHEMA_LATEST 8

/* PRAGMA user_version: the number of migrations applied; -1 on failure. */
int sqlite_schema_version(sqlite3 *db);

/* Applies the migrations db lacks, each in its own transaction; returns
 * the SQLite code, with the reason in why when one fails or the schema is
 * newer than this jobqd knows. */
int sqlite_schema_migrate(sqlite3 *db, char *why, size_t whylen);

#endif
