/* Unit tests for the server's access pieces: CIDR blocks and the loopback
 * test, the X-Forwarded-For walk behind trusted proxies, API key files and
 * lists, bearer checks, the access flags of the configuration, and the two
 * log line formats. */
#include <arpa/inet.h>
#include <check.h>
#include <curl/curl.h>
#include <netdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cjson/cJSON.h>

#include "core/job.h"
#include "core/log.h"
#include "server/query.h"
#include "handlers/handlers.h"
#include "server/auth.h"
#include "server/config.h"
#include "store/store.h"
#include "core/netaddr.h"
#include "core/text.h"

Suite *server_suite(void);

#define NELEMS(a) ((int)(sizeof(a) / sizeof((a)[0])))
#define ARGC(a) ((int)(sizeof(a) / sizeof((a)[0])) - 1)

/* ---- CIDR -------------------------------------------------------------- */

static const struct {
	const char *text;
	int family;
	const char *net;
	int prefix;
} good_cidrs[] = {
	{"127.0.0.1/32", AF_INET, "127.0.0.1", 32},
	{"10.0.0.0/8", AF_INET, "10.0.0.0", 8},
	{"10.1.2.3/8", AF_INET, "10.0.0.0", 8},       /* host bits cleared */
	{"192.168.7.200/23", AF_INET, "192.168.6.0", 23},
	{"0.0.0.0/0", AF_INET, "0.0.0.0", 0},
	{"203.0.113.9", AF_INET, "203.0.113.9", 32},  /* bare: one host */
	{"::1/128", AF_INET6, "::1", 128},
	{"::1", AF_INET6, "::1", 128},
	{"2001:db8::/32", AF_INET6, "2001:db8::", 32},
	{"2001:db8:ffff::1/33", AF_INET6, "2001:db8:8000::", 33},
	{"fd00::/8", AF_INET6, "fd00::", 8},
};

START_TEST(cidr_parse_reads_blocks)
{
	struct netaddr_cidr c;
	char shown[NETADDR_TEXT_MAX];
	ck_assert_msg(netaddr_cidr_parse(good_cidrs[_i].text, &c) == 0, "%s refused", good_cidrs[_i].text);
	ck_assert_int_eq(c.family, good_cidrs[_i].family);
	ck_assert_int_eq(c.prefix, good_cidrs[_i].prefix);
	ck_assert_ptr_nonnull(inet_ntop(c.family, c.net, shown, sizeof shown));
	ck_assert_str_eq(shown, good_cidrs[_i].net);
}
END_TEST

static const char *const bad_cidrs[] = {
	"", "10.0.0.0/33", "10.0.0.0/", "10.0.0.0/-1", "10.0.0.0/8x", "10.0.0.0/+8", "::/129",
	"10.0.0/8", "localhost", "10.0.0.0/8/8", " 10.0.0.0/8", "10.0.0.0 /8", "[::1]/128",
	"10.0.0.0/0008",
};

START_TEST(cidr_parse_refuses_malformed)
{
	struct netaddr_cidr c;
	ck_assert_msg(netaddr_cidr_parse(bad_cidrs[_i], &c) == -1, "'%s' accepted", bad_cidrs[_i]);
}
END_TEST

static bool in_blocks_of(bool (*in)(const struct netaddr_cidr *, int, int, const unsigned char *),
                         const char *blocks, const char *addr)
{
	struct netaddr_cidr v[8];
	int n = 0, family;
	unsigned char a[16];
	char buf[256];
	snprintf(buf, sizeof buf, "%s", blocks);
	for (char *save = NULL, *t = strtok_r(buf, ",", &save); t; t = strtok_r(NULL, ",", &save))
		ck_assert_int_eq(netaddr_cidr_parse(t, &v[n++]), 0);
	ck_assert_int_eq(netaddr_parse(addr, &family, a), 0);
	return in(v, n, family, a);
}

static bool in_blocks(const char *blocks, const char *addr)
{
	return in_blocks_of(netaddr_in, blocks, addr);
}

static bool in_dest(const char *blocks, const char *addr)
{
	return in_blocks_of(netaddr_dest_in, blocks, addr);
}

START_TEST(cidr_membership)
{
	ck_assert(in_blocks("10.0.0.0/8", "10.255.1.2"));
	ck_assert(!in_blocks("10.0.0.0/8", "11.0.0.1"));
	ck_assert(in_blocks("192.168.6.0/23", "192.168.7.255"));
	ck_assert(!in_blocks("192.168.6.0/23", "192.168.8.0"));
	ck_assert(in_blocks("127.0.0.1/32", "127.0.0.1"));
	ck_assert(!in_blocks("127.0.0.1/32", "127.0.0.3"));
	ck_assert(in_blocks("2001:db8::/32", "2001:db8:1::5"));
	ck_assert(!in_blocks("2001:db8::/32", "2001:db9::5"));
	ck_assert(!in_blocks("10.0.0.0/8", "::1"));            /* families do not mix */
	ck_assert(!in_blocks("::/0", "10.0.0.1"));
	ck_assert(in_blocks("10.0.0.0/8", "::ffff:10.9.9.9")); /* IPv4-mapped */
	ck_assert(in_blocks("0.0.0.0/0,::1", "::1"));
	/* a peer is what it says: no NAT64 or loopback reading here */
	ck_assert(!in_blocks("127.0.0.0/8", "64:ff9b::127.0.0.1"));
	ck_assert(!in_blocks("127.0.0.0/8", "0.0.0.0"));
}
END_TEST

