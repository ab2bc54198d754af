/* IP addresses and CIDR blocks: --trust-proxy and the http job type's
 * --http-allow/--http-deny rules, the loopback test for --listen, and the
 * client address behind trusted proxies taken from X-Forwarded-For. Pure
 * functions, no I/O. */
#ifndef JOBQ_NETADDR_H
#define JOBQ_NETADDR_H

#include <stdbool.h>
#include <stddef.h>

#define NETADDR_TEXT_MAX 46   /* INET6_ADDRSTRLEN */

struct netaddr_cidr {
	int family;               /* AF_INET or AF_INET6 */
	unsigned char net[16];    /* host bits cleared */
	int prefix;               /* 0-32 or 0-128 */
};

/* Parses "a.b.c.d/n", "v6/n", or a bare address (one host). Host bits
 * below the prefix are cleared. -1 when text is none of these. */
int netaddr_cidr_parse(const char *text, struct netaddr_cidr *out);

/* Parses an IP literal: "a.b.c.d", "v6", "[v6]", and the same with a
 * ":port" after the IPv4 address or the bracketed IPv6 one (as proxies
 * sometimes write them). Fills family and addr; -1 if not an address. */
int netaddr_parse(const char *text, int *family, unsigned char addr[16]);

/* True when the address lies in one of the n blocks. An IPv4-mapped IPv6
 * address also counts as its IPv4 address. */
bool netaddr_in(const struct netaddr_cidr *blocks, int n, int family, const unsigned char addr[16]);

/* True when a connection to the address may reach an address in one of
 * the n blocks: the egress test for the http job type's rules. Besides
 * the address itself (as netaddr_in) it counts:
 * - the IPv4 address an IPv6 one carries: IPv4-mapped ::ffff:0:0/96,
 *   IPv4-translated ::ffff:0:0:0/96, IPv4-compatible ::/96 (but ::1),
 *   NAT64 64:ff9b::/96, 6to4 2002::/16 (bits 16-47) and Teredo 2001::/32
 *   (its client address, the last 32 bits inverted);
 * - loopback for 0.0.0.0/8 and :: (connecting to them reaches this host):
 *   they also count as 127.0.0.1 and ::1.
 * Not for trusting a peer: there the address is what it says. */
bool netaddr_dest_in(const struct netaddr_cidr *blocks, int n, int family, const unsigned char addr[16]);

/* True for a --listen host that only this machine can reach: 127.0.0.0/8,
 * ::1 and "localhost" (any case). An empty host, 0.0.0.0 and :: are not. */
bool netaddr_is_loopback_host(const char *host);

/* The client of a request whose TCP peer is peer (an IP literal) and whose
 * X-Forwarded-For value is xff (NULL or "" when absent; several header
 * lines joined with commas). When the peer is not inside a trusted block,
 * the client is the peer and xff is ignored. Otherwise the entries are
 * walked from the right: the first one that is not trusted is the client;
 * an entry that is not an address stops the walk at the address to its
 * right; when all are trusted the left-most is the client. out gets the
 * address in canonical form (inet_ntop). */
void netaddr_client(const struct netaddr_cidr *trusted, int ntrusted, const char *peer,
                    const char *xff, char *out, size_t outlen);

#endif
