/* The worker pool: a dispatcher thread that claims runnable jobs from the
 * store in batches (the free workers plus a small claimed-ahead buffer),
 * and N worker threads that run them and post the outcome to the store
 * without waiting for its commit. Workers never see an HTTP request. */
#ifndef JOBQ_POOL_H
#define JOBQ_POOL_H

#include "core/run.h"
#include "store/store.h"

struct pool;

/* A cap on how many jobs of one queue run at once. */
struct pool_queue_limit {
	const char *name;
	int limit;
};

/* Starts the dispatcher and nworkers workers; NULL on failure. The store,
 * the run table and the limits' names must outlive the pool. */
struct pool *pool_start(struct store *st, struct run_table *runs, int nworkers,
                        const struct pool_queue_limit *limits, int nlimits);

/* New jobs may be runnable: wake the dispatcher. Any thread; never blocks
 * for long (it is called on the store writer thread). */
void pool_notify(struct pool *pool);

/* Stops claiming, puts buffered jobs no idle worker is about to take back
 * in the queue (without spending an attempt), lets running jobs finish for
 * up to grace_ms, then asks the rest to stop (they go back to the queue
 * without spending an attempt too) and waits for the workers. pool_notify stays safe to call until
 * pool_free. NULL is a no-op. */
void pool_stop(struct pool *pool, int64_t grace_ms);

/* Frees a stopped pool, once nothing can call pool_notify (the store is
 * closed). NULL is a no-op. */
void pool_free(struct pool *pool);

#endif
