/* X-Forwarded-For behind trusted proxies: the first line is the TCP
 * peer, the rest the header's value. */
#include "core/netaddr.h"
#include "tests/fuzz/fuzz.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const char *const blocks[] = {"127.0.0.1", "10.0.0.0/8", "::1", "fd00::/8"};
	struct netaddr_cidr trusted[4];
	for (int i = 0; i < 4; i++)
		if (netaddr_cidr_parse(blocks[i], &trusted[i]) != 0)
			abort();
	char *s = fuzz_str(data, size);
	char *v[2] = {NULL, NULL};
	fuzz_lines(s, v, 2);
	char out[NETADDR_TEXT_MAX];
	netaddr_client(trusted, 4, v[0], v[1], out, sizeof out);
	/* the client is the peer as given (cut to fit), or an address in
	 * canonical form */
	int family;
	unsigned char addr[16];
	if (strncmp(out, v[0], sizeof out - 1) != 0 && netaddr_parse(out, &family, addr) != 0)
		abort();
	netaddr_client(trusted, 4, "127.0.0.1", v[0], out, sizeof out);
	free(s);
	return 0;
}
