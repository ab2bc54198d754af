/* The dashboard: web/index.html, app.js and style.css, embedded at build
 * time (build/gen/web.c). Each is served with a strong ETag (a hash of its
 * bytes) and Cache-Control: no-cache, so a browser revalidates on every load
 * and gets a 304 until jobqd is upgraded. The files hold no data; every
 * figure comes from the API, with the key of whoever looks at it. */
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "core/hash.h"
#include "handlers/handlers.h"

extern const char web_index_html[], web_app_js[], web_style_css[];
extern const unsigned long web_index_html_len, web_app_js_len, web_style_css_len;

/* No inline script or style, nothing from elsewhere: markup that slipped
 * into the page could not run. */
#define DASHBOARD_CSP "default-src 'self'; img-src 'self' data:; object-src 'none'; " \
	"base-uri 'none'; form-action 'none'; frame-ancestors 'none'"

struct asset {
	const char *path;
	const char *content_type;
	const char *body;
	const unsigned long *len;
	char etag[24];          /* "\"<16 hex digits>\"", set once */
};

static struct asset assets[] = {
	{"/", "text/html; charset=utf-8", web_index_html, &web_index_html_len, ""},
	{"/app.js", "text/javascript; charset=utf-8", web_app_js, &web_app_js_len, ""},
	{"/style.css", "text/css; charset=utf-8", web_style_css, &web_style_css_len, ""},
};

#define NASSETS (sizeof assets / sizeof assets[0])

static pthread_once_t etags_once = PTHREAD_ONCE_INIT;

/* core/hash.h's FNV-1a: the bytes never change while the process runs, and a
 * validator needs to differ between builds, not resist an attacker. */
static void etags_compute(void)
{
	for (size_t i = 0; i < NASSETS; i++) {
		uint64_t h = hash_add(HASH_INIT, assets[i].body, *assets[i].len);
		snprintf(assets[i].etag, sizeof assets[i].etag, "\"%016llx\"", (unsigned long long)h);
	}
}

/* If-None-Match holds etag (weak comparison, RFC 9110 13.1.2) or "*". */
static bool not_modified(struct req *r, const char *etag)
{
	const char *inm = req_header(r, "If-None-Match");
	if (!inm)
		return false;
	inm += strspn(inm, " \t");
	return strcmp(inm, "*") == 0 || strstr(inm, etag) != NULL;
}

void dashboard_get(struct req *r)
{
	pthread_once(&etags_once, etags_compute);
	const struct asset *a = NULL;
	for (size_t i = 0; i < NASSETS && !a; i++)
		if (strcmp(r->path, assets[i].path) == 0)
			a = &assets[i];
	if (!a) {
		reply_error(r, PROBLEM_NOT_FOUND, NULL, "no resource at %s", r->path);
		return;
	}
	reply_header(r, "ETag", "%s", a->etag);
	reply_header(r, "Cache-Control", "no-cache");
	reply_header(r, "X-Content-Type-Options", "nosniff");
	if (a->path[1] == '\0') {
		reply_header(r, "Content-Security-Policy", "%s", DASHBOARD_CSP);
		reply_header(r, "Referrer-Policy", "no-referrer");
	}
	if (not_modified(r, a->etag))
		reply_static(r, 304, NULL, "", 0);
	else
		reply_static(r, 200, a->content_type, a->body, (size_t)*a->len);
}