/* ---- egress: every spelling of a denied address -------------------------- */

/* --http-deny 127.0.0.0/8 and the built-in CIDR denies of the http type. */
static const char *const egress_denies[] = {
	"127.0.0.0/8", "169.254.0.0/16", "fe80::/10", "fd00:ec2::254/128", "100.100.100.200/32",
	"192.0.0.192/32",
};

static const struct {
	const char *url;
	bool refused;
} egress_cases[] = {
	{"http://127.0.0.1/", true},
	{"http://127.1/", true},
	{"http://2130706433/", true},
	{"http://0x7f.1/", true},
	{"http://017700000001/", true},
	/* 0.0.0.0/8 and :: connect to this host */
	{"http://0:8080/", true},
	{"http://0.0.0.0/", true},
	{"http://0.0/", true},
	{"http://0x0/", true},
	{"http://0.1.2.3/", true},
	{"http://[::]/", true},
	{"http://[::ffff:0.0.0.0]/", true},
	/* IPv4 carried in IPv6 */
	{"http://[::ffff:127.0.0.1]/", true},
	{"http://[::ffff:169.254.169.254]/", true},
	{"http://[::ffff:0:127.0.0.1]/", true},
	{"http://[::127.0.0.1]/", true},
	{"http://[64:ff9b::169.254.169.254]/", true},
	{"http://[64:ff9b::7f00:1]/", true},
	{"http://[64:ff9b::100.100.100.200]/", true},
	{"http://[2002:a9fe:a9fe::1]/", true},
	{"http://[2002:7f00:1::]/", true},
	{"http://[2001:0:4136:e378:8000:63bf:5601:5601]/", true}, /* Teredo client 169.254.169.254 */
	{"http://[2001::80ff:fffe]/", true},                         /* Teredo client 127.0.0.1 */
	{"http://169.254.169.254/", true},
	{"http://[fe80::1]/", true},
	{"http://[fd00:ec2::254]/", true},
	{"http://192.0.0.192/", true},
	/* elsewhere */
	{"http://1.2.3.4/", false},
	{"http://128.0.0.1/", false},
	{"http://[::1]/", false},
	{"http://[2001:db8::1]/", false},
	{"http://[64:ff9b::8.8.8.8]/", false},
	{"http://[2002:808:808::1]/", false},
	{"http://[2001:0:4136:e378:8000:63bf:f7f7:f7f7]/", false},   /* Teredo client 8.8.8.8 */
	{"http://[::ffff:8.8.8.8]/", false},
};

/* The address a URL's host connects to, as curl finds it: its URL parser
 * reads the host, a numeric lookup turns it into an address. */
static void url_address(const char *url, int *family, unsigned char addr[16])
{
	CURLU *u = curl_url();
	char *host = NULL, name[256];
	struct addrinfo hints = {.ai_flags = AI_NUMERICHOST}, *ai = NULL;
	ck_assert_ptr_nonnull(u);
	ck_assert_int_eq(curl_url_set(u, CURLUPART_URL, url, 0), CURLUE_OK);
	ck_assert_int_eq(curl_url_get(u, CURLUPART_HOST, &host, 0), CURLUE_OK);
	size_t len = strlen(host);
	if (host[0] == '[')
		snprintf(name, sizeof name, "%.*s", (int)len - 2, host + 1);
	else
		snprintf(name, sizeof name, "%s", host);
	ck_assert_msg(getaddrinfo(name, NULL, &hints, &ai) == 0, "%s: host %s is not an address", url, host);
	*family = ai->ai_family;
	memset(addr, 0, 16);
	if (ai->ai_family == AF_INET)
		memcpy(addr, &((struct sockaddr_in *)(void *)ai->ai_addr)->sin_addr, 4);
	else
		memcpy(addr, &((struct sockaddr_in6 *)(void *)ai->ai_addr)->sin6_addr, 16);
	freeaddrinfo(ai);
	curl_free(host);
	curl_url_cleanup(u);
}

START_TEST(egress_rules_see_through_every_spelling)
{
	struct netaddr_cidr v[NELEMS(egress_denies)];
	int family;
	unsigned char addr[16];
	for (int i = 0; i < NELEMS(egress_denies); i++)
		ck_assert_int_eq(netaddr_cidr_parse(egress_denies[i], &v[i]), 0);
	url_address(egress_cases[_i].url, &family, addr);
	ck_assert_msg(netaddr_dest_in(v, NELEMS(v), family, addr) == egress_cases[_i].refused, "%s: %s",
	              egress_cases[_i].url, egress_cases[_i].refused ? "allowed" : "refused");
}
END_TEST

/* A deny of :: or ::1 alone also covers the unspecified address. */
START_TEST(egress_unspecified_counts_as_loopback)
{
	ck_assert(in_dest("::1", "::"));
	ck_assert(in_dest("127.0.0.1/32", "0.0.0.0"));
	ck_assert(in_dest("127.0.0.1/32", "::"));
	ck_assert(in_dest("0.0.0.0/8", "0.0.0.0"));
	ck_assert(!in_dest("::1", "0.0.0.0"));
	ck_assert(!in_dest("127.0.0.1/32", "::1"));
	ck_assert(!in_dest("10.0.0.0/8", "::"));
}
END_TEST

