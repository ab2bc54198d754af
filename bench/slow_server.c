/* slow_server: a loopback HTTP server that answers every request after a
 * fixed delay, holding thousands of connections with one thread
 * (libmicrohttpd, epoll, suspend/resume). For bench/http_jobs.sh.
 *
 *   slow_server [DELAY_MS]          (default 1000)
 * Prints "slow_server: listening on http://127.0.0.1:PORT" and serves
 *   GET /stats  {"requests", "answered", "in_flight", "max_in_flight",
 *                "first_ms", "last_ms"}  (monotonic ms of the first request
 *                and the last answer), at once
 *   anything    200 {"ok":true} after DELAY_MS
 * until SIGTERM or SIGINT. Loopback only. */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>

#include <microhttpd.h>

#define TICK_MS 2
#define MAX_CONNECTIONS 60000u

/* One request waiting for its answer. Every request has the same delay,
 * so the waiting list is a FIFO ordered by due time. */
struct waiting {
	struct MHD_Connection *conn;
	int64_t due;
	bool suspended, resumed;
	struct waiting *next;
};

static struct {
	int64_t delay_ms;
	pthread_mutex_t mu;          /* guards head, tail, stopping */
	struct waiting *head, *tail;
	bool stopping;
	atomic_long requests, answered;
	atomic_long in_flight, max_in_flight;
	atomic_llong first_ms, last_ms;
} S = {.mu = PTHREAD_MUTEX_INITIALIZER};

static int64_t mono_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static enum MHD_Result reply(struct MHD_Connection *c, const char *body)
{
	struct MHD_Response *r = MHD_create_response_from_buffer(strlen(body), (void *)body,
	                                                         MHD_RESPMEM_MUST_COPY);
	MHD_add_response_header(r, "Content-Type", "application/json");
	enum MHD_Result ret = MHD_queue_response(c, 200, r);
	MHD_destroy_response(r);
	return ret;
}

static enum MHD_Result stats(struct MHD_Connection *c)
{
	char body[256];
	snprintf(body, sizeof body,
	         "{\"requests\":%ld,\"answered\":%ld,\"in_flight\":%ld,\"max_in_flight\":%ld,"
	         "\"first_ms\":%lld,\"last_ms\":%lld}",
	         atomic_load(&S.requests), atomic_load(&S.answered), atomic_load(&S.in_flight),
	         atomic_load(&S.max_in_flight), atomic_load(&S.first_ms), atomic_load(&S.last_ms));
	return reply(c, body);
}

static enum MHD_Result answer(void *cls, struct MHD_Connection *c, const char *url,
                              const char *method, const char *version, const char *upload,
                              size_t *upload_size, void **con_cls)
{
	(void)cls;
	(void)method;
	(void)version;
	(void)upload;
	struct waiting *w = *con_cls;
	if (strcmp(url, "/stats") == 0)
		return stats(c);
	if (!w) {
		if (!(w = calloc(1, sizeof *w)))
			return MHD_NO;
		*con_cls = w;
		return MHD_YES;
	}
	if (*upload_size) {
		*upload_size = 0; /* bodies are ignored */
		return MHD_YES;
	}
	if (w->resumed) {
		int64_t now = mono_ms();
		atomic_fetch_sub(&S.in_flight, 1);
		atomic_fetch_add(&S.answered, 1);
		atomic_store(&S.last_ms, now);
		return reply(c, "{\"ok\":true}");
	}
	if (w->suspended)
		return MHD_YES;
	int64_t now = mono_ms();
	long long zero = 0;
	atomic_compare_exchange_strong(&S.first_ms, &zero, now);
	atomic_fetch_add(&S.requests, 1);
	long n = atomic_fetch_add(&S.in_flight, 1) + 1, max = atomic_load(&S.max_in_flight);
	while (n > max && !atomic_compare_exchange_weak(&S.max_in_flight, &max, n))
		;
	w->conn = c;
	w->due = now + S.delay_ms;
	w->suspended = true;
	MHD_suspend_connection(c);
	pthread_mutex_lock(&S.mu);
	if (S.tail)
		S.tail->next = w;
	else
		S.head = w;
	S.tail = w;
	pthread_mutex_unlock(&S.mu);
	return MHD_YES;
}

static void completed(void *cls, struct MHD_Connection *c, void **con_cls,
                      enum MHD_RequestTerminationCode toe)
{
	(void)cls;
	(void)c;
	(void)toe;
	free(*con_cls);
	*con_cls = NULL;
}

/* Resumes the requests whose delay is over. */
static void *timer_main(void *arg)
{
	(void)arg;
	struct timespec tick = {0, TICK_MS * 1000000L};
	for (;;) {
		pthread_mutex_lock(&S.mu);
		if (S.stopping) {
			pthread_mutex_unlock(&S.mu);
			return NULL;
		}
		int64_t now = mono_ms();
		while (S.head && S.head->due <= now) {
			struct waiting *w = S.head;
			S.head = w->next;
			if (!S.head)
				S.tail = NULL;
			w->resumed = true;
			MHD_resume_connection(w->conn);
		}
		pthread_mutex_unlock(&S.mu);
		nanosleep(&tick, NULL);
	}
}

int main(int argc, char **argv)
{
	S.delay_ms = argc > 1 ? atoll(argv[1]) : 1000;
	if (S.delay_ms < 0 || S.delay_ms > 600000) {
		fprintf(stderr, "usage: slow_server [DELAY_MS 0..600000]\n");
		return 2;
	}
	sigset_t sigs;
	sigemptyset(&sigs);
	sigaddset(&sigs, SIGTERM);
	sigaddset(&sigs, SIGINT);
	pthread_sigmask(SIG_BLOCK, &sigs, NULL);
	signal(SIGPIPE, SIG_IGN);

	struct sockaddr_in sa = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	struct MHD_Daemon *d = MHD_start_daemon(
	        MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_EPOLL | MHD_ALLOW_SUSPEND_RESUME, 0, NULL, NULL,
	        answer, NULL, MHD_OPTION_SOCK_ADDR, (struct sockaddr *)&sa,
	        MHD_OPTION_NOTIFY_COMPLETED, completed, NULL,
	        MHD_OPTION_CONNECTION_LIMIT, MAX_CONNECTIONS,
	        MHD_OPTION_LISTEN_BACKLOG_SIZE, 4096u,
	        MHD_OPTION_CONNECTION_TIMEOUT, 120u, MHD_OPTION_END);
	if (!d) {
		fprintf(stderr, "slow_server: cannot start\n");
		return 1;
	}
	const union MHD_DaemonInfo *info = MHD_get_daemon_info(d, MHD_DAEMON_INFO_BIND_PORT);
	pthread_t timer;
	if (!info || pthread_create(&timer, NULL, timer_main, NULL) != 0) {
		MHD_stop_daemon(d);
		return 1;
	}
	printf("slow_server: listening on http://127.0.0.1:%u\n", (unsigned)info->port);
	fflush(stdout);

	int sig;
	sigwait(&sigs, &sig);
	pthread_mutex_lock(&S.mu);
	S.stopping = true;
	/* Answer what still waits, so MHD can close it. */
	for (struct waiting *w = S.head; w; w = w->next) {
		w->resumed = true;
		MHD_resume_connection(w->conn);
	}
	S.head = S.tail = NULL;
	pthread_mutex_unlock(&S.mu);
	pthread_join(timer, NULL);
	MHD_stop_daemon(d);
	return 0;
}
