/* Egress rules: parsing CIDR and host-pattern rules and matching a host
 * name or a socket address against them (workers/egress.h). */
#include "workers/egress.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *const builtin_deny[] = {
	"169.254.0.0/16", "fe80::/10", "fd00:ec2::254/128", "100.100.100.200/32",
	"192.0.0.192/32", "metadata.google.internal",
};

void egress_rules_free(struct egress_rules *r)
{
	for (int i = 0; i < r->n; i++) {
		free(r->v[i].text);
		free(r->v[i].pattern);
	}
	free(r->v);
	*r = (struct egress_rules){0};
}

static bool host_char(char c)
{
	return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' || c == '.' || c == '_';
}

void egress_host_normalize(const char *host, char *out, size_t n)
{
	size_t len = strlen(host);
	if (len >= 2 && host[0] == '[' && host[len - 1] == ']') {
		host++;
		len -= 2;
	}
	if (len > 0 && host[len - 1] == '.')
		len--;
	if (len >= n)
		len = n - 1;
	for (size_t i = 0; i < len; i++)
		out[i] = (char)(host[i] >= 'A' && host[i] <= 'Z' ? host[i] - 'A' + 'a' : host[i]);
	out[len] = '\0';
}

/* Parses one rule; -1 when it is neither a CIDR nor a host pattern. */
static int rule_parse(const char *text, struct egress_rule *r)
{
	*r = (struct egress_rule){0};
	char buf[256];
	if (!text || !*text || strlen(text) >= sizeof buf)
		return -1;
	snprintf(buf, sizeof buf, "%s", text);
	char *slash = strchr(buf, '/');
	if (netaddr_cidr_parse(buf, &r->block) == 0) {
		r->cidr = true;
	} else {
		if (slash)
			return -1;
		char host[256];
		egress_host_normalize(buf, host, sizeof host);
		const char *name = host;
		if (name[0] == '*' && name[1] == '.') {
			r->suffix = true;
			name += 1; /* keep the dot */
		}
		if (!*name || (r->suffix && !name[1]))
			return -1;
		for (const char *c = r->suffix ? name + 1 : name; *c; c++)
			if (!host_char(*c))
				return -1;
		if (!(r->pattern = strdup(name)))
			return -1;
	}
	if (!(r->text = strdup(text))) {
		free(r->pattern);
		return -1;
	}
	return 0;
}

int egress_rules_add(struct egress_rules *r, const char *const *texts, int n, const char *flag, char *err,
                     size_t errlen)
{
	if (n <= 0)
		return 0;
	struct egress_rule *v = realloc(r->v, (size_t)(r->n + n) * sizeof *v);
	if (!v) {
		snprintf(err, errlen, "out of memory");
		return -1;
	}
	r->v = v;
	for (int i = 0; i < n; i++) {
		if (rule_parse(texts[i], &r->v[r->n]) != 0) {
			snprintf(err, errlen, "%s: '%s' is not a CIDR (like 10.0.0.0/8) or a host pattern "
			         "(like api.example.com or *.example.internal)", flag, texts[i] ? texts[i] : "");
			return -1;
		}
		r->has_cidr |= r->v[r->n].cidr;
		r->n++;
	}
	return 0;
}

const struct egress_rule *egress_match_addr(const struct egress_rules *r, const struct sockaddr *sa)
{
	unsigned char addr[16] = {0};
	if (sa->sa_family == AF_INET)
		memcpy(addr, &((const struct sockaddr_in *)(const void *)sa)->sin_addr, 4);
	else if (sa->sa_family == AF_INET6)
		memcpy(addr, &((const struct sockaddr_in6 *)(const void *)sa)->sin6_addr, 16);
	else
		return NULL;
	for (int i = 0; i < r->n; i++) {
		const struct egress_rule *x = &r->v[i];
		if (x->cidr && netaddr_dest_in(&x->block, 1, sa->sa_family, addr))
			return x;
	}
	return NULL;
}

const struct egress_rule *egress_match_host(const struct egress_rules *r, const char *host)
{
	size_t len = strlen(host);
	for (int i = 0; i < r->n; i++) {
		const struct egress_rule *x = &r->v[i];
		if (x->cidr)
			continue;
		size_t plen = strlen(x->pattern);
		if (x->suffix ? len > plen && strcmp(host + len - plen, x->pattern) == 0
		              : strcmp(host, x->pattern) == 0)
			return x;
	}
	return NULL;
}

int egress_rules_add_builtin(struct egress_rules *r, char *err, size_t errlen)
{
	return egress_rules_add(r, builtin_deny, (int)(sizeof builtin_deny / sizeof builtin_deny[0]), "built-in deny",
	                        err, errlen);
}

static void format_addr(const struct sockaddr *sa, char *out, size_t n)
{
	const void *a = sa->sa_family == AF_INET
	        ? (const void *)&((const struct sockaddr_in *)(const void *)sa)->sin_addr
	        : (const void *)&((const struct sockaddr_in6 *)(const void *)sa)->sin6_addr;
	if (!inet_ntop(sa->sa_family, a, out, (socklen_t)n))
		snprintf(out, n, "(address)");
}

int egress_vet(const struct egress_rules *allow, const struct egress_rules *deny, const char *host,
               const struct sockaddr *sa, char *why, size_t n)
{
	const struct egress_rule *deny_host = host ? egress_match_host(deny, host) : NULL;
	const struct egress_rule *deny_addr = sa ? egress_match_addr(deny, sa) : NULL;
	if (!deny_host && !deny_addr)
		return 0;
	if (host && egress_match_host(allow, host))
		return 0;
	if (sa ? egress_match_addr(allow, sa) != NULL : allow->has_cidr)
		return 0;
	if (deny_addr) {
		char text[INET6_ADDRSTRLEN];
		format_addr(sa, text, sizeof text);
		snprintf(why, n, "refused: %s is in denied range %s", text, deny_addr->text);
	} else {
		snprintf(why, n, "refused: host %s matches denied pattern %s", host, deny_host->text);
	}
	return -1;
}
