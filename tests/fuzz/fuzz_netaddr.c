/* CIDR blocks, address literals and host rules: --trust-proxy,
 * --http-allow/--http-deny, --listen's loopback test, and the egress
 * check of every address a rule is matched against. */
#include <sys/socket.h>

#include "core/netaddr.h"
#include "tests/fuzz/fuzz.h"
#include "workers/http.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *s = fuzz_str(data, size);
	struct netaddr_cidr c;
	int family;
	unsigned char addr[16];
	if (netaddr_cidr_parse(s, &c) == 0) {
		if ((c.family != AF_INET && c.family != AF_INET6) || c.prefix < 0 ||
		    c.prefix > (c.family == AF_INET ? 32 : 128))
			abort();
		/* a block holds its own network address */
		if (!netaddr_in(&c, 1, c.family, c.net) || !netaddr_dest_in(&c, 1, c.family, c.net))
			abort();
	}
	if (netaddr_parse(s, &family, addr) == 0) {
		struct netaddr_cidr any[2];
		if (netaddr_cidr_parse("0.0.0.0/0", &any[0]) != 0 || netaddr_cidr_parse("::/0", &any[1]) != 0)
			abort();
		if (!netaddr_in(any, 2, family, addr) || !netaddr_dest_in(any, 2, family, addr))
			abort();
	}
	netaddr_is_loopback_host(s);
	const char *rules[1] = {s};
	char err[512];
	struct http_options o = {.deny = rules, .ndeny = 1, .allow = rules, .nallow = 1};
	http_rules_check(&o, err, sizeof err);
	free(s);
	return 0;
}
