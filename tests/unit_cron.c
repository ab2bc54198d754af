/* Unit tests for time zones (core/tz.c) and cron expressions (core/cron.c):
 * zone names refused or unknown, TZif files built here byte by byte
 * (version 1, a version 2 "slim" file that is all footer, damaged ones),
 * the system's tzdata for Europe/Berlin, America/New_York and
 * Australia/Sydney (2026's changes and 2040, past the files' last
 * transition), the cron parser's tables and next fire times in UTC and
 * across daylight-saving changes. */
#include <check.h>
#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/clock.h"
#include "core/cron.h"
#include "core/tz.h"

Suite *cron_suite(void);

#define TEST_TIMEOUT_S 30
#define NELEMS(a) ((int)(sizeof(a) / sizeof((a)[0])))
#define NEVER "never"

/* ---- helpers --------------------------------------------------------- */

static int64_t at(const char *rfc3339)
{
	int64_t ms;
	ck_assert_msg(clock_parse_rfc3339(rfc3339, &ms) == 0, "bad test time %s", rfc3339);
	return ms / 1000;
}

/* "2026-03-29T01:00:00Z" */
static const char *iso(int64_t t, char out[32])
{
	clock_rfc3339(t * 1000, out);
	char *dot = strchr(out, '.');
	if (dot)
		memcpy(dot, "Z", 2);
	return out;
}

/* A zone from the system's tzdata; fails the test with the loader's
 * message when it is missing. */
static struct tz *zone(const char *name)
{
	unsetenv("TZDIR");
	struct tz *z = NULL;
	char err[256];
	enum tz_status rc = tz_load(name, &z, err, sizeof err);
	ck_assert_msg(rc == TZ_OK, "tz_load(%s): %s (is Debian's tzdata installed?)", name, err);
	ck_assert_ptr_nonnull(z);
	return z;
}

static struct cron parse_ok(const char *text)
{
	struct cron c;
	char err[256];
	ck_assert_msg(cron_parse(text, &c, err, sizeof err) == 0, "cron_parse(%s): %s", text, err);
	return c;
}

/* The next fire of expr in zone z after `after`, as RFC 3339 or NEVER. */
static const char *next_of(const char *expr, const struct tz *z, int64_t after, char out[32])
{
	struct cron c = parse_ok(expr);
	int64_t next = 0;
	enum cron_next_status rc = cron_next(&c, z, after, &next);
	ck_assert_msg(rc == CRON_FOUND || rc == CRON_NEVER, "cron_next(%s) = %d", expr, rc);
	if (rc == CRON_NEVER)
		return strcpy(out, NEVER);
	ck_assert_msg(next > after, "%s: next %lld is not after %lld", expr, (long long)next, (long long)after);
	ck_assert_msg(next % 60 == 0, "%s: next %lld is not on a minute", expr, (long long)next);
	return iso(next, out);
}

/* ---- TZif files built here ------------------------------------------- */

struct tzif {
	char version; /* '\0' or '2' */
	int ntimes;
	int64_t times[4];
	uint8_t idx[4];
	int ntypes;
	int32_t utoff[3];
	uint8_t isdst[3];
	uint8_t abbr[3];
	const char *chars; /* abbreviations, each NUL-terminated */
	size_t nchars;
	const char *footer;
	int leap; /* leap second records to add */
};

static void put32(unsigned char **p, uint32_t v)
{
	(*p)[0] = (unsigned char)(v >> 24);
	(*p)[1] = (unsigned char)(v >> 16);
	(*p)[2] = (unsigned char)(v >> 8);
	(*p)[3] = (unsigned char)v;
	*p += 4;
}

static void put_block(unsigned char **p, const struct tzif *s, char version, int tsize)
{
	memcpy(*p, "TZif", 4);
	(*p)[4] = (unsigned char)version;
	memset(*p + 5, 0, 15);
	*p += 20;
	uint32_t counts[6] = {0, 0, (uint32_t)s->leap, (uint32_t)s->ntimes, (uint32_t)s->ntypes, (uint32_t)s->nchars};
	for (int i = 0; i < 6; i++)
		put32(p, counts[i]);
	for (int i = 0; i < s->ntimes; i++) {
		if (tsize == 8)
			put32(p, (uint32_t)((uint64_t)s->times[i] >> 32));
		put32(p, (uint32_t)s->times[i]);
	}
	for (int i = 0; i < s->ntimes; i++)
		*(*p)++ = s->idx[i];
	for (int i = 0; i < s->ntypes; i++) {
		put32(p, (uint32_t)s->utoff[i]);
		*(*p)++ = s->isdst[i];
		*(*p)++ = s->abbr[i];
	}
	memcpy(*p, s->chars, s->nchars);
	*p += s->nchars;
	for (int i = 0; i < s->leap; i++) {
		memset(*p, 0, (size_t)tsize + 4);
		*p += tsize + 4;
	}
}

/* Writes s as file `name` under dir; returns its length. cut > 0 writes
 * only the first cut bytes. */
static size_t write_tzif(const char *dir, const char *name, const struct tzif *s, size_t cut)
{
	unsigned char buf[1024], *p = buf;
	put_block(&p, s, s->version, 4);
	if (s->version != '\0') {
		put_block(&p, s, s->version, 8);
		int n = snprintf((char *)p, 300, "\n%s\n", s->footer ? s->footer : "");
		p += n;
	}
	size_t len = (size_t)(p - buf);
	if (cut > 0 && cut < len)
		len = cut;
	char path[512];
	snprintf(path, sizeof path, "%s/%s", dir, name);
	FILE *f = fopen(path, "wb");
	ck_assert_msg(f != NULL, "fopen(%s): %s", path, strerror(errno));
	ck_assert_uint_eq(fwrite(buf, 1, len, f), len);
	ck_assert_int_eq(fclose(f), 0);
	return len;
}

