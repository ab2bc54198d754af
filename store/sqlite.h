/* What only the SQLite backend offers, for its own tests. */
#ifndef JOBQ_STORE_SQLITE_H
#define JOBQ_STORE_SQLITE_H

#include "store/store.h"

/* The plan SQLite chose for a query the store runs, one detail per line
 * ("claim", "promote", "next_due", "sweep", "oldest_queued", "list_state",
 * "list_queue", "list_type", "list_all", the combined filters the dashboard
 * offers "list_state_queue", "list_state_type", "list_queue_type",
 * "list_state_queue_type", and first pages without a cursor
 * "list_first_page", "list_state_queue_first_page"); for tests that guard
 * the indexes. NULL when st is not a SQLite store or the name is unknown.
 * The caller frees the string. */
char *store_explain(struct store *st, const char *query);

#endif
