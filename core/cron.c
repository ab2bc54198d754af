/* Cron expressions: a table-driven parser of the five fields into bit sets,
 * and the next fire time found by walking wall-clock days and minutes in
 * the zone and resolving each match to an instant (core/tz.c applies the
 * gap and overlap rules). */
#include "core/cron.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

struct cron_field {
	const char *name;
	int min, max;
	const char *const *names; /* names[i] is value names_base + i */
	int names_base;
	const char *names_hint; /* for the error: "a month name (jan-dec)" */
};

static const char *const month_names[] = {"jan", "feb", "mar", "apr", "may", "jun",
                                          "jul", "aug", "sep", "oct", "nov", "dec", NULL};
static const char *const day_names[] = {"sun", "mon", "tue", "wed", "thu", "fri", "sat", NULL};

enum { F_MINUTE, F_HOUR, F_DOM, F_MONTH, F_DOW, F_COUNT };

static const struct cron_field fields[F_COUNT] = {
	[F_MINUTE] = {"minute", 0, 59, NULL, 0, NULL},
	[F_HOUR] = {"hour", 0, 23, NULL, 0, NULL},
	[F_DOM] = {"day-of-month", 1, 31, NULL, 0, NULL},
	[F_MONTH] = {"month", 1, 12, month_names, 1, "a month name (jan-dec)"},
	/* 7 is Sunday too; folded into 0 after parsing */
	[F_DOW] = {"day-of-week", 0, 7, day_names, 0, "a day name (sun-sat)"},
};

static const struct {
	const char *name, *expansion;
} macros[] = {
	{"@yearly", "0 0 1 1 *"}, {"@annually", "0 0 1 1 *"}, {"@monthly", "0 0 1 * *"}, {"@weekly", "0 0 * * 0"},
	{"@daily", "0 0 * * *"},  {"@midnight", "0 0 * * *"}, {"@hourly", "0 * * * *"},
};