static char tzdir[256];

/* A fresh TZDIR for this test (Check forks each test, so setenv stays in
 * it). */
static void make_tzdir(void)
{
	const char *t = getenv("TMPDIR");
	snprintf(tzdir, sizeof tzdir, "%s/jobq-tz-XXXXXX", t && *t ? t : "/tmp");
	ck_assert_msg(mkdtemp(tzdir) != NULL, "mkdtemp: %s", strerror(errno));
	ck_assert_int_eq(setenv("TZDIR", tzdir, 1), 0);
}

static void remove_tzdir(const char *const *files, int n)
{
	char path[512];
	for (int i = 0; i < n; i++) {
		snprintf(path, sizeof path, "%s/%s", tzdir, files[i]);
		unlink(path);
	}
	rmdir(tzdir);
}

/* A "slim" Berlin: no transitions at all, everything from the footer. */
static const struct tzif slim_berlin = {
	.version = '2',
	.ntypes = 1,
	.utoff = {3600},
	.chars = "CET",
	.nchars = 4,
	.footer = "CET-1CEST,M3.5.0,M10.5.0/3",
};

/* Version 1, no footer: +01:00 until 2000-01-01, then +02:00 for good. */
static const struct tzif v1_zone = {
	.version = '\0',
	.ntimes = 1,
	.times = {946684800},
	.idx = {1},
	.ntypes = 2,
	.utoff = {3600, 7200},
	.abbr = {0, 4},
	.chars = "ONE\0TWO",
	.nchars = 8,
};

/* ---- tz: names and files --------------------------------------------- */

/* Each name and how the message quotes it. */
static const struct {
	const char *name, *quoted;
} bad_names[] = {
	{"../etc/passwd", "../etc/passwd"},
	{"/etc/localtime", "/etc/localtime"},
	{"Europe/../../etc/passwd", "Europe/../../etc/passwd"},
	{"Europe/..", "Europe/.."},
	{"", ""},
	{"Europe/Berlin\n", "Europe/Berlin?"},
	{"Europe Berlin", "Europe Berlin"},
	{"Europe/Berlin;true", "Europe/Berlin;true"},
	{"Europe\\Berlin", "Europe\\Berlin"},
	{"Europe/Berl\xc3\xadn", "Europe/Berl??n"},
	{".hidden", ".hidden"},
	{"Etc/GMT*", "Etc/GMT*"},
	{"Europe/Berlin_Europe/Berlin_Europe/Berlin_Europe/Berlin_Europe/Berlin.",
	 "Europe/Berlin_Europe/Berlin_Europe/Berlin_Europe/Berlin_Europe/B..."},
};

START_TEST(tz_load_refuses_names_outside_the_zone_alphabet)
{
	struct tz *z = (struct tz *)1;
	char err[256], want[256];
	ck_assert_int_eq(tz_load(bad_names[_i].name, &z, err, sizeof err), TZ_INVALID);
	ck_assert_ptr_null(z);
	snprintf(want, sizeof want, "time zone \"%s\" is not a valid name", bad_names[_i].quoted);
	ck_assert_str_eq(err, want);
}
END_TEST

START_TEST(tz_load_names_an_unknown_zone)
{
	unsetenv("TZDIR");
	struct tz *z = NULL;
	char err[256];
	ck_assert_int_eq(tz_load("Mars/Olympus_Mons", &z, err, sizeof err), TZ_INVALID);
	ck_assert_ptr_null(z);
	ck_assert_str_eq(err, "time zone \"Mars/Olympus_Mons\" is unknown");
	/* a directory of zones is not a zone */
	ck_assert_int_eq(tz_load("Europe", &z, err, sizeof err), TZ_INVALID);
	ck_assert_str_eq(err, "time zone \"Europe\" is unknown");
	/* zoneinfo's data files that are not TZif */
	ck_assert_int_eq(tz_load("leapseconds", &z, err, sizeof err), TZ_INVALID);
	ck_assert_str_eq(err, "time zone \"leapseconds\" is not a time zone file");
	/* an errlen of 0 writes nothing */
	ck_assert_int_eq(tz_load("Mars/Base", &z, NULL, 0), TZ_INVALID);
}
END_TEST

START_TEST(tz_load_utc_needs_no_files)
{
	make_tzdir(); /* empty: no zone files at all */
	struct tz *z = NULL;
	char err[256];
	ck_assert_int_eq(tz_load("UTC", &z, err, sizeof err), TZ_OK);
	ck_assert_str_eq(tz_name(z), "UTC");
	struct tz_time w;
	ck_assert_int_eq(tz_local(z, at("2026-03-29T01:30:00Z"), &w), 0);
	ck_assert_int_eq(w.hour, 1);
	ck_assert_int_eq(w.minute, 30);
	ck_assert_int_eq(w.utoff, 0);
	ck_assert_str_eq(w.abbr, "UTC");
	tz_free(z);
	ck_assert_int_eq(tz_load("Europe/Berlin", &z, err, sizeof err), TZ_INVALID);
	ck_assert_str_eq(err, "time zone \"Europe/Berlin\" is unknown");
	tz_free(NULL);
	remove_tzdir(NULL, 0);
}
END_TEST

START_TEST(tz_load_refuses_zones_with_leap_seconds)
{
	unsetenv("TZDIR");
	struct tz *z = NULL;
	char err[256];
	ck_assert_int_eq(tz_load("right/Europe/Berlin", &z, err, sizeof err), TZ_INVALID);
	ck_assert_str_eq(err, "time zone \"right/Europe/Berlin\" counts leap seconds, which are not supported");
}
END_TEST

