/* Unit tests for the egress rules (workers/egress.c), without curl: rule
 * parsing and its errors, host patterns (exact, suffix, case and trailing
 * dot), CIDRs on IPv4 and IPv6 addresses, allow over deny, and the check
 * made before a name is resolved. */
#include <arpa/inet.h>
#include <check.h>
#include <netinet/in.h>
#include <string.h>

#include "workers/egress.h"

Suite *egress_suite(void);

static struct sockaddr_in v4(const char *text)
{
	struct sockaddr_in sa = {.sin_family = AF_INET};
	ck_assert_int_eq(inet_pton(AF_INET, text, &sa.sin_addr), 1);
	return sa;
}

static struct sockaddr_in6 v6(const char *text)
{
	struct sockaddr_in6 sa = {.sin6_family = AF_INET6};
	ck_assert_int_eq(inet_pton(AF_INET6, text, &sa.sin6_addr), 1);
	return sa;
}

static void add(struct egress_rules *r, const char *text)
{
	char err[256] = "";
	const char *texts[1] = {text};
	ck_assert_msg(egress_rules_add(r, texts, 1, "--test", err, sizeof err) == 0, "%s: %s", text, err);
}

START_TEST(egress_rule_that_is_neither_cidr_nor_host_is_refused_naming_flag_and_rule)
{
	const char *bad[] = {"", "10.0.0.0/33", "exa mple.com", "*.", "a/b", "*"};
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		struct egress_rules r = {0};
		char err[256] = "";
		const char *texts[1] = {bad[i]};
		ck_assert_msg(egress_rules_add(&r, texts, 1, "--http-deny", err, sizeof err) == -1, "%s", bad[i]);
		ck_assert_msg(strstr(err, "--http-deny") != NULL, "%s", err);
		ck_assert_msg(strstr(err, "is not a CIDR") != NULL, "%s", err);
		egress_rules_free(&r);
	}
}
END_TEST

START_TEST(egress_host_patterns_match_exactly_or_below_a_suffix)
{
	struct egress_rules r = {0};
	add(&r, "API.Example.com.");
	add(&r, "*.internal");
	ck_assert_int_eq(r.n, 2);
	ck_assert(!r.has_cidr);
	ck_assert_ptr_nonnull(egress_match_host(&r, "api.example.com"));
	ck_assert_ptr_null(egress_match_host(&r, "x.api.example.com"));
	ck_assert_ptr_nonnull(egress_match_host(&r, "db.internal"));
	ck_assert_ptr_nonnull(egress_match_host(&r, "a.b.internal"));
	ck_assert_ptr_null(egress_match_host(&r, "internal"));
	ck_assert_ptr_null(egress_match_host(&r, "notinternal"));
	ck_assert_str_eq(egress_match_host(&r, "db.internal")->text, "*.internal");
	egress_rules_free(&r);
	ck_assert_int_eq(r.n, 0);
}
END_TEST

START_TEST(egress_host_normalize_lowercases_and_drops_dot_and_brackets)
{
	char out[64];
	egress_host_normalize("WWW.Example.COM.", out, sizeof out);
	ck_assert_str_eq(out, "www.example.com");
	egress_host_normalize("[::1]", out, sizeof out);
	ck_assert_str_eq(out, "::1");
	egress_host_normalize("abcdef", out, 4);
	ck_assert_str_eq(out, "abc");
}
END_TEST

START_TEST(egress_cidrs_match_v4_v6_and_v4_inside_v6)
{
	struct egress_rules r = {0};
	add(&r, "10.0.0.0/8");
	add(&r, "fd00::/8");
	ck_assert(r.has_cidr);
	struct sockaddr_in a = v4("10.1.2.3"), b = v4("11.0.0.1");
	struct sockaddr_in6 c = v6("fd12::1"), d = v6("::ffff:10.9.9.9"), e = v6("2001:db8::1");
	ck_assert_ptr_nonnull(egress_match_addr(&r, (struct sockaddr *)&a));
	ck_assert_ptr_null(egress_match_addr(&r, (struct sockaddr *)&b));
	ck_assert_ptr_nonnull(egress_match_addr(&r, (struct sockaddr *)&c));
	ck_assert_ptr_nonnull(egress_match_addr(&r, (struct sockaddr *)&d));
	ck_assert_ptr_null(egress_match_addr(&r, (struct sockaddr *)&e));
	egress_rules_free(&r);
}
END_TEST

START_TEST(egress_builtin_denies_metadata_and_allow_overrides_deny)
{
	struct egress_rules allow = {0}, deny = {0};
	char err[256] = "", why[256] = "";
	ck_assert_int_eq(egress_rules_add_builtin(&deny, err, sizeof err), 0);
	struct sockaddr_in meta = v4("169.254.169.254"), pub = v4("93.184.216.34");
	ck_assert_int_eq(egress_vet(&allow, &deny, "x.example", (struct sockaddr *)&meta, why, sizeof why), -1);
	ck_assert_str_eq(why, "refused: 169.254.169.254 is in denied range 169.254.0.0/16");
	ck_assert_int_eq(egress_vet(&allow, &deny, "x.example", (struct sockaddr *)&pub, why, sizeof why), 0);
	ck_assert_int_eq(egress_vet(&allow, &deny, "metadata.google.internal", NULL, why, sizeof why), -1);
	ck_assert_str_eq(why, "refused: host metadata.google.internal matches denied pattern metadata.google.internal");
	add(&allow, "169.254.169.254/32");
	ck_assert_int_eq(egress_vet(&allow, &deny, "x.example", (struct sockaddr *)&meta, why, sizeof why), 0);
	/* Before resolving, a denied name is let through when an allowed
	 * address could still make it pass. */
	ck_assert_int_eq(egress_vet(&allow, &deny, "metadata.google.internal", NULL, why, sizeof why), 0);
	egress_rules_free(&allow);
	egress_rules_free(&deny);
}
END_TEST

Suite *egress_suite(void)
{
	Suite *s = suite_create("egress");
	TCase *tc = tcase_create("egress");
	tcase_add_test(tc, egress_rule_that_is_neither_cidr_nor_host_is_refused_naming_flag_and_rule);
	tcase_add_test(tc, egress_host_patterns_match_exactly_or_below_a_suffix);
	tcase_add_test(tc, egress_host_normalize_lowercases_and_drops_dot_and_brackets);
	tcase_add_test(tc, egress_cidrs_match_v4_v6_and_v4_inside_v6);
	tcase_add_test(tc, egress_builtin_denies_metadata_and_allow_overrides_deny);
	suite_add_tcase(s, tc);
	return s;
}