START_TEST(addresses_parse_with_ports_and_brackets)
{
	int family;
	unsigned char a[16];
	ck_assert_int_eq(netaddr_parse("1.2.3.4:8080", &family, a), 0);
	ck_assert_int_eq(family, AF_INET);
	ck_assert_int_eq(netaddr_parse("[2001:db8::1]:443", &family, a), 0);
	ck_assert_int_eq(family, AF_INET6);
	ck_assert_int_eq(netaddr_parse("[::1]", &family, a), 0);
	ck_assert_int_eq(netaddr_parse("2001:db8::1", &family, a), 0);
	ck_assert_int_eq(netaddr_parse("unknown", &family, a), -1);
	ck_assert_int_eq(netaddr_parse("1.2.3.4:", &family, a), -1);
	ck_assert_int_eq(netaddr_parse("1.2.3.4:http", &family, a), -1);
	ck_assert_int_eq(netaddr_parse("[::1", &family, a), -1);
	ck_assert_int_eq(netaddr_parse("[::1]x", &family, a), -1);
	ck_assert_int_eq(netaddr_parse("", &family, a), -1);
}
END_TEST

START_TEST(loopback_hosts)
{
	ck_assert(netaddr_is_loopback_host("127.0.0.1"));
	ck_assert(netaddr_is_loopback_host("127.200.0.9"));
	ck_assert(netaddr_is_loopback_host("::1"));
	ck_assert(netaddr_is_loopback_host("localhost"));
	ck_assert(netaddr_is_loopback_host("LocalHost"));
	ck_assert(!netaddr_is_loopback_host("0.0.0.0"));
	ck_assert(!netaddr_is_loopback_host("::"));
	ck_assert(!netaddr_is_loopback_host(""));
	ck_assert(!netaddr_is_loopback_host("10.0.0.1"));
	ck_assert(!netaddr_is_loopback_host("128.0.0.1"));
	ck_assert(!netaddr_is_loopback_host("localhost.example.com"));
	ck_assert(!netaddr_is_loopback_host("::2"));
}
END_TEST

/* ---- X-Forwarded-For --------------------------------------------------- */

static const struct {
	const char *trusted;  /* comma-separated blocks */
	const char *peer;
	const char *xff;      /* NULL: no header */
	const char *client;
} xff_cases[] = {
	/* the peer is not a trusted proxy: the header is ignored */
	{"127.0.0.1/32", "127.0.0.2", "203.0.113.9", "127.0.0.2"},
	/* one proxy in front: the entry it added */
	{"127.0.0.1/32", "127.0.0.1", "127.0.0.3", "127.0.0.3"},
	{"127.0.0.1/32", "127.0.0.1", "1.1.1.1, 127.0.0.3", "127.0.0.3"},
	/* a chain of trusted proxies is skipped from the right */
	{"10.0.0.0/8,127.0.0.1", "127.0.0.1", "6.6.6.6, 203.0.113.9, 10.0.0.2, 10.0.0.7", "203.0.113.9"},
	/* every entry trusted: the left-most one */
	{"10.0.0.0/8,127.0.0.1", "127.0.0.1", "10.0.0.5,10.0.0.6", "10.0.0.5"},
	/* several header lines arrive joined with commas */
	{"127.0.0.1/32", "127.0.0.1", "9.9.9.9,198.51.100.1", "198.51.100.1"},
	/* something that is not an address stops the walk to its right */
	{"10.0.0.0/8,127.0.0.1", "127.0.0.1", "203.0.113.9, junk, 10.0.0.2", "10.0.0.2"},
	{"127.0.0.1/32", "127.0.0.1", "203.0.113.9, not-an-ip", "127.0.0.1"},
	{"127.0.0.1/32", "127.0.0.1", "203.0.113.9,", "127.0.0.1"},
	/* no header, or an empty one: the peer */
	{"127.0.0.1/32", "127.0.0.1", NULL, "127.0.0.1"},
	{"127.0.0.1/32", "127.0.0.1", "", "127.0.0.1"},
	/* ports, brackets and IPv6 are written canonically */
	{"127.0.0.1/32", "127.0.0.1", "198.51.100.7:5555", "198.51.100.7"},
	{"::1/128", "::1", "[2001:DB8::1]:443", "2001:db8::1"},
	{"::1/128", "::1", " 2001:db8:0::2 ", "2001:db8::2"},
	/* a trusted IPv6 proxy for an IPv4 client */
	{"::1/128", "::1", "192.0.2.4", "192.0.2.4"},
	/* no trusted block at all */
	{"", "127.0.0.1", "203.0.113.9", "127.0.0.1"},
};

START_TEST(xff_walk_finds_the_client)
{
	struct netaddr_cidr v[8];
	int n = 0;
	char buf[256], out[NETADDR_TEXT_MAX];
	snprintf(buf, sizeof buf, "%s", xff_cases[_i].trusted);
	for (char *save = NULL, *t = strtok_r(buf, ",", &save); t; t = strtok_r(NULL, ",", &save))
		ck_assert_int_eq(netaddr_cidr_parse(t, &v[n++]), 0);
	netaddr_client(v, n, xff_cases[_i].peer, xff_cases[_i].xff, out, sizeof out);
	ck_assert_msg(strcmp(out, xff_cases[_i].client) == 0, "case %d: peer %s xff '%s': got %s, want %s",
	              _i, xff_cases[_i].peer, xff_cases[_i].xff ? xff_cases[_i].xff : "(none)", out,
	              xff_cases[_i].client);
}
END_TEST

/* ---- ?wait and Prefer: wait ------------------------------------------- */