START_TEST(tz_slim_file_is_answered_from_its_footer)
{
	make_tzdir();
	write_tzif(tzdir, "Slim", &slim_berlin, 0);
	struct tz *z = NULL;
	char err[256], s[32];
	ck_assert_msg(tz_load("Slim", &z, err, sizeof err) == TZ_OK, "%s", err);
	struct tz_time w;
	ck_assert_int_eq(tz_local(z, at("2026-03-29T00:59:59Z"), &w), 0);
	ck_assert_int_eq(w.hour, 1);
	ck_assert_int_eq(w.utoff, 3600);
	ck_assert_str_eq(w.abbr, "CET");
	ck_assert_int_eq(tz_local(z, at("2026-03-29T01:00:00Z"), &w), 0);
	ck_assert_int_eq(w.hour, 3);
	ck_assert_int_eq(w.utoff, 7200);
	ck_assert_int_eq(w.isdst, 1);
	ck_assert_str_eq(w.abbr, "CEST");
	/* the same answers as the real (fat) file */
	ck_assert_str_eq(next_of("30 2 * * *", z, at("2026-03-28T12:00:00Z"), s), "2026-03-29T01:00:00Z");
	ck_assert_str_eq(next_of("30 2 * * *", z, at("2026-10-24T12:00:00Z"), s), "2026-10-25T00:30:00Z");
	ck_assert_str_eq(next_of("30 2 * * *", z, at("2026-10-25T00:30:00Z"), s), "2026-10-26T01:30:00Z");
	tz_free(z);
	const char *files[] = {"Slim"};
	remove_tzdir(files, 1);
}
END_TEST

START_TEST(tz_version_1_file_keeps_its_last_type)
{
	make_tzdir();
	write_tzif(tzdir, "Old", &v1_zone, 0);
	struct tz *z = NULL;
	char err[256];
	ck_assert_msg(tz_load("Old", &z, err, sizeof err) == TZ_OK, "%s", err);
	struct tz_time w;
	ck_assert_int_eq(tz_local(z, at("1999-12-31T22:59:59Z"), &w), 0);
	ck_assert_int_eq(w.hour, 23);
	ck_assert_str_eq(w.abbr, "ONE");
	ck_assert_int_eq(tz_local(z, at("2040-06-01T00:00:00Z"), &w), 0);
	ck_assert_int_eq(w.hour, 2);
	ck_assert_str_eq(w.abbr, "TWO");
	/* 2000-01-01 01:00-01:59 local never happened: the gap's end */
	struct tz_time wall = {.year = 2000, .month = 1, .day = 1, .hour = 1, .minute = 30};
	int64_t t;
	ck_assert_int_eq(tz_resolve(z, &wall, &t), 0);
	ck_assert_int_eq(t, 946684800);
	tz_free(z);
	const char *files[] = {"Old"};
	remove_tzdir(files, 1);
}
END_TEST

START_TEST(tz_damaged_files_are_refused)
{
	make_tzdir();
	struct tz *z = NULL;
	char err[256];
	size_t full = write_tzif(tzdir, "Cut", &slim_berlin, 0);
	write_tzif(tzdir, "Cut", &slim_berlin, full - 10); /* the footer's end missing */
	ck_assert_int_eq(tz_load("Cut", &z, err, sizeof err), TZ_INVALID);
	ck_assert_str_eq(err, "time zone \"Cut\" is not a time zone file");

	struct tzif bad_footer = slim_berlin;
	bad_footer.footer = "CET-1CEST,M13.5.0,M10.5.0/3";
	write_tzif(tzdir, "Footer", &bad_footer, 0);
	ck_assert_int_eq(tz_load("Footer", &z, err, sizeof err), TZ_INVALID);
	ck_assert_str_eq(err, "time zone \"Footer\" has a time zone rule that cannot be read");

	struct tzif bad_index = v1_zone;
	bad_index.idx[0] = 2; /* only types 0 and 1 exist */
	write_tzif(tzdir, "Index", &bad_index, 0);
	ck_assert_int_eq(tz_load("Index", &z, err, sizeof err), TZ_INVALID);
	ck_assert_str_eq(err, "time zone \"Index\" is not a time zone file");

	struct tzif leap = slim_berlin;
	leap.leap = 1;
	write_tzif(tzdir, "Leap", &leap, 0);
	ck_assert_int_eq(tz_load("Leap", &z, err, sizeof err), TZ_INVALID);
	ck_assert_str_eq(err, "time zone \"Leap\" counts leap seconds, which are not supported");

	FILE *f = fopen(strcat(strcpy(err, tzdir), "/Text"), "w");
	ck_assert_ptr_nonnull(f);
	fputs("Europe/Berlin\n", f);
	fclose(f);
	ck_assert_int_eq(tz_load("Text", &z, err, sizeof err), TZ_INVALID);
	ck_assert_str_eq(err, "time zone \"Text\" is not a time zone file");
	ck_assert_ptr_null(z);
	const char *files[] = {"Cut", "Footer", "Index", "Leap", "Text"};
	remove_tzdir(files, NELEMS(files));
}
END_TEST

/* ---- tz: the system's zones ------------------------------------------ */

