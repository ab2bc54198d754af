/* Unit tests for the shared text and hash helpers: utf8_seq_len on each
 * sequence length and each way a sequence is invalid (utf8_valid's table
 * is in unit_core.c), FNV-1a's published test vectors through hash_str
 * and hash_add, and a lock key that must not change. */
#include <check.h>
#include <stdint.h>
#include <string.h>

#include "core/hash.h"
#include "core/text.h"
#include "store/pg_schema.h"

Suite *text_suite(void);

static const struct {
	const char *s;
	size_t n;
	size_t want;
} seq_cases[] = {
	{"a", 1, 1},
	{"\x7f", 1, 1},
	{"\xc3\xa9", 2, 2},            /* é */
	{"\xe2\x82\xac", 3, 3},        /* € */
	{"\xf0\x9f\x98\x80", 4, 4},    /* an emoji */
	{"\xf4\x8f\xbf\xbf", 4, 4},    /* U+10FFFF */
	{"\xc3\xa9zz", 4, 2},          /* only the first character counts */
	{"\x80", 1, 0},                /* a lone continuation byte */
	{"\xc0\xaf", 2, 0},            /* overlong '/' */
	{"\xe0\x80\xaf", 3, 0},        /* overlong, 3 bytes */
	{"\xf0\x80\x80\xaf", 4, 0},    /* overlong, 4 bytes */
	{"\xed\xa0\x80", 3, 0},        /* a surrogate */
	{"\xf4\x90\x80\x80", 4, 0},    /* past U+10FFFF */
	{"\xf8\x88\x80\x80\x80", 5, 0}, /* a 5-byte form */
	{"\xe2\x82\xac", 2, 0},        /* cut short by n */
	{"\xe2\x82", 4, 0},            /* cut short by the NUL */
	{"\xe2" "a" "\xac", 3, 0},     /* a non-continuation byte inside */
};

START_TEST(utf8_seq_len_measures_one_valid_sequence)
{
	ck_assert_msg(utf8_seq_len(seq_cases[_i].s, seq_cases[_i].n) == seq_cases[_i].want, "case %d", _i);
}
END_TEST

START_TEST(utf8_valid_takes_nul_bytes_and_refuses_a_cut_tail)
{
	ck_assert(utf8_valid("a\0b", 3));
	ck_assert(utf8_valid("", 0));
	ck_assert(utf8_valid("\xe2\x82\xac\xc3\xa9", 5));
	ck_assert(!utf8_valid("\xe2\x82\xac\xc3", 4));
}
END_TEST

START_TEST(hash_matches_fnv1a_64_test_vectors)
{
	ck_assert(hash_str("") == UINT64_C(0xcbf29ce484222325));
	ck_assert(hash_str("a") == UINT64_C(0xaf63dc4c8601ec8c));
	ck_assert(hash_str("foobar") == UINT64_C(0x85944171f73967e8));
	/* In parts, the same as in one go. */
	ck_assert(hash_add(hash_add(HASH_INIT, "foo", 3), "bar", 3) == hash_str("foobar"));
	ck_assert(hash_add(HASH_INIT, "a\0b", 3) != hash_str("a"));
}
END_TEST

/* PostgreSQL's advisory lock keys are the hash of "jobq:WHAT:SCHEMA": a
 * node of an earlier build must take the same lock, so the value is fixed. */
START_TEST(pg_lock_key_keeps_its_value)
{
	ck_assert(pg_lock_key("migrate", "public") == INT64_C(-7521669152713880205));
}
END_TEST

Suite *text_suite(void)
{
	Suite *s = suite_create("text");
	TCase *tc = tcase_create("text");
	tcase_add_loop_test(tc, utf8_seq_len_measures_one_valid_sequence, 0,
	                    (int)(sizeof seq_cases / sizeof seq_cases[0]));
	tcase_add_test(tc, utf8_valid_takes_nul_bytes_and_refuses_a_cut_tail);
	tcase_add_test(tc, hash_matches_fnv1a_64_test_vectors);
	tcase_add_test(tc, pg_lock_key_keeps_its_value);
	suite_add_tcase(s, tc);
	return s;
}