static const struct {
	const char *query;    /* ?wait, NULL: absent */
	const char *prefer;   /* Prefer header, NULL: absent */
	int rc;
	double wait_s;
	bool from_prefer;
} wait_cases[] = {
	{"5", NULL, 0, 5, false},
	{"0.25", "wait=9", 0, 0.25, false},     /* the query wins */
	{"500", NULL, 0, 60, false},            /* capped */
	{"abc", NULL, -1, 0, false},
	{"5s", NULL, -1, 0, false},
	{"-1", NULL, -1, 0, false},
	{"inf", NULL, -1, 0, false},
	{"", NULL, -1, 0, false},
	{NULL, NULL, 0, 0, false},
	{NULL, "wait=5", 0, 5, true},
	{NULL, "respond-async, wait=10", 0, 10, true},
	{NULL, "wait=7;foo=bar, handling=lenient", 0, 7, true},
	{NULL, "WAIT = 3", 0, 3, true},         /* names are case-insensitive; BWS around = */
	{NULL, "wait=\"4\"", 0, 4, true},       /* a quoted value */
	{NULL, "wait=999", 0, 60, true},
	/* another preference whose name ends in wait is not wait */
	{NULL, "x-wait=5", 0, 0, false},
	{NULL, "handling=nowait=5", 0, 0, false},
	/* an unusable wait preference is ignored, not applied (RFC 7240) */
	{NULL, "wait=soon", 0, 0, false},
	{NULL, "wait", 0, 0, false},
	{NULL, "wait=nan", 0, 0, false},
	{NULL, "", 0, 0, false},
};

START_TEST(wait_from_query_or_prefer)
{
	double w = -1;
	bool pref = false;
	int rc = handler_wait_parse(wait_cases[_i].query, wait_cases[_i].prefer, &w, &pref);
	ck_assert_msg(rc == wait_cases[_i].rc && w == wait_cases[_i].wait_s && pref == wait_cases[_i].from_prefer,
	              "?wait=%s Prefer: %s: got rc %d wait %g prefer %d", wait_cases[_i].query ? wait_cases[_i].query : "-",
	              wait_cases[_i].prefer ? wait_cases[_i].prefer : "-", rc, w, pref);
}
END_TEST

/* ---- API keys ---------------------------------------------------------- */

#define SECRET "s3cret-never-shown"

static char *write_temp(const char *text)
{
	char *path = strdup("/tmp/jobq-keys-XXXXXX");
	int fd = mkstemp(path);
	ck_assert_int_ge(fd, 0);
	ck_assert_int_eq(write(fd, text, strlen(text)), (ssize_t)strlen(text));
	close(fd);
	return path;
}

START_TEST(key_file_reads_roles_skipping_blanks_and_comments)
{
	char *path = write_temp("# jobq keys\n\nadmin:adm-" SECRET "\n   \n  # indented comment\n"
	                        "submit:sub-" SECRET "\r\nread:read-" SECRET "   \n");
	struct auth_keys keys = {.n = 0};
	char err[256] = "";
	ck_assert_msg(auth_load_file(&keys, path, err, sizeof err) == 0, "%s", err);
	unlink(path);
	free(path);
	ck_assert_int_eq(keys.n, 3);
	ck_assert_int_eq(auth_check(&keys, "Bearer adm-" SECRET), AUTH_ADMIN);
	ck_assert_int_eq(auth_check(&keys, "Bearer sub-" SECRET), AUTH_SUBMIT);
	ck_assert_int_eq(auth_check(&keys, "bearer read-" SECRET), AUTH_READ);
	ck_assert_int_eq(auth_check(&keys, "BEARER  read-" SECRET " "), AUTH_READ);
	/* the digest is kept, never the key */
	for (int i = 0; i < keys.n; i++)
		ck_assert_ptr_null(strstr(keys.v[i].digest, SECRET));
}
END_TEST

static const struct {
	const char *text;
	int line;
	const char *why;
} bad_key_files[] = {
	{"admin:a-" SECRET "\nnocolon" SECRET "\n", 2, "expected ROLE:KEY"},
	{"# c\n\nroot:" SECRET "\n", 3, "the role must be admin, submit or read"},
	{"Admin:" SECRET "\n", 1, "the role must be admin, submit or read"},
	{"read:\n", 1, "the key is empty"},
	{"read:" SECRET " more\n", 1, "no blanks"},
	{"read:" SECRET "\nadmin:" SECRET "\n", 2, "listed twice"},
};

START_TEST(key_file_errors_name_the_line_never_the_key)
{
	char *path = write_temp(bad_key_files[_i].text);
	struct auth_keys keys = {.n = 0};
	char err[256] = "", want[64];
	ck_assert_int_eq(auth_load_file(&keys, path, err, sizeof err), -1);
	snprintf(want, sizeof want, " line %d: ", bad_key_files[_i].line);
	ck_assert_msg(strstr(err, want) && strstr(err, bad_key_files[_i].why) && strstr(err, path),
	              "case %d: %s", _i, err);
	ck_assert_msg(!strstr(err, SECRET), "the key leaked: %s", err);
	unlink(path);
	free(path);
}
END_TEST

START_TEST(key_file_missing_names_the_path)
{
	struct auth_keys keys = {.n = 0};
	char err[256] = "";
	ck_assert_int_eq(auth_load_file(&keys, "/nonexistent/jobq.keys", err, sizeof err), -1);
	ck_assert_msg(strstr(err, "/nonexistent/jobq.keys") && strstr(err, "No such file"), "%s", err);
}
END_TEST

