/* CIDR blocks, the loopback test and the X-Forwarded-For walk. */
#include "core/netaddr.h"

#include <arpa/inet.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

int netaddr_cidr_parse(const char *text, struct netaddr_cidr *out)
{
	char buf[64];
	struct netaddr_cidr c = {0};
	if (!text || !*text || strlen(text) >= sizeof buf)
		return -1;
	snprintf(buf, sizeof buf, "%s", text);
	char *slash = strchr(buf, '/');
	if (slash)
		*slash = '\0';
	if (inet_pton(AF_INET, buf, c.net) == 1) {
		c.family = AF_INET;
		c.prefix = 32;
	} else if (inet_pton(AF_INET6, buf, c.net) == 1) {
		c.family = AF_INET6;
		c.prefix = 128;
	} else {
		return -1;
	}
	if (slash) {
		const char *p = slash + 1;
		if (!*p || strlen(p) > 3 || p[strspn(p, "0123456789")] != '\0')
			return -1;
		int n = atoi(p);
		if (n > c.prefix)
			return -1;
		c.prefix = n;
	}
	int bytes = c.prefix / 8, bits = c.prefix % 8;
	int size = c.family == AF_INET ? 4 : 16;
	if (bits)
		c.net[bytes++] &= (unsigned char)(0xff << (8 - bits));
	for (int i = bytes; i < size; i++)
		c.net[i] = 0;
	*out = c;
	return 0;
}

int netaddr_parse(const char *text, int *family, unsigned char addr[16])
{
	char buf[64];
	if (!text)
		return -1;
	size_t len = strlen(text);
	if (len == 0 || len >= sizeof buf)
		return -1;
	if (text[0] == '[') {
		const char *close = strchr(text, ']');
		if (!close || (close[1] && (close[1] != ':' || !close[2] ||
		                            close[2 + strspn(close + 2, "0123456789")] != '\0')))
			return -1;
		snprintf(buf, sizeof buf, "%.*s", (int)(close - text - 1), text + 1);
		memset(addr, 0, 16);
		if (inet_pton(AF_INET6, buf, addr) != 1)
			return -1;
		*family = AF_INET6;
		return 0;
	}
	snprintf(buf, sizeof buf, "%s", text);
	const char *colon = strchr(buf, ':');
	if (colon && !strchr(colon + 1, ':')) {
		/* a.b.c.d:port */
		const char *port = colon + 1;
		if (!*port || port[strspn(port, "0123456789")] != '\0')
			return -1;
		buf[colon - buf] = '\0';
	}
	memset(addr, 0, 16);
	if (inet_pton(AF_INET, buf, addr) == 1) {
		*family = AF_INET;
		return 0;
	}
	if (colon && inet_pton(AF_INET6, text, addr) == 1) {
		*family = AF_INET6;
		return 0;
	}
	return -1;
}

static bool prefix_match(const unsigned char *a, const unsigned char *net, int prefix)
{
	int bytes = prefix / 8, bits = prefix % 8;
	if (memcmp(a, net, (size_t)bytes) != 0)
		return false;
	if (!bits)
		return true;
	unsigned char mask = (unsigned char)(0xff << (8 - bits));
	return (a[bytes] & mask) == (net[bytes] & mask);
}

bool netaddr_in(const struct netaddr_cidr *blocks, int n, int family, const unsigned char addr[16])
{
	static const unsigned char mapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
	const unsigned char *v4 = family == AF_INET ? addr : NULL;
	const unsigned char *v6 = family == AF_INET6 ? addr : NULL;
	if (v6 && memcmp(v6, mapped, sizeof mapped) == 0)
		v4 = v6 + 12;
	for (int i = 0; i < n; i++) {
		const struct netaddr_cidr *b = &blocks[i];
		if ((b->family == AF_INET && v4 && prefix_match(v4, b->net, b->prefix)) ||
		    (b->family == AF_INET6 && v6 && prefix_match(v6, b->net, b->prefix)))
			return true;
	}
	return false;
}

/* The IPv4 address carried by an IPv6 address (see netaddr_dest_in) into
 * v4; false when it carries none. */
