/* The "http" job kind: outbound HTTP requests made by one engine thread
 * that drives every transfer with libcurl's multi interface, so a thousand
 * slow calls need no thread each. Every connection is vetted against SSRF
 * rules (CIDRs on the resolved address, host patterns on the name, on
 * every redirect hop) before a socket exists.
 *
 * Payload: url (http or https), method (GET HEAD POST PUT PATCH DELETE
 * OPTIONS), headers {name: string}, body (string) or json (any; adds
 * Content-Type: application/json unless given), timeout_s (0 < t <= 3600,
 * default 30), expect_status (100..599 or an array; default any 2xx),
 * follow_redirects (default false; at most 5 hops).
 * Result: {"status", "headers" {lowercase name: value}, then "json" when
 * the response is JSON, else "body" as text, or base64 with
 * "body_base64": true when it is not UTF-8}.
 * Outcomes: unexpected 5xx/429 and network errors are retryable (honouring
 * Retry-After); refusals, bodies over max_response and other statuses are
 * not; cancel, shutdown and the job's deadline abort the transfer at once.
 * The kind is workers/http.c; the engine it shares with callbacks
 * (http_post_async) workers/engine.c; the rules workers/egress.c. */
#ifndef JOBQ_WORKERS_HTTP_H
#define JOBQ_WORKERS_HTTP_H

#include <stddef.h>

#define HTTP_DEFAULT_MAX_RESPONSE 1048576

struct http_options {
	size_t max_response;                    /* body (and header) cap in bytes; 0: the default */
	const char *const *allow; int nallow;   /* rules that override a deny */
	const char *const *deny;  int ndeny;    /* added to the built-in denies */
};

/* A RULE is a CIDR ("10.0.0.0/8", "fd00::/8", "1.2.3.4/32"; a bare
 * address means /32 or /128) matched against every address connected to,
 * or a host pattern ("name.example" exactly, "*.example.internal" for any
 * name below it) matched against the URL's host name. A connection is
 * refused when it matches a deny rule and no allow rule. A CIDR also
 * matches an IPv6 address that carries an IPv4 address inside it, and a
 * loopback CIDR matches 0.0.0.0/8 and :: (netaddr_dest_in). Built-in denies:
 * 169.254.0.0/16, fe80::/10, fd00:ec2::254/128, 100.100.100.200/32,
 * 192.0.0.192/32, metadata.google.internal. Loopback and private ranges are
 * allowed unless denied. */

/* Checks o's allow and deny rules only: 0, or -1 with a one-line message
 * naming the flag and the rule. */
int http_rules_check(const struct http_options *o, char *err, size_t errlen);

/* Checks the rules, starts the engine thread and registers job type
 * "http". Call once, after curl_global_init and before the pool starts.
 * Returns 0, or -1 with a one-line message in err (nothing is left
 * running). The options' strings are copied. */
int http_engine_start(const struct http_options *o, char *err, size_t errlen);

/* Ends every transfer still running (a job's ends with
 * run_finish(RUN_STOPPED), a post's with done(arg, 0, "...shutting down"))
 * and joins the thread. Call after the pool has stopped and before the
 * store closes. Safe if never started, and safe to repeat. */
void http_engine_stop(void);

/* POSTs body (len bytes, copied) to url with headers ("Name: value"
 * lines, copied), under the same protocol, SSRF rules and response cap.
 * Non-blocking. done(arg, status, error) is called once on the engine
 * thread: status 0 with error on a network error, refusal or shutdown;
 * the HTTP status and error NULL for a 2xx; the status and an error
 * ("HTTP 500 from URL") for any other. Returns 0, or -1 (invalid URL, the
 * engine is not running, out of memory) and done is never called. */
int http_post_async(const char *url, const char *const *headers, int nheaders,
                    const char *body, size_t len, double timeout_s,
                    void (*done)(void *arg, long status, const char *error), void *arg);

#endif