START_TEST(key_list_reads_items_and_names_the_bad_one)
{
	struct auth_keys keys = {.n = 0};
	char err[256] = "";
	ck_assert_int_eq(auth_load_list(&keys, "read:r-" SECRET ", submit:s-" SECRET, "JOBQ_API_KEYS", err,
	                                sizeof err), 0);
	ck_assert_int_eq(keys.n, 2);
	ck_assert_int_eq(auth_check(&keys, "Bearer s-" SECRET), AUTH_SUBMIT);
	keys.n = 0;
	ck_assert_int_eq(auth_load_list(&keys, "read:r-" SECRET ",boss:" SECRET, "JOBQ_API_KEYS", err,
	                                sizeof err), -1);
	ck_assert_msg(strstr(err, "JOBQ_API_KEYS item 2: the role") && !strstr(err, SECRET), "%s", err);
}
END_TEST

START_TEST(bearer_check_refuses_what_is_not_a_known_key)
{
	struct auth_keys keys = {.n = 0};
	char why[128];
	ck_assert_int_eq(auth_add(&keys, "admin:" SECRET, why, sizeof why), 0);
	ck_assert_int_eq(auth_check(&keys, NULL), AUTH_NONE);
	ck_assert_int_eq(auth_check(&keys, ""), AUTH_NONE);
	ck_assert_int_eq(auth_check(&keys, SECRET), AUTH_NONE);            /* no scheme */
	ck_assert_int_eq(auth_check(&keys, "Basic " SECRET), AUTH_NONE);
	ck_assert_int_eq(auth_check(&keys, "Bearer"), AUTH_NONE);
	ck_assert_int_eq(auth_check(&keys, "Bearer "), AUTH_NONE);
	ck_assert_int_eq(auth_check(&keys, "Bearer " SECRET "x"), AUTH_NONE);
	ck_assert_int_eq(auth_check(&keys, "Bearer " "s3cret-never-show"), AUTH_NONE);
	ck_assert_int_eq(auth_check(&keys, "Bearer " SECRET), AUTH_ADMIN);
}
END_TEST

/* ---- configuration ----------------------------------------------------- */

START_TEST(config_reads_the_access_flags)
{
	char *path = write_temp("read:r-" SECRET "\n");
	char *argv[] = {"jobqd", "--api-key-file", path, "--metrics-public", "--insecure-no-auth",
	                "--cors-origin", "https://app.example", "--cors-origin=http://localhost:3000",
	                "--trust-proxy", "127.0.0.1/32", "--trust-proxy", "fd00::/8",
	                "--log-format", "json", NULL};
	struct config cfg;
	char err[256] = "";
	ck_assert_msg(config_load(&cfg, ARGC(argv), argv, err, sizeof err) == CONFIG_OK, "%s", err);
	unlink(path);
	free(path);
	ck_assert_int_eq(cfg.api_keys.n, 1);
	ck_assert(cfg.metrics_public);
	ck_assert(cfg.insecure_no_auth);
	ck_assert_int_eq(cfg.ncors_origins, 2);
	ck_assert_str_eq(cfg.cors_origins[1], "http://localhost:3000");
	ck_assert_int_eq(cfg.ntrust_proxy, 2);
	ck_assert_int_eq(cfg.trust_proxy[1].family, AF_INET6);
	ck_assert_int_eq(cfg.log_format, LOG_FORMAT_JSON);
}
END_TEST

START_TEST(config_access_defaults_are_closed)
{
	char *argv[] = {"jobqd", NULL};
	struct config cfg;
	char err[256] = "";
	ck_assert_int_eq(config_load(&cfg, ARGC(argv), argv, err, sizeof err), CONFIG_OK);
	ck_assert(!cfg.metrics_public);
	ck_assert(!cfg.insecure_no_auth);
	ck_assert_int_eq(cfg.ncors_origins, 0);
	ck_assert_int_eq(cfg.ntrust_proxy, 0);
	ck_assert_int_eq(cfg.log_format, LOG_FORMAT_LOGFMT);
}
END_TEST

static const char *const bad_access_flags[][2] = {
	{"--cors-origin", "app.example"},
	{"--cors-origin", "https://app.example/"},
	{"--cors-origin", "https://app.example/path"},
	{"--cors-origin", "*"},
	{"--cors-origin", "https://"},
	{"--trust-proxy", "10.0.0.0/33"},
	{"--trust-proxy", "proxy.internal"},
	{"--log-format", "text"},
	{"--insecure-no-auth=maybe", NULL},
};

START_TEST(config_refuses_bad_access_flags)
{
	char *argv[] = {"jobqd", (char *)bad_access_flags[_i][0], (char *)bad_access_flags[_i][1], NULL};
	struct config cfg;
	char err[256] = "";
	int argc = bad_access_flags[_i][1] ? 3 : 2;
	ck_assert_int_eq(config_load(&cfg, argc, argv, err, sizeof err), CONFIG_ERROR);
	ck_assert_msg(strstr(err, bad_access_flags[_i][1] ? bad_access_flags[_i][1] : "maybe"), "%s", err);
}
END_TEST