static const struct {
	const char *zone, *utc;
	int year, month, day, hour, minute, second;
	int32_t utoff;
	int isdst;
	const char *abbr;
} local_cases[] = {
	{"Europe/Berlin", "2026-03-29T00:59:59Z", 2026, 3, 29, 1, 59, 59, 3600, 0, "CET"},
	{"Europe/Berlin", "2026-03-29T01:00:00Z", 2026, 3, 29, 3, 0, 0, 7200, 1, "CEST"},
	{"Europe/Berlin", "2026-10-25T00:30:00Z", 2026, 10, 25, 2, 30, 0, 7200, 1, "CEST"},
	{"Europe/Berlin", "2026-10-25T01:30:00Z", 2026, 10, 25, 2, 30, 0, 3600, 0, "CET"},
	{"America/New_York", "2026-03-08T06:59:00Z", 2026, 3, 8, 1, 59, 0, -18000, 0, "EST"},
	{"America/New_York", "2026-03-08T07:00:00Z", 2026, 3, 8, 3, 0, 0, -14400, 1, "EDT"},
	{"America/New_York", "2026-11-01T05:30:00Z", 2026, 11, 1, 1, 30, 0, -14400, 1, "EDT"},
	{"America/New_York", "2026-11-01T06:30:00Z", 2026, 11, 1, 1, 30, 0, -18000, 0, "EST"},
	/* 2040: past the last transition in the files, from the footer */
	{"Europe/Berlin", "2040-07-01T12:00:00Z", 2040, 7, 1, 14, 0, 0, 7200, 1, "CEST"},
	{"Europe/Berlin", "2040-03-25T01:00:00Z", 2040, 3, 25, 3, 0, 0, 7200, 1, "CEST"},
	{"Europe/Berlin", "2040-12-31T23:00:00Z", 2041, 1, 1, 0, 0, 0, 3600, 0, "CET"},
	{"America/New_York", "2040-11-04T05:30:00Z", 2040, 11, 4, 1, 30, 0, -14400, 1, "EDT"},
	{"America/New_York", "2040-11-04T06:30:00Z", 2040, 11, 4, 1, 30, 0, -18000, 0, "EST"},
	{"Australia/Sydney", "2040-01-15T00:00:00Z", 2040, 1, 15, 11, 0, 0, 39600, 1, "AEDT"},
	{"Australia/Sydney", "2040-07-01T00:00:00Z", 2040, 7, 1, 10, 0, 0, 36000, 0, "AEST"},
	{"Asia/Kolkata", "2026-06-01T00:00:00Z", 2026, 6, 1, 5, 30, 0, 19800, 0, "IST"},
};

START_TEST(tz_local_gives_wall_time_offset_and_abbreviation)
{
	struct tz *z = zone(local_cases[_i].zone);
	struct tz_time w;
	ck_assert_int_eq(tz_local(z, at(local_cases[_i].utc), &w), 0);
	char got[96], want[96];
	snprintf(got, sizeof got, "%04d-%02d-%02d %02d:%02d:%02d %d %d %s", w.year, w.month, w.day, w.hour, w.minute,
	         w.second, w.utoff, w.isdst, w.abbr);
	snprintf(want, sizeof want, "%04d-%02d-%02d %02d:%02d:%02d %d %d %s", local_cases[_i].year,
	         local_cases[_i].month, local_cases[_i].day, local_cases[_i].hour, local_cases[_i].minute,
	         local_cases[_i].second, local_cases[_i].utoff, local_cases[_i].isdst, local_cases[_i].abbr);
	ck_assert_msg(strcmp(got, want) == 0, "%s at %s: got %s, want %s", local_cases[_i].zone, local_cases[_i].utc,
	              got, want);
	tz_free(z);
}
END_TEST

static const struct {
	const char *zone;
	int year, month, day, hour, minute;
	const char *utc;
} resolve_cases[] = {
	{"Europe/Berlin", 2026, 3, 29, 1, 59, "2026-03-29T00:59:00Z"},
	{"Europe/Berlin", 2026, 3, 29, 2, 0, "2026-03-29T01:00:00Z"},  /* gap: its end */
	{"Europe/Berlin", 2026, 3, 29, 2, 30, "2026-03-29T01:00:00Z"}, /* gap: its end */
	{"Europe/Berlin", 2026, 3, 29, 2, 59, "2026-03-29T01:00:00Z"}, /* gap: its end */
	{"Europe/Berlin", 2026, 3, 29, 3, 0, "2026-03-29T01:00:00Z"},
	{"Europe/Berlin", 2026, 3, 29, 3, 1, "2026-03-29T01:01:00Z"},
	{"Europe/Berlin", 2026, 10, 25, 1, 59, "2026-10-24T23:59:00Z"},
	{"Europe/Berlin", 2026, 10, 25, 2, 0, "2026-10-25T00:00:00Z"},  /* overlap: first */
	{"Europe/Berlin", 2026, 10, 25, 2, 30, "2026-10-25T00:30:00Z"}, /* overlap: first */
	{"Europe/Berlin", 2026, 10, 25, 3, 0, "2026-10-25T02:00:00Z"},
	{"America/New_York", 2026, 3, 8, 2, 30, "2026-03-08T07:00:00Z"},  /* gap */
	{"America/New_York", 2026, 11, 1, 1, 30, "2026-11-01T05:30:00Z"}, /* overlap */
	{"America/New_York", 2026, 11, 1, 2, 0, "2026-11-01T07:00:00Z"},
	{"Europe/Berlin", 2040, 3, 25, 2, 30, "2040-03-25T01:00:00Z"},  /* footer: gap */
	{"Europe/Berlin", 2040, 10, 28, 2, 30, "2040-10-28T00:30:00Z"}, /* footer: overlap */
	{"Australia/Sydney", 2040, 10, 7, 2, 30, "2040-10-06T16:00:00Z"}, /* footer: southern gap */
	{"Australia/Sydney", 2040, 4, 1, 2, 30, "2040-03-31T15:30:00Z"},  /* footer: southern overlap */
	{"UTC", 2026, 3, 29, 2, 30, "2026-03-29T02:30:00Z"},
};

START_TEST(tz_resolve_takes_gap_end_and_first_occurrence)
{
	struct tz *z = zone(resolve_cases[_i].zone);
	struct tz_time w = {.year = resolve_cases[_i].year, .month = resolve_cases[_i].month,
	                    .day = resolve_cases[_i].day, .hour = resolve_cases[_i].hour,
	                    .minute = resolve_cases[_i].minute};
	int64_t t = 0;
	char s[32];
	ck_assert_int_eq(tz_resolve(z, &w, &t), 0);
	ck_assert_msg(strcmp(iso(t, s), resolve_cases[_i].utc) == 0, "%s %04d-%02d-%02d %02d:%02d: got %s, want %s",
	              resolve_cases[_i].zone, w.year, w.month, w.day, w.hour, w.minute, s, resolve_cases[_i].utc);
	tz_free(z);
}
END_TEST

