/* The route table: every method and path jobqd serves, its handler, the
 * key's role it needs and whether it takes a JSON body or answers with an
 * ETag. server/http.c matches requests against it (server/route.h). */
#include "handlers/handlers.h"
#include "server/route.h"

/* Public routes: served to anyone, even once API keys are required. They
 * are the dashboard's files, which hold no data: the page loads, then asks
 * for a key when an API call answers 401, and sends it on every call. */
static const struct route routes[] = {
	/* Allow lists methods in table order: GET before POST. */
	/* The dashboard's files hold no data; the page asks for a key. */
	{"GET", "/", dashboard_get, false, ACCESS_PUBLIC, false},
	{"GET", "/app.js", dashboard_get, false, ACCESS_PUBLIC, false},
	{"GET", "/style.css", dashboard_get, false, ACCESS_PUBLIC, false},
	{"GET", "/v1/jobs", jobs_list, false, ACCESS_READ, true},
	{"POST", "/v1/jobs", jobs_create, true, ACCESS_SUBMIT, false},
	{"GET", "/v1/jobs/{id}", jobs_get, false, ACCESS_READ, true},
	{"DELETE", "/v1/jobs/{id}", jobs_delete, false, ACCESS_ADMIN, false},
	{"POST", "/v1/jobs/{id}/cancel", jobs_cancel, false, ACCESS_SUBMIT, false},
	{"POST", "/v1/jobs/{id}/retry", jobs_retry, false, ACCESS_SUBMIT, false},
	{"POST", "/v1/jobs/{id}/heartbeat", leases_heartbeat, true, ACCESS_WORKER, false},
	{"POST", "/v1/jobs/{id}/complete", leases_complete, true, ACCESS_WORKER, false},
	{"POST", "/v1/jobs/{id}/fail", leases_fail, true, ACCESS_WORKER, false},
	{"POST", "/v1/jobs/{id}/release", leases_release, true, ACCESS_WORKER, false},
	{"GET", "/v1/jobs/{id}/events", events_job_stream, false, ACCESS_READ, false},
	{"GET", "/v1/events", events_stream, false, ACCESS_READ, false},
	{"POST", "/v1/batches", batches_create, true, ACCESS_SUBMIT, false},
	{"GET", "/v1/batches/{id}", batches_get, false, ACCESS_READ, false},
	{"POST", "/v1/leases", leases_create, true, ACCESS_WORKER, false},
	{"GET", "/v1/queues", queues_list, false, ACCESS_READ, true},
	{"GET", "/v1/queues/{name}", queues_get, false, ACCESS_READ, true},
	{"POST", "/v1/queues/{name}/pause", queues_pause, false, ACCESS_ADMIN, false},
	{"POST", "/v1/queues/{name}/resume", queues_resume, false, ACCESS_ADMIN, false},
	{"PUT", "/v1/queues/{name}/rate", queues_rate_put, true, ACCESS_ADMIN, false},
	{"DELETE", "/v1/queues/{name}/rate", queues_rate_delete, false, ACCESS_ADMIN, false},
	{"GET", "/v1/schedules", schedules_list, false, ACCESS_READ, false},
	{"POST", "/v1/schedules", schedules_create, true, ACCESS_ADMIN, false},
	{"GET", "/v1/schedules/{name}", schedules_get, false, ACCESS_READ, false},
	{"PUT", "/v1/schedules/{name}", schedules_replace, true, ACCESS_ADMIN, false},
	{"DELETE", "/v1/schedules/{name}", schedules_delete, false, ACCESS_ADMIN, false},
	{"POST", "/v1/schedules/{name}/pause", schedules_pause, false, ACCESS_ADMIN, false},
	{"POST", "/v1/schedules/{name}/resume", schedules_resume, false, ACCESS_ADMIN, false},
	{"POST", "/v1/schedules/{name}/run", schedules_run, false, ACCESS_SUBMIT, false},
	{"GET", "/v1/info", system_info, false, ACCESS_READ, false},
	{"GET", "/v1/cluster", system_cluster, false, ACCESS_READ, false},
	{"GET", "/healthz", system_healthz, false, ACCESS_PUBLIC, false},
	{"GET", "/readyz", system_readyz, false, ACCESS_PUBLIC, false},
	{"GET", "/openapi.yaml", system_openapi, false, ACCESS_PUBLIC, false},
	{"GET", "/metrics", metrics_get, false, ACCESS_METRICS, false},
	/* Actions on the jobs a filter selects (handlers/bulk.c): the roles
	 * of the single-job actions. */
	{"POST", "/v1/jobs/cancel", jobs_bulk_cancel, true, ACCESS_SUBMIT, false},
	{"POST", "/v1/jobs/retry", jobs_bulk_retry, true, ACCESS_SUBMIT, false},
	{"POST", "/v1/jobs/delete", jobs_bulk_delete, true, ACCESS_ADMIN, false},
	/* The leases external workers hold now (handlers/workers.c). */
	{"GET", "/v1/leases", leases_list, false, ACCESS_READ, false},
};

const struct route *routes_table(size_t *n)
{
	*n = sizeof routes / sizeof routes[0];
	return routes;
}