START_TEST(config_exposure_needs_a_key_or_the_insecure_switch)
{
	struct config cfg;
	char err[256] = "";
	char *argv[] = {"jobqd", "--listen", "0.0.0.0:8080", NULL};
	ck_assert_int_eq(config_load(&cfg, ARGC(argv), argv, err, sizeof err), CONFIG_OK);
	ck_assert_int_eq(config_check_exposure(&cfg, err, sizeof err), -1);
	ck_assert_msg(strstr(err, "0.0.0.0") && strstr(err, "--insecure-no-auth"), "%s", err);
	cfg.insecure_no_auth = true;
	ck_assert_int_eq(config_check_exposure(&cfg, err, sizeof err), 0);
	cfg.insecure_no_auth = false;
	char why[128];
	ck_assert_int_eq(auth_add(&cfg.api_keys, "read:" SECRET, why, sizeof why), 0);
	ck_assert_int_eq(config_check_exposure(&cfg, err, sizeof err), 0);
	char *loop[] = {"jobqd", "--listen", "[::1]:0", NULL};
	ck_assert_int_eq(config_load(&cfg, ARGC(loop), loop, err, sizeof err), CONFIG_OK);
	ck_assert_int_eq(config_check_exposure(&cfg, err, sizeof err), 0);
}
END_TEST

/* A PostgreSQL URL selects the pg backend; anything else is a SQLite
 * path. The schema defaults to jobq and takes an unquoted identifier. */
START_TEST(config_db_url_selects_pg_and_its_schema)
{
	struct config cfg;
	char err[256] = "";
	char *plain[] = {"jobqd", NULL};
	ck_assert_int_eq(config_load(&cfg, ARGC(plain), plain, err, sizeof err), CONFIG_OK);
	ck_assert(!config_db_is_pg(&cfg));
	ck_assert_str_eq(cfg.db_schema, "jobq");
	const char *const pg[] = {"postgres://jobq@127.0.0.1/jobq", "postgresql://127.0.0.1:5432/jobq"};
	for (size_t i = 0; i < sizeof pg / sizeof pg[0]; i++) {
		char *argv[] = {"jobqd", "--db", (char *)pg[i], "--db-schema", "queue_2", NULL};
		ck_assert_int_eq(config_load(&cfg, ARGC(argv), argv, err, sizeof err), CONFIG_OK);
		ck_assert_msg(config_db_is_pg(&cfg), "%s", pg[i]);
		ck_assert_str_eq(cfg.db_schema, "queue_2");
	}
	const char *const files[] = {"./postgres://x", "postgres:/x", "pg.db", "POSTGRES://x/y"};
	for (size_t i = 0; i < sizeof files / sizeof files[0]; i++) {
		char *argv[] = {"jobqd", "--db", (char *)files[i], NULL};
		ck_assert_int_eq(config_load(&cfg, ARGC(argv), argv, err, sizeof err), CONFIG_OK);
		ck_assert_msg(!config_db_is_pg(&cfg), "%s", files[i]);
	}
	setenv("JOBQ_DB_SCHEMA", "_from_env", 1);
	ck_assert_int_eq(config_load(&cfg, ARGC(plain), plain, err, sizeof err), CONFIG_OK);
	unsetenv("JOBQ_DB_SCHEMA");
	ck_assert_str_eq(cfg.db_schema, "_from_env");
}
END_TEST

static const char *const bad_schemas[] = {
	"", "Jobq", "1jobq", "job-q", "job q", "jobq;drop", "\"jobq\"",
	"a234567890123456789012345678901234567890123456789012345678901234", /* 64 */
};

START_TEST(config_refuses_a_bad_db_schema)
{
	char *argv[] = {"jobqd", "--db-schema", (char *)bad_schemas[_i], NULL};
	struct config cfg;
	char err[256] = "";
	ck_assert_int_eq(config_load(&cfg, ARGC(argv), argv, err, sizeof err), CONFIG_ERROR);
	ck_assert_msg(strstr(err, "--db-schema"), "%s", err);
}
END_TEST

/* Every URL jobqd prints goes through store_mask_uri: a password in the
 * user part or a password= parameter never shows. */
static const char *const masked_uris[][2] = {
	{"postgresql://jobq:s3cret@db.example:5432/jobq", "postgresql://jobq:***@db.example:5432/jobq"},
	{"postgres://jobq:p%40ss@h/db?sslmode=require", "postgres://jobq:***@h/db?sslmode=require"},
	{"postgres://jobq:p@ss@h/db", "postgres://jobq:***@h/db"},
	{"postgres://jobq:@h/db", "postgres://jobq:***@h/db"},
	{"postgres://jobq@h/db?password=s3cret&sslmode=require", "postgres://jobq@h/db?password=***&sslmode=require"},
	{"postgres://h/db?sslmode=disable&password=s3cret", "postgres://h/db?sslmode=disable&password=***"},
	{"postgres://jobq@h/db?passfile=/etc/jobq/pgpass", "postgres://jobq@h/db?passfile=/etc/jobq/pgpass"},
	{"postgres://h:5432/db", "postgres://h:5432/db"},
	{"./data/jobq.db", "./data/jobq.db"},
};

START_TEST(uri_passwords_are_masked)
{
	char out[256];
	store_mask_uri(masked_uris[_i][0], out, sizeof out);
	ck_assert_str_eq(out, masked_uris[_i][1]);
	ck_assert_ptr_null(strstr(out, "s3cret"));
	char tiny[8];
	store_mask_uri(masked_uris[_i][0], tiny, sizeof tiny);
	ck_assert_uint_eq(strlen(tiny), 7);
}
END_TEST

