/* load: a closed-loop HTTP load generator on libcurl's multi interface.
 * C connections each send their next request as soon as the last one is
 * answered, N requests in all; prints one JSON line with the rate and the
 * latency percentiles. Loopback only: the URL must name 127.0.0.1 or ::1.
 *
 *   load URL[,URL...] CONCURRENCY TOTAL [JSON_BODY]
 * With a body the request is a POST with Content-Type: application/json.
 * With several URLs (several jobqd of one cluster) connection i sends all
 * its requests to URL i mod n, so each gets an equal share of the
 * connections and, closed loop, of the requests its server answers. */
#include <curl/curl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

struct slot {
	CURL *easy;
	double started;
};

static double now_s(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static size_t discard(char *p, size_t size, size_t n, void *u)
{
	(void)p;
	(void)u;
	return size * n;
}

#define MAX_URLS 16

static int loopback(const char *url)
{
	return strncmp(url, "http://127.0.0.1:", 17) == 0 || strncmp(url, "http://[::1]:", 13) == 0;
}

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return (x > y) - (x < y);
}

int main(int argc, char **argv)
{
	if (argc < 4) {
		fprintf(stderr, "usage: load URL[,URL...] CONCURRENCY TOTAL [JSON_BODY]\n");
		return 2;
	}
	const char *body = argc > 4 ? argv[4] : NULL;
	char *urls[MAX_URLS], *save = NULL;
	int nurls = 0;
	for (char *u = strtok_r(argv[1], ",", &save); u; u = strtok_r(NULL, ",", &save)) {
		if (nurls == MAX_URLS || !loopback(u)) {
			fprintf(stderr, "load: at most %d URLs, each on loopback (127.0.0.1 or ::1)\n", MAX_URLS);
			return 2;
		}
		urls[nurls++] = u;
	}
	int conc = atoi(argv[2]);
	long total = atol(argv[3]);
	if (nurls == 0) {
		fprintf(stderr, "load: no URL\n");
		return 2;
	}
	if (conc < 1 || total < conc) {
		fprintf(stderr, "load: need 1 <= CONCURRENCY <= TOTAL\n");
		return 2;
	}
	curl_global_init(CURL_GLOBAL_DEFAULT);
	CURLM *multi = curl_multi_init();
	curl_multi_setopt(multi, CURLMOPT_MAX_TOTAL_CONNECTIONS, (long)conc);
	struct curl_slist *hdrs = curl_slist_append(NULL, "Content-Type: application/json");
	struct slot *slots = calloc((size_t)conc, sizeof *slots);
	double *lat = calloc((size_t)total, sizeof *lat);
	long sent = 0, done = 0, errors = 0, non2xx = 0;
	double t0 = now_s();
	for (int i = 0; i < conc; i++) {
		CURL *e = curl_easy_init();
		curl_easy_setopt(e, CURLOPT_URL, urls[i % nurls]);
		curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, discard);
		curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
		curl_easy_setopt(e, CURLOPT_TIMEOUT, 60L);
		curl_easy_setopt(e, CURLOPT_PRIVATE, &slots[i]);
		if (body) {
			curl_easy_setopt(e, CURLOPT_POSTFIELDS, body);
			curl_easy_setopt(e, CURLOPT_HTTPHEADER, hdrs);
		}
		slots[i].easy = e;
		slots[i].started = now_s();
		curl_multi_add_handle(multi, e);
		sent++;
	}
	while (done < total) {
		int running = 0;
		curl_multi_perform(multi, &running);
		CURLMsg *m;
		int left;
		while ((m = curl_multi_info_read(multi, &left))) {
			if (m->msg != CURLMSG_DONE)
				continue;
			struct slot *s;
			curl_easy_getinfo(m->easy_handle, CURLINFO_PRIVATE, (char **)&s);
			long code = 0;
			curl_easy_getinfo(m->easy_handle, CURLINFO_RESPONSE_CODE, &code);
			if (m->data.result != CURLE_OK)
				errors++;
			else if (code < 200 || code > 299)
				non2xx++;
			lat[done++] = now_s() - s->started;
			curl_multi_remove_handle(multi, m->easy_handle);
			if (sent < total) {
				s->started = now_s();
				curl_multi_add_handle(multi, m->easy_handle);
				sent++;
			}
		}
		if (done < total)
			curl_multi_poll(multi, NULL, 0, 100, NULL);
	}
	double elapsed = now_s() - t0;
	qsort(lat, (size_t)total, sizeof *lat, cmp_double);
	printf("{\"requests\":%ld,\"concurrency\":%d,\"targets\":%d,\"seconds\":%.3f,\"per_second\":%.0f,"
	       "\"p50_ms\":%.2f,\"p99_ms\":%.2f,\"errors\":%ld,\"non_2xx\":%ld}\n",
	       total, conc, nurls, elapsed, (double)total / elapsed, lat[total / 2] * 1000,
	       lat[(long)((double)total * 0.99)] * 1000, errors, non2xx);
	for (int i = 0; i < conc; i++)
		curl_easy_cleanup(slots[i].easy);
	curl_multi_cleanup(multi);
	curl_slist_free_all(hdrs);
	free(slots);
	free(lat);
	curl_global_cleanup();
	return errors || non2xx ? 1 : 0;
}
