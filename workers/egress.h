/* Egress rules: which hosts and addresses outbound HTTP (http jobs and
 * callbacks) may connect to. Parsing and matching only, no curl: the
 * engine asks egress_vet before resolving a name and before opening each
 * socket. The rule syntax is described in workers/http.h. */
#ifndef JOBQ_WORKERS_EGRESS_H
#define JOBQ_WORKERS_EGRESS_H

#include <stdbool.h>
#include <stddef.h>

#include <sys/socket.h>

#include "core/netaddr.h"

struct egress_rule {
	char *text;              /* as written, for messages */
	bool cidr;
	struct netaddr_cidr block;
	bool suffix;             /* "*.x": pattern holds ".x" */
	char *pattern;           /* lowercase host name (not cidr) */
};

/* A list of rules; zero-initialised is empty. */
struct egress_rules {
	struct egress_rule *v;
	int n;
	bool has_cidr;
};

/* Frees r's rules and empties it; safe on an empty list. */
void egress_rules_free(struct egress_rules *r);

/* Appends n rules given as text. Returns 0, or -1 with a one-line message
 * naming flag and the rule in err; r keeps the rules parsed before the
 * bad one (free it either way). */
int egress_rules_add(struct egress_rules *r, const char *const *texts, int n, const char *flag, char *err,
                     size_t errlen);

/* Appends the built-in denies (cloud metadata addresses and names,
 * link-local ranges); 0 or -1 as egress_rules_add. */
int egress_rules_add_builtin(struct egress_rules *r, char *err, size_t errlen);

/* Lowercases host into out (n bytes) without a trailing dot or IPv6
 * brackets, cut to fit. */
void egress_host_normalize(const char *host, char *out, size_t n);

/* The first rule whose CIDR holds sa, or the IPv4 address it carries, or
 * loopback when sa is 0.0.0.0/8 or :: (netaddr_dest_in); NULL if none. */
const struct egress_rule *egress_match_addr(const struct egress_rules *r, const struct sockaddr *sa);

/* The first host pattern that matches host (normalized); NULL if none. */
const struct egress_rule *egress_match_host(const struct egress_rules *r, const char *host);

/* 0 when host (normalized; may be NULL) at sa (may be NULL: before the
 * name is resolved) may be connected to under allow and deny; else -1
 * with why (n bytes). With sa NULL it refuses only when no address could
 * change the answer. */
int egress_vet(const struct egress_rules *allow, const struct egress_rules *deny, const char *host,
               const struct sockaddr *sa, char *why, size_t n);

#endif