/* A --db refused (too long) is echoed in the error, masked. */
START_TEST(config_error_on_db_masks_the_password)
{
	static char url[8192];
	int n = snprintf(url, sizeof url, "postgresql://jobq:s3cret@h/db?application_name=");
	memset(url + n, 'x', sizeof url - (size_t)n - 1);
	url[sizeof url - 1] = '\0';
	char *argv[] = {"jobqd", "--db", url, NULL};
	struct config cfg;
	char err[512] = "";
	ck_assert_int_eq(config_load(&cfg, ARGC(argv), argv, err, sizeof err), CONFIG_ERROR);
	ck_assert_msg(strstr(err, "--db") && strstr(err, "jobq:***@"), "%s", err);
	ck_assert_ptr_null(strstr(err, "s3cret"));
	setenv("JOBQ_DB", url, 1);
	ck_assert_int_eq(config_load(&cfg, 1, argv, err, sizeof err), CONFIG_ERROR);
	unsetenv("JOBQ_DB");
	ck_assert_msg(strstr(err, "JOBQ_DB") && strstr(err, "jobq:***@"), "%s", err);
	ck_assert_ptr_null(strstr(err, "s3cret"));
}
END_TEST

/* ---- log lines --------------------------------------------------------- */

static const struct log_field request_fields[] = {
	{"method", "GET", false}, {"route", "/v1/jobs/{id}", false},
	{"path", "/v1/jobs/a b\"c\n", false}, {"status", "200", true},
	{"duration_ms", "0.125", true}, {"client", "", false},
};

START_TEST(logfmt_quotes_only_what_needs_it)
{
	char out[512];
	log_format_line(out, sizeof out, LOG_FORMAT_LOGFMT, "2026-01-02T03:04:05.678Z", "info", "request",
	                request_fields, NELEMS(request_fields));
	ck_assert_str_eq(out, "ts=2026-01-02T03:04:05.678Z level=info msg=request method=GET "
	                      "route=/v1/jobs/{id} path=\"/v1/jobs/a b\\\"c\\n\" status=200 "
	                      "duration_ms=0.125 client=\"\"\n");
}
END_TEST

START_TEST(json_lines_are_one_object_each)
{
	char out[512];
	log_format_line(out, sizeof out, LOG_FORMAT_JSON, "2026-01-02T03:04:05.678Z", "info", "request",
	                request_fields, NELEMS(request_fields));
	size_t n = strlen(out);
	ck_assert(n > 2 && out[n - 1] == '\n' && !memchr(out, '\n', n - 1));
	cJSON *j = cJSON_Parse(out);
	ck_assert_ptr_nonnull(j);
	ck_assert_str_eq(cJSON_GetObjectItem(j, "msg")->valuestring, "request");
	ck_assert_str_eq(cJSON_GetObjectItem(j, "path")->valuestring, "/v1/jobs/a b\"c\n");
	ck_assert(cJSON_IsNumber(cJSON_GetObjectItem(j, "status")));
	ck_assert_double_eq(cJSON_GetObjectItem(j, "duration_ms")->valuedouble, 0.125);
	cJSON_Delete(j);
}
END_TEST

START_TEST(a_line_too_long_drops_whole_fields)
{
	char big[600], out[256];
	memset(big, 'x', sizeof big - 1);
	big[sizeof big - 1] = '\0';
	const struct log_field f[] = {{"a", "1", true}, {"path", big, false}, {"b", "2", true}};
	for (int fmt = 0; fmt < 2; fmt++) {
		size_t n = log_format_line(out, sizeof out, (enum log_format)fmt, "t", "info", "m", f, 3);
		ck_assert_uint_eq(n, strlen(out));
		ck_assert(out[n - 1] == '\n');
		ck_assert_ptr_null(strstr(out, "xxx"));
		if (fmt == LOG_FORMAT_JSON) {
			cJSON *j = cJSON_Parse(out);
			ck_assert_msg(j != NULL, "%s", out);
			ck_assert(cJSON_IsNumber(cJSON_GetObjectItem(j, "a")));
			cJSON_Delete(j);
		}
	}
}
END_TEST

START_TEST(invalid_utf8_is_replaced)
{
	char out[256];
	const struct log_field f[] = {{"path", "/\xff\xc3\xa9", false}};
	log_format_line(out, sizeof out, LOG_FORMAT_JSON, "t", "info", "m", f, 1);
	cJSON *j = cJSON_Parse(out);
	ck_assert_ptr_nonnull(j);
	ck_assert_str_eq(cJSON_GetObjectItem(j, "path")->valuestring, "/\xef\xbf\xbd\xc3\xa9");
	cJSON_Delete(j);
}
END_TEST

/* ---- query parameters (server/query.c, issue 16) ------------------------ */