START_TEST(tz_resolve_refuses_impossible_wall_times)
{
	struct tz *z = zone("Europe/Berlin");
	const struct tz_time bad[] = {
		{.year = 2026, .month = 2, .day = 29}, {.year = 2026, .month = 13, .day = 1},
		{.year = 2026, .month = 1, .day = 0},  {.year = 2026, .month = 1, .day = 1, .hour = 24},
		{.year = 2026, .month = 1, .day = 1, .minute = 60}, {.year = 0, .month = 1, .day = 1},
		{.year = 10000, .month = 1, .day = 1},
	};
	for (int i = 0; i < NELEMS(bad); i++) {
		int64_t t = 42;
		ck_assert_int_eq(tz_resolve(z, &bad[i], &t), -1);
		ck_assert_int_eq(t, 42);
	}
	struct tz_time w;
	ck_assert_int_eq(tz_local(z, INT64_MAX, &w), -1);
	ck_assert_int_eq(tz_local(z, INT64_MIN, &w), -1);
	tz_free(z);
}
END_TEST

/* Every minute of 2026's change days, in both directions: wall time of an
 * instant resolves back to it, or (the second pass of an overlap) to the
 * first pass, one hour earlier. */
START_TEST(tz_local_and_resolve_agree_across_change_days)
{
	const char *zones[] = {"Europe/Berlin", "America/New_York", "Australia/Sydney"};
	const char *days[] = {"2026-03-28T00:00:00Z", "2026-10-24T00:00:00Z", "2026-03-07T00:00:00Z",
	                      "2026-10-31T00:00:00Z", "2026-04-04T00:00:00Z", "2026-10-03T00:00:00Z"};
	for (int zi = 0; zi < NELEMS(zones); zi++) {
		struct tz *z = zone(zones[zi]);
		for (int di = 0; di < NELEMS(days); di++) {
			for (int64_t t = at(days[di]); t < at(days[di]) + 3 * 86400; t += 60) {
				struct tz_time w;
				int64_t back;
				ck_assert_int_eq(tz_local(z, t, &w), 0);
				ck_assert_int_eq(tz_resolve(z, &w, &back), 0);
				ck_assert_msg(back == t || back == t - 3600, "%s at %lld: back %lld", zones[zi], (long long)t,
				              (long long)back);
			}
		}
		tz_free(z);
	}
}
END_TEST

/* ---- cron: the parser ------------------------------------------------- */

#define ALL_MIN UINT64_C(0x0FFFFFFFFFFFFFFF)
#define ALL_HOUR 0xFFFFFFu
#define ALL_DOM 0xFFFFFFFEu
#define ALL_MON 0x1FFEu
#define ALL_DOW 0x7Fu
#define B(n) (UINT64_C(1) << (n))

static const struct {
	const char *text;
	uint64_t minute;
	uint32_t hour, dom;
	uint16_t month;
	uint8_t dow;
	bool dom_r, dow_r;
} good_cron[] = {
	{"* * * * *", ALL_MIN, ALL_HOUR, ALL_DOM, ALL_MON, ALL_DOW, false, false},
	{"0 0 1 1 *", B(0), 1, B(1), B(1), ALL_DOW, true, false},
	{"*/15 9-17 * * mon-fri", B(0) | B(15) | B(30) | B(45), 0x3FE00, ALL_DOM, ALL_MON, 0x3E, false, true},
	{"5,10-20/5 0 1,15 JAN,Jul SUN", B(5) | B(10) | B(15) | B(20), 1, B(1) | B(15), B(1) | B(7), 1, true, true},
	{"0 0 * * 7", 1, 1, ALL_DOM, ALL_MON, 1, false, true},
	{"0 0 * * 5-7", 1, 1, ALL_DOM, ALL_MON, B(0) | B(5) | B(6), false, true},
	{"0 0 * * 0,7", 1, 1, ALL_DOM, ALL_MON, 1, false, true},
	{"30 4 1/10 * *", B(30), B(4), B(1) | B(11) | B(21) | B(31), ALL_MON, ALL_DOW, true, false},
	{"0 0 */1 * */1", 1, 1, ALL_DOM, ALL_MON, ALL_DOW, false, false},
	{"0 0 1-31 * *", 1, 1, ALL_DOM, ALL_MON, ALL_DOW, true, false},
	{"0 0 * * */2", 1, 1, ALL_DOM, ALL_MON, B(0) | B(2) | B(4) | B(6), false, true},
	{"0 0 * feb-apr/2 *", 1, 1, ALL_DOM, B(2) | B(4), ALL_DOW, false, false},
	{"59 23 31 dec sat", B(59), B(23), B(31), B(12), B(6), true, true},
	{"  0\t12  *  *  *  ", 1, B(12), ALL_DOM, ALL_MON, ALL_DOW, false, false},
	{"00 07 07 07 0", 1, B(7), B(7), B(7), 1, true, true},
	{"@yearly", 1, 1, B(1), B(1), ALL_DOW, true, false},
	{"@annually", 1, 1, B(1), B(1), ALL_DOW, true, false},
	{"@monthly", 1, 1, B(1), ALL_MON, ALL_DOW, true, false},
	{"@weekly", 1, 1, ALL_DOM, ALL_MON, 1, false, true},
	{"@daily", 1, 1, ALL_DOM, ALL_MON, ALL_DOW, false, false},
	{"@midnight", 1, 1, ALL_DOM, ALL_MON, ALL_DOW, false, false},
	{" @hourly ", 1, ALL_HOUR, ALL_DOM, ALL_MON, ALL_DOW, false, false},
};