static void set_err(char *err, size_t errlen, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

static void set_err(char *err, size_t errlen, const char *fmt, ...)
{
	if (errlen == 0)
		return;
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(err, errlen, fmt, ap);
	va_end(ap);
}

/* A piece of the caller's text fit to quote in a message: printable ASCII
 * only (anything else becomes '?', so the message stays valid UTF-8), cut
 * at 24 bytes with "...". */
static const char *quote(const char *s, size_t len, char buf[32])
{
	size_t n = 0;
	for (; n < len && n < 24; n++)
		buf[n] = (s[n] >= 0x20 && s[n] < 0x7f) ? s[n] : '?';
	if (n < len) {
		memcpy(buf + n, "...", 3);
		n += 3;
	}
	buf[n] = '\0';
	return buf;
}

static char lower(char ch)
{
	return ch >= 'A' && ch <= 'Z' ? (char)(ch - 'A' + 'a') : ch;
}

/* One value of field f: digits or (where the field has names) a name. */
static int parse_value(const struct cron_field *f, const char *s, size_t len, int *out, char *err, size_t errlen)
{
	char q[32];
	bool digits = len > 0;
	for (size_t i = 0; i < len; i++)
		digits = digits && s[i] >= '0' && s[i] <= '9';
	if (digits) {
		long v = 0;
		for (size_t i = 0; i < len && v <= 1000; i++)
			v = v * 10 + (s[i] - '0');
		if (v < f->min || v > f->max) {
			set_err(err, errlen, "%s: %s is out of range %d-%d", f->name, quote(s, len, q), f->min, f->max);
			return -1;
		}
		*out = (int)v;
		return 0;
	}
	if (f->names && len == 3) {
		for (int i = 0; f->names[i]; i++) {
			if (lower(s[0]) == f->names[i][0] && lower(s[1]) == f->names[i][1] &&
			    lower(s[2]) == f->names[i][2]) {
				*out = f->names_base + i;
				return 0;
			}
		}
	}
	if (f->names)
		set_err(err, errlen, "%s: \"%s\" is not a number or %s", f->name, quote(s, len, q), f->names_hint);
	else
		set_err(err, errlen, "%s: \"%s\" is not a number", f->name, quote(s, len, q));
	return -1;
}

/* One list element: *, a, a-b, each optionally /step. Sets its bits in
 * *bits; *star says it was a lone "*" (or "*" step 1). */
static int parse_element(const struct cron_field *f, const char *s, size_t len, uint64_t *bits, bool *star,
                         char *err, size_t errlen)
{
	char q[32];
	if (len == 0) {
		set_err(err, errlen, "%s: empty list element", f->name);
		return -1;
	}
	const char *slash = memchr(s, '/', len);
	size_t blen = slash ? (size_t)(slash - s) : len;
	int lo, hi, step = 1;
	bool is_star = blen == 1 && s[0] == '*';
	if (is_star) {
		lo = f->min;
		hi = f->max == 7 ? 6 : f->max; /* "*" in day-of-week is 0-6 */
	} else {
		const char *dash = memchr(s, '-', blen);
		size_t alen = dash ? (size_t)(dash - s) : blen;
		if (alen == 0 || (dash && (size_t)(dash - s) + 1 == blen)) {
			set_err(err, errlen, "%s: \"%s\" is not a number, range or step", f->name, quote(s, len, q));
			return -1;
		}
		if (parse_value(f, s, alen, &lo, err, errlen) != 0)
			return -1;
		hi = lo;
		if (dash && parse_value(f, dash + 1, blen - alen - 1, &hi, err, errlen) != 0)
			return -1;
		if (hi < lo) {
			set_err(err, errlen, "%s: range %s ends before it starts", f->name, quote(s, blen, q));
			return -1;
		}
		if (slash && !dash)
			hi = f->max == 7 ? 6 : f->max; /* a/n: from a to the end */
	}
	if (slash) {
		const char *t = slash + 1;
		size_t tlen = len - blen - 1;
		bool digits = tlen > 0;
		long v = 0;
		for (size_t i = 0; i < tlen; i++) {
			digits = digits && t[i] >= '0' && t[i] <= '9';
			if (digits && v <= 1000)
				v = v * 10 + (t[i] - '0');
		}
		if (!digits) {
			set_err(err, errlen, "%s: step \"%s\" is not a number", f->name, quote(t, tlen, q));
			return -1;
		}
		if (v < 1 || v > f->max) {
			set_err(err, errlen, "%s: step %s is out of range 1-%d", f->name, quote(t, tlen, q), f->max);
			return -1;
		}
		step = (int)v;
	}
	for (int v = lo; v <= hi; v += step)
		*bits |= (uint64_t)1 << v;
	*star = is_star && step == 1;
	return 0;
}

/* One whole field (a comma list) of length len at s. */
static int parse_field(const struct cron_field *f, const char *s, size_t len, uint64_t *bits, bool *restricted,
                       char *err, size_t errlen)
{
	*bits = 0;
	bool only_star = true;
	size_t elements = 0;
	for (size_t i = 0;; i++) {
		size_t j = i;
		while (j < len && s[j] != ',')
			j++;
		bool star = false;
		if (parse_element(f, s + i, j - i, bits, &star, err, errlen) != 0)
			return -1;
		only_star = only_star && star;
		elements++;
		if (j >= len)
			break;
		i = j;
	}
	*restricted = !(only_star && elements == 1);
	return 0;
}

static bool is_space(char ch)
{
	return ch == ' ' || ch == '\t';
}

int cron_parse(const char *text, struct cron *out, char *err, size_t errlen)
{
	if (errlen > 0)
		err[0] = '\0';
	size_t len = strnlen(text, CRON_TEXT_MAX + 1);
	if (len > CRON_TEXT_MAX) {
		set_err(err, errlen, "expression: longer than %d characters", CRON_TEXT_MAX);
		return -1;
	}
	/* Trim the ends. */
	while (len > 0 && is_space(*text)) {
		text++;
		len--;
	}
	while (len > 0 && is_space(text[len - 1]))
		len--;
	if (len == 0) {
		set_err(err, errlen, "expression: is empty");
		return -1;
	}
	if (text[0] == '@') {
		for (size_t i = 0; i < sizeof macros / sizeof macros[0]; i++) {
			size_t mlen = strlen(macros[i].name);
			if (len == mlen && strncmp(text, macros[i].name, len) == 0)
				return cron_parse(macros[i].expansion, out, err, errlen);
		}
		char q[32];
		set_err(err, errlen,
		        "expression: unknown macro \"%s\" (known: @yearly, @annually, @monthly, @weekly, @daily, "
		        "@midnight, @hourly)",
		        quote(text, len, q));
		return -1;
	}

	/* Split into fields. */
	const char *start[F_COUNT + 1];
	size_t flen[F_COUNT + 1];
	int n = 0;
	for (size_t i = 0; i < len;) {
		while (i < len && is_space(text[i]))
			i++;
		size_t j = i;
		while (j < len && !is_space(text[j]))
			j++;
		if (n <= F_COUNT) {
			start[n] = text + i;
			flen[n] = j - i;
		}
		n++;
		i = j;
	}
	if (n != F_COUNT) {
		set_err(err, errlen,
		        "expression: expected 5 fields (minute hour day-of-month month day-of-week), found %d", n);
		return -1;
	}

	uint64_t bits[F_COUNT];
	bool restricted[F_COUNT];
	for (int i = 0; i < F_COUNT; i++)
		if (parse_field(&fields[i], start[i], flen[i], &bits[i], &restricted[i], err, errlen) != 0)
			return -1;
	/* Weekday 7 is Sunday. */
	if (bits[F_DOW] & (1u << 7))
		bits[F_DOW] = (bits[F_DOW] & 0x7f) | 1u;

	struct cron c = {
		.minute = bits[F_MINUTE],
		.hour = (uint32_t)bits[F_HOUR],
		.dom = (uint32_t)bits[F_DOM],
		.month = (uint16_t)bits[F_MONTH],
		.dow = (uint8_t)bits[F_DOW],
		.dom_restricted = restricted[F_DOM],
		.dow_restricted = restricted[F_DOW],
	};
	*out = c;
	return 0;
}

/* ---- the next fire time ---------------------------------------------- */

static bool leap(int y)
{
	return (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
}

static int month_days(int y, int m)
{
	static const int dim[12] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
	return m == 2 && leap(y) ? 29 : dim[m - 1];
}

/* 0 = Sunday; y >= 1. */
static int weekday(int y, int m, int d)
{
	long p = y - 1;
	long days = 365 * p + p / 4 - p / 100 + p / 400; /* since 0001-01-01, a Monday */
	for (int i = 1; i < m; i++)
		days += month_days(y, i);
	days += d - 1;
	return (int)((days + 1) % 7);
}

static bool day_matches(const struct cron *c, int y, int m, int d)
{
	bool dom = (c->dom >> d) & 1u;
	bool dow = (c->dow >> weekday(y, m, d)) & 1u;
	if (c->dom_restricted && c->dow_restricted)
		return dom || dow;
	return dom && dow;
}

enum cron_next_status cron_next(const struct cron *c, const struct tz *z, int64_t after_utc, int64_t *next)
{
	struct tz_time w;
	if (tz_local(z, after_utc, &w) != 0)
		return CRON_RANGE;
	/* Wall minutes are walked in order from the one after after_utc's.
	 * Resolving never goes backwards as the wall time goes forwards, and
	 * an earlier wall time resolves to at most after_utc, so the first
	 * match that resolves past after_utc is the answer. */
	int y = w.year, m = w.month, d = w.day, h = w.hour, mi = w.minute + 1;
	int last_year = y + CRON_SEARCH_YEARS;
	for (;;) {
		if (mi == 60) {
			mi = 0;
			h++;
		}
		if (h == 24) {
			h = 0;
			mi = 0;
			d++;
		}
		if (m <= 12 && d > month_days(y, m)) {
			d = 1;
			m++;
		}
		if (m > 12) {
			m = 1;
			y++;
		}
		if (y > last_year || y > 9999)
			return CRON_NEVER;
		if (!((c->month >> m) & 1u)) {
			m++;
			d = 1;
			h = mi = 0;
			continue;
		}
		if (!day_matches(c, y, m, d)) {
			d++;
			h = mi = 0;
			continue;
		}
		for (; h < 24; h++, mi = 0) {
			if (!((c->hour >> h) & 1u))
				continue;
			for (; mi < 60; mi++) {
				if (!((c->minute >> mi) & 1u))
					continue;
				struct tz_time cand = {.year = y, .month = m, .day = d, .hour = h, .minute = mi};
				int64_t t;
				if (tz_resolve(z, &cand, &t) != 0)
					return CRON_RANGE;
				if (t > after_utc) {
					*next = t;
					return CRON_FOUND;
				}
			}
		}
	}
}