static const struct {
	const char *method, *pattern;
	const char *names[4];
	int n;
	const char *field, *detail; /* NULL field: accepted */
} query_cases[] = {
	{"GET", "/v1/jobs", {"state", "limit", "cursor"}, 3, NULL, NULL},
	{"GET", "/v1/jobs", {"status"}, 1, "status", "did you mean state?"},
	{"GET", "/v1/jobs", {"STATE"}, 1, "STATE", "did you mean state?"},
	{"GET", "/v1/jobs", {"limit", "per_page"}, 2, "per_page", "did you mean limit?"},
	{"GET", "/v1/jobs", {"limit", "limit"}, 2, "limit", "more than once"},
	{"GET", "/v1/jobs", {"", "limit", ""}, 3, NULL, NULL},
	{"GET", "/v1/jobs", {"frobnicate"}, 1, "frobnicate", "it takes state, queue, type, batch_id, ids, limit and cursor"},
	{"GET", "/v1/queues", {"status"}, 1, "status", "it takes limit and cursor"},
	{"GET", "/v1/jobs/{id}", {"timeout"}, 1, "timeout", "did you mean wait?"},
	{"POST", "/v1/jobs", {"wait"}, 1, "wait", "POST /v1/jobs takes none"},
	{"GET", "/v1/some/new/route", {"x"}, 1, "x", "takes none"},
	{"GET", "/healthz", {"anything", "anything"}, 2, NULL, NULL},
	{"GET", "/app.js", {"v"}, 1, NULL, NULL},
	/* shown so that the reply stays UTF-8 text */
	{"GET", "/v1/jobs", {"\xff\"x"}, 1, "%FF\"x", "%FF\"x is not"},
	{"GET", "/v1/jobs", {"a\nb"}, 1, "a%0Ab", "a%0Ab is not"},
	{"GET", "/v1/jobs", {"caf\xc3\xa9"}, 1, "caf\xc3\xa9", "caf\xc3\xa9 is not"},
	{"GET", "/v1/jobs", {"\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9"
	                      "\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9"
	                      "\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9"},
	 1, "%C3%A9%C3%A9%C3%A9%C3%A9%C3%A9%C3%A9%C3%A9%C3%A9%C3%A9%C3%A9%C3%A9%C3%A9%C3%A9%C3%A9%C3%A9", "%C3%A9"},
};

START_TEST(query_names_are_checked_against_the_route)
{
	struct problem p;
	int rc = query_check_names(query_cases[_i].method, query_cases[_i].pattern, query_cases[_i].names,
	                           (size_t)query_cases[_i].n, &p);
	if (!query_cases[_i].field) {
		ck_assert_msg(rc == 0, "case %d refused: %s", _i, p.detail);
		return;
	}
	ck_assert_int_eq(rc, -1);
	ck_assert_int_eq(p.kind, PROBLEM_INVALID_QUERY);
	ck_assert_str_eq(p.field, query_cases[_i].field);
	ck_assert_msg(strstr(p.detail, query_cases[_i].detail) != NULL, "detail '%s' lacks '%s'", p.detail,
	              query_cases[_i].detail);
	ck_assert_msg(utf8_valid(p.field, strlen(p.field)) && utf8_valid(p.detail, strlen(p.detail)),
	              "case %d: field or detail is not UTF-8", _i);
}
END_TEST

/* ---- suite ------------------------------------------------------------- */

static TCase *tcase(Suite *s, const char *name)
{
	TCase *tc = tcase_create(name);
	tcase_set_timeout(tc, 30);
	suite_add_tcase(s, tc);
	return tc;
}

Suite *server_suite(void)
{
	Suite *s = suite_create("server");

	TCase *tc = tcase(s, "netaddr");
	tcase_add_loop_test(tc, cidr_parse_reads_blocks, 0, NELEMS(good_cidrs));
	tcase_add_loop_test(tc, cidr_parse_refuses_malformed, 0, NELEMS(bad_cidrs));
	tcase_add_test(tc, cidr_membership);
	tcase_add_loop_test(tc, egress_rules_see_through_every_spelling, 0, NELEMS(egress_cases));
	tcase_add_test(tc, egress_unspecified_counts_as_loopback);
	tcase_add_test(tc, addresses_parse_with_ports_and_brackets);
	tcase_add_test(tc, loopback_hosts);
	tcase_add_loop_test(tc, wait_from_query_or_prefer, 0, NELEMS(wait_cases));
	tcase_add_loop_test(tc, xff_walk_finds_the_client, 0, NELEMS(xff_cases));

	tc = tcase(s, "auth");
	tcase_add_test(tc, key_file_reads_roles_skipping_blanks_and_comments);
	tcase_add_loop_test(tc, key_file_errors_name_the_line_never_the_key, 0, NELEMS(bad_key_files));
	tcase_add_test(tc, key_file_missing_names_the_path);
	tcase_add_test(tc, key_list_reads_items_and_names_the_bad_one);
	tcase_add_test(tc, bearer_check_refuses_what_is_not_a_known_key);

	tc = tcase(s, "config");
	tcase_add_test(tc, config_reads_the_access_flags);
	tcase_add_test(tc, config_access_defaults_are_closed);
	tcase_add_loop_test(tc, config_refuses_bad_access_flags, 0, NELEMS(bad_access_flags));
	tcase_add_test(tc, config_exposure_needs_a_key_or_the_insecure_switch);
	tcase_add_test(tc, config_db_url_selects_pg_and_its_schema);
	tcase_add_loop_test(tc, config_refuses_a_bad_db_schema, 0, (int)(sizeof bad_schemas / sizeof bad_schemas[0]));
	tcase_add_loop_test(tc, uri_passwords_are_masked, 0, (int)(sizeof masked_uris / sizeof masked_uris[0]));
	tcase_add_test(tc, config_error_on_db_masks_the_password);

	tc = tcase(s, "log");
	tcase_add_test(tc, logfmt_quotes_only_what_needs_it);
	tcase_add_test(tc, json_lines_are_one_object_each);
	tcase_add_test(tc, a_line_too_long_drops_whole_fields);
	tcase_add_test(tc, invalid_utf8_is_replaced);

	tc = tcase(s, "query");
	tcase_add_loop_test(tc, query_names_are_checked_against_the_route, 0, NELEMS(query_cases));
	return s;
}