START_TEST(cron_parse_reads_fields_into_sets)
{
	struct cron c = parse_ok(good_cron[_i].text);
	const char *t = good_cron[_i].text;
	ck_assert_msg(c.minute == good_cron[_i].minute, "%s: minute %llx", t, (unsigned long long)c.minute);
	ck_assert_msg(c.hour == good_cron[_i].hour, "%s: hour %x", t, c.hour);
	ck_assert_msg(c.dom == good_cron[_i].dom, "%s: dom %x", t, c.dom);
	ck_assert_msg(c.month == good_cron[_i].month, "%s: month %x", t, c.month);
	ck_assert_msg(c.dow == good_cron[_i].dow, "%s: dow %x", t, c.dow);
	ck_assert_msg(c.dom_restricted == good_cron[_i].dom_r, "%s: dom_restricted", t);
	ck_assert_msg(c.dow_restricted == good_cron[_i].dow_r, "%s: dow_restricted", t);
}
END_TEST

static const struct {
	const char *text, *error;
} bad_cron[] = {
	{"", "expression: is empty"},
	{" \t ", "expression: is empty"},
	{"* * * *", "expression: expected 5 fields (minute hour day-of-month month day-of-week), found 4"},
	{"* * * * * *", "expression: expected 5 fields (minute hour day-of-month month day-of-week), found 6"},
	{"0 0 0 * * * *", "expression: expected 5 fields (minute hour day-of-month month day-of-week), found 7"},
	{"60 * * * *", "minute: 60 is out of range 0-59"},
	{"* 24 * * *", "hour: 24 is out of range 0-23"},
	{"* * 0 * *", "day-of-month: 0 is out of range 1-31"},
	{"* * 32 * *", "day-of-month: 32 is out of range 1-31"},
	{"* * * 0 *", "month: 0 is out of range 1-12"},
	{"* * * 13 *", "month: 13 is out of range 1-12"},
	{"* * * * 8", "day-of-week: 8 is out of range 0-7"},
	{"99999999999999999999 * * * *", "minute: 99999999999999999999 is out of range 0-59"},
	{"x * * * *", "minute: \"x\" is not a number"},
	{"* mon * * *", "hour: \"mon\" is not a number"},
	{"* * * foo *", "month: \"foo\" is not a number or a month name (jan-dec)"},
	{"* * * january *", "month: \"january\" is not a number or a month name (jan-dec)"},
	{"* * * jan-foo *", "month: \"foo\" is not a number or a month name (jan-dec)"},
	{"* * * * funday", "day-of-week: \"funday\" is not a number or a day name (sun-sat)"},
	{"* 5-3 * * *", "hour: range 5-3 ends before it starts"},
	{"* * * * mon-sun", "day-of-week: range mon-sun ends before it starts"},
	{"*/0 * * * *", "minute: step 0 is out of range 1-59"},
	{"* */24 * * *", "hour: step 24 is out of range 1-23"},
	{"*/x * * * *", "minute: step \"x\" is not a number"},
	{"*/ * * * *", "minute: step \"\" is not a number"},
	{"1,,2 * * * *", "minute: empty list element"},
	{"1, * * * *", "minute: empty list element"},
	{"1- * * * *", "minute: \"1-\" is not a number, range or step"},
	{"-1 * * * *", "minute: \"-1\" is not a number, range or step"},
	{"1-2-3 * * * *", "minute: \"2-3\" is not a number"},
	{"* * * * 1/2/3", "day-of-week: step \"2/3\" is not a number"},
	{"\xc3\xa9 * * * *", "minute: \"??\" is not a number"},
	{"@reboot",
	 "expression: unknown macro \"@reboot\" (known: @yearly, @annually, @monthly, @weekly, @daily, @midnight, "
	 "@hourly)"},
	{"@daily 5",
	 "expression: unknown macro \"@daily 5\" (known: @yearly, @annually, @monthly, @weekly, @daily, @midnight, "
	 "@hourly)"},
};

START_TEST(cron_parse_names_the_field_that_is_wrong)
{
	struct cron c = {.minute = 7};
	char err[256];
	ck_assert_int_eq(cron_parse(bad_cron[_i].text, &c, err, sizeof err), -1);
	ck_assert_str_eq(err, bad_cron[_i].error);
	ck_assert_msg(c.minute == 7, "*out was written on failure");
}
END_TEST

START_TEST(cron_parse_bounds_the_length)
{
	char text[CRON_TEXT_MAX + 2];
	memset(text, ' ', sizeof text - 1);
	text[sizeof text - 1] = '\0';
	memcpy(text, "* * * * *", 9);
	struct cron c;
	char err[256];
	ck_assert_int_eq(cron_parse(text, &c, err, sizeof err), -1);
	ck_assert_str_eq(err, "expression: longer than 256 characters");
	text[CRON_TEXT_MAX] = '\0'; /* exactly the limit is fine */
	ck_assert_int_eq(cron_parse(text, &c, err, sizeof err), 0);
	/* a small error buffer is cut, not overrun; errlen 0 writes nothing */
	char small[8];
	ck_assert_int_eq(cron_parse("* 24 * * *", &c, small, sizeof small), -1);
	ck_assert_str_eq(small, "hour: 2");
	ck_assert_int_eq(cron_parse("* 24 * * *", &c, NULL, 0), -1);
}
END_TEST

/* ---- cron: next fire times -------------------------------------------- */

