/* waiters: N clients long-poll one running job at once; reports jobqd's
 * memory per waiting connection and how long after the job finished the
 * last of them was answered. Raw non-blocking sockets and epoll, so one
 * process holds every connection. Loopback only.
 *
 * The client shares the machine's cores with jobqd, so what it does per
 * answer is kept to one read: each socket is watched once (EPOLLONESHOT, no
 * EPOLL_CTL_DEL) and closed only after the last answer, so the burst times
 * jobqd's answers and not the teardown of 10,000 connections on both
 * sides (WAITERS_CLOSE_EACH=1 closes each one as it is answered, as this
 * client did before).
 *
 *   waiters PORT JOB_ID N JOBQD_PID
 * The job must still be running for a while (e.g. a sleep of a few s). */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

static double now_s(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static long rss_kb(const char *pid)
{
	char path[64], line[256];
	snprintf(path, sizeof path, "/proc/%s/status", pid);
	FILE *f = fopen(path, "r");
	long kb = -1;
	while (f && fgets(line, sizeof line, f))
		if (sscanf(line, "VmRSS: %ld", &kb) == 1)
			break;
	if (f)
		fclose(f);
	return kb;
}

int main(int argc, char **argv)
{
	if (argc != 5) {
		fprintf(stderr, "usage: waiters PORT JOB_ID N JOBQD_PID\n");
		return 2;
	}
	int port = atoi(argv[1]), n = atoi(argv[3]);
	const char *close_each = getenv("WAITERS_CLOSE_EACH");
	int oneshot = !(close_each && strcmp(close_each, "1") == 0);
	const char *id = argv[2], *pid = argv[4];
	struct rlimit rl;
	getrlimit(RLIMIT_NOFILE, &rl);
	rl.rlim_cur = rl.rlim_max;
	setrlimit(RLIMIT_NOFILE, &rl);

	char req[256];
	int reqlen = snprintf(req, sizeof req, "GET /v1/jobs/%s?wait=60 HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n", id);
	struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
	inet_pton(AF_INET, "127.0.0.1", &sa.sin_addr);
	int ep = epoll_create1(0);
	int *fds = calloc((size_t)n, sizeof *fds);
	long before = rss_kb(pid);
	int connected = 0;
	for (int i = 0; i < n; i++) {
		fds[i] = socket(AF_INET, SOCK_STREAM, 0);
		if (fds[i] < 0 || connect(fds[i], (struct sockaddr *)&sa, sizeof sa) != 0 ||
		    write(fds[i], req, (size_t)reqlen) != reqlen) {
			fprintf(stderr, "waiters: connection %d: %s\n", i, strerror(errno));
			break;
		}
		fcntl(fds[i], F_SETFL, O_NONBLOCK);
		struct epoll_event ev = {.events = EPOLLIN | (oneshot ? EPOLLONESHOT : 0u), .data.u32 = (uint32_t)i};
		epoll_ctl(ep, EPOLL_CTL_ADD, fds[i], &ev);
		connected++;
	}
	/* Let jobqd read every request and suspend it. */
	struct timespec settle = {.tv_sec = 0, .tv_nsec = 500 * 1000000L};
	nanosleep(&settle, NULL);
	long during = rss_kb(pid);

	int answered = 0, ok = 0;
	double last = 0;
	char buf[4096];
	struct epoll_event evs[256];
	double give_up = now_s() + 90;
	while (answered < connected && now_s() < give_up) {
		int k = epoll_wait(ep, evs, 256, 1000);
		for (int j = 0; j < k; j++) {
			int i = (int)evs[j].data.u32;
			ssize_t got = read(fds[i], buf, sizeof buf - 1);
			if (got > 0) {
				buf[got] = '\0';
				ok += strstr(buf, "\"state\":\"succeeded\"") != NULL;
				last = now_s();
			}
			if (!oneshot) {
				epoll_ctl(ep, EPOLL_CTL_DEL, fds[i], NULL);
				close(fds[i]);
			}
			answered++;
		}
	}
	for (int i = 0; oneshot && i < connected; i++)
		close(fds[i]);
	printf("{\"waiters\":%d,\"answered\":%d,\"succeeded\":%d,\"rss_before_kb\":%ld,"
	       "\"rss_waiting_kb\":%ld,\"kb_per_waiter\":%.2f,\"last_answer_unix\":%.3f}\n",
	       connected, answered, ok, before, during,
	       connected ? (double)(during - before) / connected : 0, last);
	return answered == connected && ok == connected ? 0 : 1;
}