static bool embedded_v4(const unsigned char a[16], unsigned char v4[4])
{
	static const unsigned char zero[12] = {0};
	static const unsigned char mapped[12] = {[10] = 0xff, [11] = 0xff};
	static const unsigned char translated[12] = {[8] = 0xff, [9] = 0xff};
	static const unsigned char nat64[12] = {0x00, 0x64, 0xff, 0x9b};
	static const unsigned char one[16] = {[15] = 1};
	if (memcmp(a, mapped, 12) == 0 || memcmp(a, translated, 12) == 0 || memcmp(a, nat64, 12) == 0 ||
	    (memcmp(a, zero, 12) == 0 && memcmp(a, one, 16) != 0)) {
		memcpy(v4, a + 12, 4);
		return true;
	}
	if (a[0] == 0x20 && a[1] == 0x02) { /* 6to4 */
		memcpy(v4, a + 2, 4);
		return true;
	}
	if (a[0] == 0x20 && a[1] == 0x01 && a[2] == 0 && a[3] == 0) { /* Teredo */
		for (int i = 0; i < 4; i++)
			v4[i] = (unsigned char)~a[12 + i];
		return true;
	}
	return false;
}

bool netaddr_dest_in(const struct netaddr_cidr *blocks, int n, int family, const unsigned char addr[16])
{
	static const unsigned char lo4[16] = {127, 0, 0, 1};
	static const unsigned char lo6[16] = {[15] = 1};
	static const unsigned char any6[16] = {0};
	unsigned char v4[16] = {0};
	if (netaddr_in(blocks, n, family, addr))
		return true;
	if (family == AF_INET6 && memcmp(addr, any6, 16) == 0 && netaddr_in(blocks, n, AF_INET6, lo6))
		return true;
	if (family == AF_INET)
		memcpy(v4, addr, 4);
	else if (family != AF_INET6 || !embedded_v4(addr, v4))
		return false;
	return netaddr_in(blocks, n, AF_INET, v4) || (v4[0] == 0 && netaddr_in(blocks, n, AF_INET, lo4));
}

bool netaddr_is_loopback_host(const char *host)
{
	unsigned char a[16];
	if (strcasecmp(host, "localhost") == 0)
		return true;
	if (inet_pton(AF_INET, host, a) == 1)
		return a[0] == 127;
	if (inet_pton(AF_INET6, host, a) == 1) {
		static const unsigned char one[16] = {[15] = 1};
		return memcmp(a, one, sizeof one) == 0;
	}
	return false;
}

static void show(int family, const unsigned char addr[16], char *out, size_t outlen)
{
	char text[NETADDR_TEXT_MAX];
	if (!inet_ntop(family, addr, text, sizeof text))
		snprintf(text, sizeof text, "?");
	snprintf(out, outlen, "%s", text);
}

void netaddr_client(const struct netaddr_cidr *trusted, int ntrusted, const char *peer,
                    const char *xff, char *out, size_t outlen)
{
	int family;
	unsigned char addr[16];
	snprintf(out, outlen, "%s", peer);
	if (netaddr_parse(peer, &family, addr) != 0 || !netaddr_in(trusted, ntrusted, family, addr))
		return;
	const char *end = xff ? xff + strlen(xff) : NULL;
	while (end && end > xff) {
		/* the entry between the last comma before end and end */
		const char *start = end;
		while (start > xff && start[-1] != ',')
			start--;
		const char *a = start, *b = end;
		while (a < b && (*a == ' ' || *a == '\t'))
			a++;
		while (b > a && (b[-1] == ' ' || b[-1] == '\t'))
			b--;
		char entry[64];
		if ((size_t)(b - a) >= sizeof entry)
			return;
		snprintf(entry, sizeof entry, "%.*s", (int)(b - a), a);
		if (netaddr_parse(entry, &family, addr) != 0)
			return;
		show(family, addr, out, outlen);
		if (!netaddr_in(trusted, ntrusted, family, addr))
			return;
		end = start > xff ? start - 1 : NULL;
	}
}