static const struct {
	const char *zone, *expr, *after, *next;
} next_cases[] = {
	/* UTC */
	{"UTC", "* * * * *", "2026-01-01T00:00:00Z", "2026-01-01T00:01:00Z"},
	{"UTC", "* * * * *", "2026-01-01T00:00:30Z", "2026-01-01T00:01:00Z"},
	{"UTC", "0 * * * *", "2026-01-01T00:00:00Z", "2026-01-01T01:00:00Z"},
	{"UTC", "*/15 * * * *", "2026-01-01T00:14:59Z", "2026-01-01T00:15:00Z"},
	{"UTC", "*/15 * * * *", "2026-01-01T00:15:00Z", "2026-01-01T00:30:00Z"},
	{"UTC", "0 0 1 1 *", "2026-06-01T00:00:00Z", "2027-01-01T00:00:00Z"},
	{"UTC", "30 23 31 12 *", "2026-12-31T23:30:00Z", "2027-12-31T23:30:00Z"},
	{"UTC", "0 0 29 2 *", "2026-01-01T00:00:00Z", "2028-02-29T00:00:00Z"},
	{"UTC", "0 0 29 2 *", "2096-03-01T00:00:00Z", "2104-02-29T00:00:00Z"}, /* 2100 is not leap */
	{"UTC", "0 0 30 2 *", "2026-01-01T00:00:00Z", NEVER},
	{"UTC", "0 0 31 4,6,9,11 *", "2026-01-01T00:00:00Z", NEVER},
	{"UTC", "0 0 31 * *", "2026-04-01T00:00:00Z", "2026-05-31T00:00:00Z"},
	/* both day fields restricted: either matches (2026-01-02 is a Friday) */
	{"UTC", "0 12 13 * 5", "2026-01-01T00:00:00Z", "2026-01-02T12:00:00Z"},
	{"UTC", "0 12 13 * 5", "2026-01-09T12:00:00Z", "2026-01-13T12:00:00Z"},
	/* one restricted: it alone decides */
	{"UTC", "0 12 * * 5", "2026-01-02T12:00:00Z", "2026-01-09T12:00:00Z"},
	{"UTC", "0 12 13 * *", "2026-01-01T00:00:00Z", "2026-01-13T12:00:00Z"},
	{"UTC", "0 12 */7 * fri", "2026-01-02T12:00:00Z", "2026-01-08T12:00:00Z"},
	{"UTC", "0 0 * * sun", "2026-01-01T00:00:00Z", "2026-01-04T00:00:00Z"},
	{"UTC", "0 0 * * 7", "2026-01-01T00:00:00Z", "2026-01-04T00:00:00Z"},
	{"UTC", "@weekly", "2026-01-04T00:00:00Z", "2026-01-11T00:00:00Z"},
	{"UTC", "0 9-17/4 * * mon-fri", "2026-01-02T17:00:00Z", "2026-01-05T09:00:00Z"},
	{"UTC", "0 0 1 * *", "2026-01-31T23:59:59Z", "2026-02-01T00:00:00Z"},
	{"UTC", "0 0 * jun *", "2026-06-30T00:00:00Z", "2027-06-01T00:00:00Z"},
	{"UTC", "0 0 1 1 *", "9999-06-01T00:00:00Z", NEVER},
	/* Europe/Berlin spring: 2026-03-29 02:00-02:59 does not exist */
	{"Europe/Berlin", "30 2 * * *", "2026-03-28T12:00:00Z", "2026-03-29T01:00:00Z"},
	{"Europe/Berlin", "30 2 * * *", "2026-03-29T01:00:00Z", "2026-03-30T00:30:00Z"},
	{"Europe/Berlin", "0 2 * * *", "2026-03-28T12:00:00Z", "2026-03-29T01:00:00Z"},
	{"Europe/Berlin", "0 3 * * *", "2026-03-28T12:00:00Z", "2026-03-29T01:00:00Z"},
	{"Europe/Berlin", "59 1 * * *", "2026-03-28T12:00:00Z", "2026-03-29T00:59:00Z"},
	{"Europe/Berlin", "*/15 * * * *", "2026-03-29T00:45:00Z", "2026-03-29T01:00:00Z"},
	{"Europe/Berlin", "*/15 * * * *", "2026-03-29T01:00:00Z", "2026-03-29T01:15:00Z"},
	/* Europe/Berlin autumn: 2026-10-25 02:00-02:59 happens twice */
	{"Europe/Berlin", "30 2 * * *", "2026-10-24T12:00:00Z", "2026-10-25T00:30:00Z"},
	{"Europe/Berlin", "30 2 * * *", "2026-10-25T00:30:00Z", "2026-10-26T01:30:00Z"},
	{"Europe/Berlin", "*/30 * * * *", "2026-10-25T00:30:00Z", "2026-10-25T02:00:00Z"},
	{"Europe/Berlin", "*/30 * * * *", "2026-10-25T01:10:00Z", "2026-10-25T02:00:00Z"},
	{"Europe/Berlin", "0 3 * * *", "2026-10-25T00:30:00Z", "2026-10-25T02:00:00Z"},
	/* America/New_York: 2026-03-08 02:00-02:59 missing, 2026-11-01 01:00-01:59 twice */
	{"America/New_York", "30 2 * * *", "2026-03-07T12:00:00Z", "2026-03-08T07:00:00Z"},
	{"America/New_York", "30 2 * * *", "2026-03-08T07:00:00Z", "2026-03-09T06:30:00Z"},
	{"America/New_York", "30 1 * * *", "2026-10-31T12:00:00Z", "2026-11-01T05:30:00Z"},
	{"America/New_York", "30 1 * * *", "2026-11-01T05:30:00Z", "2026-11-02T06:30:00Z"},
	{"America/New_York", "0 0 1 1 *", "2026-06-01T00:00:00Z", "2027-01-01T05:00:00Z"},
	{"America/New_York", "0 9 * * mon-fri", "2026-03-06T14:00:00Z", "2026-03-09T13:00:00Z"},
	/* 2040: beyond the files' last transition, the footer's rules */
	{"Europe/Berlin", "30 2 * * *", "2040-03-24T12:00:00Z", "2040-03-25T01:00:00Z"},
	{"Europe/Berlin", "30 2 * * *", "2040-10-27T12:00:00Z", "2040-10-28T00:30:00Z"},
	{"Europe/Berlin", "30 2 * * *", "2040-10-28T00:30:00Z", "2040-10-29T01:30:00Z"},
	{"America/New_York", "30 1 * * *", "2040-11-04T05:30:00Z", "2040-11-05T06:30:00Z"},
	{"Australia/Sydney", "30 2 * * *", "2040-10-06T12:00:00Z", "2040-10-06T16:00:00Z"},
	{"Australia/Sydney", "0 12 * * *", "2040-01-01T00:00:00Z", "2040-01-01T01:00:00Z"},
};

