/* The process-wide context handed to every handler. Built by main before
 * the HTTP server starts; its pointers stay valid until after it stops. */
#ifndef JOBQ_APP_H
#define JOBQ_APP_H

#include <stdatomic.h>

#include "core/events.h"
#include "core/hub.h"
#include "core/meter.h"
#include "core/metrics.h"
#include "core/run.h"
#include "server/config.h"
#include "store/store.h"

struct app {
	const struct config *cfg;
	struct store *store;
	struct hub *hub;
	struct run_table *runs;
	struct meter *finished;   /* jobs finished per queue, last minute */
	struct events *events;    /* recent transitions, for event streams */
	struct metrics *metrics;  /* counters and histograms for GET /metrics */
	atomic_bool stopping;     /* set on SIGTERM: refuse new work */
};

#endif