START_TEST(cron_next_fires_on_the_zone_wall_clock)
{
	struct tz *z = zone(next_cases[_i].zone);
	char s[32];
	const char *got = next_of(next_cases[_i].expr, z, at(next_cases[_i].after), s);
	ck_assert_msg(strcmp(got, next_cases[_i].next) == 0, "%s \"%s\" after %s: got %s, want %s", next_cases[_i].zone,
	              next_cases[_i].expr, next_cases[_i].after, got, next_cases[_i].next);
	tz_free(z);
}
END_TEST

/* Successive fires (each after the previous) across a change. */
static void assert_fires(const char *zone_name, const char *expr, const char *from, const char *const *want, int n)
{
	struct tz *z = zone(zone_name);
	int64_t t = at(from);
	char s[32];
	for (int i = 0; i < n; i++) {
		const char *got = next_of(expr, z, t, s);
		ck_assert_msg(strcmp(got, want[i]) == 0, "%s \"%s\" fire %d: got %s, want %s", zone_name, expr, i, got,
		              want[i]);
		t = at(got);
	}
	tz_free(z);
}

START_TEST(cron_next_fires_once_for_a_spring_gap)
{
	/* 02:00 and 02:30 do not exist: one fire at 03:00 CEST stands for both
	 * and for 03:00 itself */
	const char *want[] = {"2026-03-29T00:30:00Z", "2026-03-29T01:00:00Z", "2026-03-29T01:30:00Z",
	                      "2026-03-29T02:00:00Z"};
	assert_fires("Europe/Berlin", "*/30 * * * *", "2026-03-29T00:00:00Z", want, NELEMS(want));
}
END_TEST

START_TEST(cron_next_fires_once_for_an_autumn_overlap)
{
	/* 02:00 and 02:30 fire in CEST only; the CET pass (01:00-01:59Z) is
	 * skipped */
	const char *want[] = {"2026-10-24T23:30:00Z", "2026-10-25T00:00:00Z", "2026-10-25T00:30:00Z",
	                      "2026-10-25T02:00:00Z", "2026-10-25T02:30:00Z"};
	assert_fires("Europe/Berlin", "*/30 * * * *", "2026-10-24T23:00:00Z", want, NELEMS(want));
	const char *hourly[] = {"2026-10-25T00:00:00Z", "2026-10-25T02:00:00Z", "2026-10-25T03:00:00Z"};
	assert_fires("Europe/Berlin", "@hourly", "2026-10-24T23:30:00Z", hourly, NELEMS(hourly));
}
END_TEST

START_TEST(cron_next_refuses_instants_out_of_range)
{
	struct tz *z = zone("UTC");
	struct cron c = parse_ok("* * * * *");
	int64_t next = 42;
	ck_assert_int_eq(cron_next(&c, z, INT64_MAX, &next), CRON_RANGE);
	ck_assert_int_eq(cron_next(&c, z, INT64_MIN, &next), CRON_RANGE);
	ck_assert_int_eq(next, 42);
	tz_free(z);
}
END_TEST

/* ---- suite ------------------------------------------------------------- */

static TCase *tcase(Suite *s, const char *name)
{
	TCase *tc = tcase_create(name);
	tcase_set_timeout(tc, TEST_TIMEOUT_S);
	suite_add_tcase(s, tc);
	return tc;
}

Suite *cron_suite(void)
{
	Suite *s = suite_create("cron");

	TCase *tc = tcase(s, "tz");
	tcase_add_loop_test(tc, tz_load_refuses_names_outside_the_zone_alphabet, 0, NELEMS(bad_names));
	tcase_add_test(tc, tz_load_names_an_unknown_zone);
	tcase_add_test(tc, tz_load_utc_needs_no_files);
	tcase_add_test(tc, tz_load_refuses_zones_with_leap_seconds);
	tcase_add_test(tc, tz_slim_file_is_answered_from_its_footer);
	tcase_add_test(tc, tz_version_1_file_keeps_its_last_type);
	tcase_add_test(tc, tz_damaged_files_are_refused);
	tcase_add_loop_test(tc, tz_local_gives_wall_time_offset_and_abbreviation, 0, NELEMS(local_cases));
	tcase_add_loop_test(tc, tz_resolve_takes_gap_end_and_first_occurrence, 0, NELEMS(resolve_cases));
	tcase_add_test(tc, tz_resolve_refuses_impossible_wall_times);
	tcase_add_test(tc, tz_local_and_resolve_agree_across_change_days);

	tc = tcase(s, "cron");
	tcase_add_loop_test(tc, cron_parse_reads_fields_into_sets, 0, NELEMS(good_cron));
	tcase_add_loop_test(tc, cron_parse_names_the_field_that_is_wrong, 0, NELEMS(bad_cron));
	tcase_add_test(tc, cron_parse_bounds_the_length);
	tcase_add_loop_test(tc, cron_next_fires_on_the_zone_wall_clock, 0, NELEMS(next_cases));
	tcase_add_test(tc, cron_next_fires_once_for_a_spring_gap);
	tcase_add_test(tc, cron_next_fires_once_for_an_autumn_overlap);
	tcase_add_test(tc, cron_next_refuses_instants_out_of_range);
	return s;
}
