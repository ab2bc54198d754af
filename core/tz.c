/* Time zones from TZif files (RFC 8536) and the POSIX TZ string in their
 * footer. A zone is a table of transitions (instant -> local time type) plus
 * an optional yearly rule for instants after the last one; both are answered
 * as "periods" of constant offset, which is all the conversions need. Nothing
 * here reads or writes process-wide time state. */
#include "core/tz.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define TZ_DEFAULT_DIR "/usr/share/zoneinfo"
#define TZ_NAME_MAX 255
#define TZ_FILE_MAX (1024 * 1024) /* real zone files are under 100 KiB */
#define TZ_ABBR_MAX 15
/* Every offset is within 26 hours of UTC (RFC 8536 allows -25:59:59 to
 * +25:59:59); a wall time's instants lie within this of its local seconds. */
#define TZ_OFF_MAX (26 * 3600)
#define SECS_PER_DAY 86400
/* Days from 0001-01-01 to 1970-01-01 (proleptic Gregorian). */
#define DAYS_0001_TO_1970 719162
#define YEAR_MIN 1
#define YEAR_MAX 9999

struct tz_type {
	int32_t utoff;
	uint8_t isdst;
	uint8_t abbr; /* index into chars */
};

/* A date of a POSIX rule: Jn (1-365, Feb 29 never counted), n (0-365) or
 * Mm.w.d (month, week 1-5 where 5 is the last, weekday 0 = Sunday), and the
 * local time of the change in seconds after that day's midnight (may be
 * negative or past 24 h, TZif version 3). */
struct tz_rule_date {
	char kind; /* 'J', 'D' or 'M' */
	int n, m, w, d;
	int32_t time;
};

struct tz_footer {
	bool present;
	bool has_dst;
	int32_t std_off, dst_off; /* seconds east of UTC */
	char std_abbr[TZ_ABBR_MAX + 1], dst_abbr[TZ_ABBR_MAX + 1];
	struct tz_rule_date start, end;
};

struct tz {
	char *name;
	size_t timecnt;
	int64_t *times; /* strictly ascending */
	uint8_t *idx;   /* type of each transition */
	size_t typecnt; /* at least 1 */
	struct tz_type *types;
	char *chars; /* NUL-terminated abbreviations */
	struct tz_footer footer;
};

/* A stretch of constant local time type: [start, end), either end may be
 * INT64_MIN / INT64_MAX for "unbounded". */
struct period {
	int64_t start, end;
	int32_t utoff;
	int isdst;
	const char *abbr;
};

/* ---- the calendar ---------------------------------------------------- */

static bool is_leap(int64_t y)
{
	return (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
}

static int days_in_month(int64_t y, int m)
{
	static const int dim[12] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
	return m == 2 && is_leap(y) ? 29 : dim[m - 1];
}

/* Days from 0001-01-01 to January 1st of year y (y >= 1). */
static int64_t days_before_year(int64_t y)
{
	int64_t p = y - 1;
	return 365 * p + p / 4 - p / 100 + p / 400;
}

/* Days from 1970-01-01 to y-m-d (y >= 1, valid month and day). */
static int64_t days_from_civil(int64_t y, int m, int d)
{
	int64_t days = days_before_year(y);
	for (int i = 1; i < m; i++)
		days += days_in_month(y, i);
	return days + d - 1 - DAYS_0001_TO_1970;
}

/* The date of day `days` after 1970-01-01, clamped to years 1-9999. */
static void civil_from_days(int64_t days, int64_t *y, int *m, int *d, int *yday, int *wday)
{
	int64_t d0 = days + DAYS_0001_TO_1970; /* days since 0001-01-01 */
	int64_t lo = 0, hi = days_before_year(YEAR_MAX + 1) - 1;
	d0 = d0 < lo ? lo : d0 > hi ? hi : d0;
	int64_t year = 1 + d0 * 400 / 146097; /* close; adjusted below */
	while (year > YEAR_MIN && days_before_year(year) > d0)
		year--;
	while (days_before_year(year + 1) <= d0)
		year++;
	int64_t rest = d0 - days_before_year(year);
	*yday = (int)rest;
	int month = 1;
	while (rest >= days_in_month(year, month)) {
		rest -= days_in_month(year, month);
		month++;
	}
	*y = year;
	*m = month;
	*d = (int)rest + 1;
	*wday = (int)((d0 + 1) % 7); /* 0001-01-01 was a Monday */
}

static int64_t floor_div(int64_t a, int64_t b)
{
	int64_t q = a / b;
	return (a % b != 0 && (a < 0) != (b < 0)) ? q - 1 : q;
}

/* ---- the POSIX rule in the footer ----------------------------------- */

/* Local seconds (since 1970-01-01 00:00 local) at which rule date r falls
 * in year y. */
static int64_t rule_local(const struct tz_rule_date *r, int64_t y)
{
	int64_t day;
	if (r->kind == 'J') {
		day = days_from_civil(y, 1, 1) + r->n - 1 + (is_leap(y) && r->n >= 60 ? 1 : 0);
	} else if (r->kind == 'D') {
		day = days_from_civil(y, 1, 1) + r->n;
	} else {
		int64_t first = days_from_civil(y, r->m, 1);
		int wday1 = (int)((first + DAYS_0001_TO_1970 + 1) % 7);
		int mday = 1 + (r->d - wday1 + 7) % 7 + (r->w - 1) * 7;
		while (mday > days_in_month(y, r->m))
			mday -= 7;
		day = first + mday - 1;
	}
	return day * SECS_PER_DAY + r->time;
}

struct rule_event {
	int64_t at;
	bool dst; /* the state from `at` on */
};

/* The footer's period around t: the DST changes of the three years around
 * t's year, merged where a change changes nothing (all-year DST). */
static void footer_period(const struct tz_footer *f, int64_t t, struct period *p)
{
	p->start = INT64_MIN;
	p->end = INT64_MAX;
	p->utoff = f->std_off;
	p->isdst = 0;
	p->abbr = f->std_abbr;
	if (!f->has_dst)
		return;

	int64_t y;
	int m, d, yday, wday;
	civil_from_days(floor_div(t, SECS_PER_DAY), &y, &m, &d, &yday, &wday);
	if (y < YEAR_MIN + 1)
		y = YEAR_MIN + 1;
	if (y > YEAR_MAX - 1)
		y = YEAR_MAX - 1;

	enum { n = 6 };
	struct rule_event ev[n];
	for (int k = 0; k < 3; k++) {
		int64_t yy = y - 1 + k;
		ev[2 * k].at = rule_local(&f->start, yy) - f->std_off;
		ev[2 * k].dst = true;
		ev[2 * k + 1].at = rule_local(&f->end, yy) - f->dst_off;
		ev[2 * k + 1].dst = false;
	}
	/* Stable insertion sort: at equal instants the year order stands. */
	for (int i = 1; i < n; i++) {
		struct rule_event x = ev[i];
		int j = i - 1;
		while (j >= 0 && ev[j].at > x.at) {
			ev[j + 1] = ev[j];
			j--;
		}
		ev[j + 1] = x;
	}

	bool cur = !ev[0].dst;
	for (int i = 0; i < n;) {
		int64_t at = ev[i].at;
		bool next = cur;
		while (i < n && ev[i].at == at)
			next = ev[i++].dst;
		if (next == cur)
			continue;
		if (at <= t) {
			cur = next;
			p->start = at;
		} else {
			p->end = at;
			break;
		}
	}
	if (cur) {
		p->utoff = f->dst_off;
		p->isdst = 1;
		p->abbr = f->dst_abbr;
	}
}

/* ---- lookups --------------------------------------------------------- */

static void type_period(const struct tz *z, size_t type, struct period *p)
{
	p->utoff = z->types[type].utoff;
	p->isdst = z->types[type].isdst;
	p->abbr = z->chars + z->types[type].abbr;
}

/* The period that contains instant t. */
static void period_at(const struct tz *z, int64_t t, struct period *p)
{
	size_t n = z->timecnt;
	if (n > 0 && t < z->times[0]) {
		/* Before the first transition: type 0 (RFC 8536, 3.2). */
		type_period(z, 0, p);
		p->start = INT64_MIN;
		p->end = z->times[0];
		return;
	}
	if (z->footer.present && (n == 0 || t >= z->times[n - 1])) {
		footer_period(&z->footer, t, p);
		if (n > 0 && p->start < z->times[n - 1])
			p->start = z->times[n - 1];
		return;
	}
	if (n == 0) {
		type_period(z, 0, p);
		p->start = INT64_MIN;
		p->end = INT64_MAX;
		return;
	}
	size_t lo = 0, hi = n; /* the last i with times[i] <= t */
	while (hi - lo > 1) {
		size_t mid = lo + (hi - lo) / 2;
		if (z->times[mid] <= t)
			lo = mid;
		else
			hi = mid;
	}
	type_period(z, z->idx[lo], p);
	p->start = z->times[lo];
	p->end = lo + 1 < n ? z->times[lo + 1] : INT64_MAX;
}

static int64_t instant_min(void)
{
	return days_from_civil(YEAR_MIN, 1, 1) * SECS_PER_DAY;
}

static int64_t instant_max(void)
{
	return days_from_civil(YEAR_MAX, 12, 31) * SECS_PER_DAY + SECS_PER_DAY - 1;
}

int tz_local(const struct tz *z, int64_t utc, struct tz_time *out)
{
	if (utc < instant_min() - TZ_OFF_MAX || utc > instant_max() + TZ_OFF_MAX)
		return -1;
	struct period p;
	period_at(z, utc, &p);
	int64_t local = utc + p.utoff;
	if (local < instant_min() || local > instant_max())
		return -1;
	int64_t days = floor_div(local, SECS_PER_DAY);
	int64_t secs = local - days * SECS_PER_DAY;
	int64_t y;
	int m, d, yday, wday;
	civil_from_days(days, &y, &m, &d, &yday, &wday);
	out->year = (int)y;
	out->month = m;
	out->day = d;
	out->hour = (int)(secs / 3600);
	out->minute = (int)(secs / 60 % 60);
	out->second = (int)(secs % 60);
	out->wday = wday;
	out->yday = yday;
	out->utoff = p.utoff;
	out->isdst = p.isdst;
	out->abbr = p.abbr;
	return 0;
}

int tz_resolve(const struct tz *z, const struct tz_time *w, int64_t *utc)
{
	if (w->year < YEAR_MIN || w->year > YEAR_MAX || w->month < 1 || w->month > 12 || w->day < 1 ||
	    w->day > days_in_month(w->year, w->month) || w->hour < 0 || w->hour > 23 || w->minute < 0 ||
	    w->minute > 59 || w->second < 0 || w->second > 59)
		return -1;
	int64_t local = days_from_civil(w->year, w->month, w->day) * SECS_PER_DAY + w->hour * 3600 +
	                w->minute * 60 + w->second;

	/* Walk the periods from the earliest instant this wall time could
	 * name. The first period whose offset maps the wall time inside itself
	 * gives the first occurrence; a boundary whose wall time jumps over it
	 * is a gap, and the boundary itself is the first instant after it. */
	struct period p;
	period_at(z, local - TZ_OFF_MAX, &p);
	for (int k = 0; k < 64; k++) {
		int64_t t = local - p.utoff;
		if (p.start <= t && t < p.end) {
			*utc = t;
			return 0;
		}
		if (p.end == INT64_MAX || p.end > local + TZ_OFF_MAX)
			break;
		struct period q;
		period_at(z, p.end, &q);
		if (local >= p.end + p.utoff && local < p.end + q.utoff) {
			*utc = p.end;
			return 0;
		}
		p = q;
	}
	/* Not reached with a consistent zone; answer as the offset at the
	 * naive instant says. */
	period_at(z, local, &p);
	*utc = local - p.utoff;
	return 0;
}

const char *tz_name(const struct tz *z)
{
	return z->name;
}

void tz_free(struct tz *z)
{
	if (!z)
		return;
	free(z->name);
	free(z->times);
	free(z->idx);
	free(z->types);
	free(z->chars);
	free(z);
}

/* ---- parsing the POSIX TZ string ------------------------------------- */

/* An abbreviation: three or more letters, or <...> of letters, digits,
 * '+' and '-'. */
static const char *parse_abbr(const char *s, char *out)
{
	size_t n = 0;
	if (*s == '<') {
		s++;
		while ((*s >= 'A' && *s <= 'Z') || (*s >= 'a' && *s <= 'z') || (*s >= '0' && *s <= '9') ||
		       *s == '+' || *s == '-') {
			if (n == TZ_ABBR_MAX)
				return NULL;
			out[n++] = *s++;
		}
		if (*s != '>')
			return NULL;
		s++;
	} else {
		while ((*s >= 'A' && *s <= 'Z') || (*s >= 'a' && *s <= 'z')) {
			if (n == TZ_ABBR_MAX)
				return NULL;
			out[n++] = *s++;
		}
	}
	out[n] = '\0';
	return n >= 3 ? s : NULL;
}

static const char *parse_num(const char *s, int min, int max, int *out)
{
	if (*s < '0' || *s > '9')
		return NULL;
	int v = 0;
	while (*s >= '0' && *s <= '9') {
		v = v * 10 + (*s++ - '0');
		if (v > max)
			return NULL;
	}
	if (v < min)
		return NULL;
	*out = v;
	return s;
}

/* [+-]hh[:mm[:ss]] with hours up to max_hours, in seconds. */
static const char *parse_hms(const char *s, int max_hours, int32_t *out)
{
	int sign = 1, h = 0, m = 0, sec = 0;
	if (*s == '+' || *s == '-')
		sign = *s++ == '-' ? -1 : 1;
	if (!(s = parse_num(s, 0, max_hours, &h)))
		return NULL;
	if (*s == ':') {
		if (!(s = parse_num(s + 1, 0, 59, &m)))
			return NULL;
		if (*s == ':' && !(s = parse_num(s + 1, 0, 59, &sec)))
			return NULL;
	}
	*out = sign * (h * 3600 + m * 60 + sec);
	return s;
}

static const char *parse_rule_date(const char *s, struct tz_rule_date *r)
{
	memset(r, 0, sizeof *r);
	if (*s == 'J') {
		r->kind = 'J';
		s = parse_num(s + 1, 1, 365, &r->n);
	} else if (*s == 'M') {
		r->kind = 'M';
		if ((s = parse_num(s + 1, 1, 12, &r->m)) && *s == '.' && (s = parse_num(s + 1, 1, 5, &r->w)) &&
		    *s == '.')
			s = parse_num(s + 1, 0, 6, &r->d);
		else
			s = NULL;
	} else {
		r->kind = 'D';
		s = parse_num(s, 0, 365, &r->n);
	}
	if (!s)
		return NULL;
	r->time = 2 * 3600;
	if (*s == '/')
		s = parse_hms(s + 1, 167, &r->time);
	return s;
}

/* The footer's TZ string, e.g. "CET-1CEST,M3.5.0,M10.5.0/3". POSIX offsets
 * count west of UTC; ours count east. */
static bool parse_footer(const char *s, struct tz_footer *f)
{
	memset(f, 0, sizeof *f);
	if (*s == '\0')
		return true; /* no rule: the last type stays */
	int32_t off;
	if (!(s = parse_abbr(s, f->std_abbr)) || !(s = parse_hms(s, 24, &off)))
		return false;
	f->std_off = -off;
	f->present = true;
	if (*s == '\0')
		return true;
	if (!(s = parse_abbr(s, f->dst_abbr)))
		return false;
	f->dst_off = f->std_off + 3600;
	if (*s != ',') {
		if (!(s = parse_hms(s, 24, &off)))
			return false;
		f->dst_off = -off;
	}
	/* A DST name without rules is left to the implementation by POSIX;
	 * zic always writes the rules, so a file without them is refused. */
	if (*s != ',' || !(s = parse_rule_date(s + 1, &f->start)) || *s != ',' ||
	    !(s = parse_rule_date(s + 1, &f->end)) || *s != '\0')
		return false;
	f->has_dst = true;
	return true;
}

/* ---- reading TZif ---------------------------------------------------- */

struct reader {
	const unsigned char *p;
	size_t left;
};

static bool take(struct reader *r, size_t n, const unsigned char **out)
{
	if (r->left < n)
		return false;
	*out = r->p;
	r->p += n;
	r->left -= n;
	return true;
}

static uint32_t be32(const unsigned char *p)
{
	return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

static int64_t be64_signed(const unsigned char *p)
{
	uint64_t u = (uint64_t)be32(p) << 32 | be32(p + 4);
	return u > (uint64_t)INT64_MAX ? -(int64_t)(~u) - 1 : (int64_t)u;
}

static int32_t be32_signed(const unsigned char *p)
{
	uint32_t u = be32(p);
	return u > (uint32_t)INT32_MAX ? -(int32_t)(~u) - 1 : (int32_t)u;
}

struct tzif_counts {
	uint32_t isut, isstd, leap, time, type, chars;
};

static bool read_header(struct reader *r, char *version, struct tzif_counts *c)
{
	const unsigned char *h;
	if (!take(r, 44, &h) || memcmp(h, "TZif", 4) != 0)
		return false;
	*version = (char)h[4];
	if (*version != '\0' && (*version < '2' || *version > '4'))
		return false;
	c->isut = be32(h + 20);
	c->isstd = be32(h + 24);
	c->leap = be32(h + 28);
	c->time = be32(h + 32);
	c->type = be32(h + 36);
	c->chars = be32(h + 40);
	return c->type >= 1 && c->type <= 256 && c->chars >= 1 && (c->isut == 0 || c->isut == c->type) &&
	       (c->isstd == 0 || c->isstd == c->type) && c->time <= TZ_FILE_MAX && c->chars <= TZ_FILE_MAX &&
	       c->leap <= TZ_FILE_MAX;
}

enum parse_rc { PARSE_OK, PARSE_BAD, PARSE_NOMEM };

/* Reads one data block (4- or 8-byte times) into z. */
static enum parse_rc read_block(struct reader *r, const struct tzif_counts *c, size_t tsize, struct tz *z)
{
	const unsigned char *times, *idx, *types, *chars, *skip;
	if (!take(r, c->time * tsize, &times) || !take(r, c->time, &idx) || !take(r, c->type * 6u, &types) ||
	    !take(r, c->chars, &chars) || !take(r, c->leap * (tsize + 4), &skip) || !take(r, c->isstd, &skip) ||
	    !take(r, c->isut, &skip))
		return PARSE_BAD;
	z->timecnt = c->time;
	z->typecnt = c->type;
	z->times = malloc((c->time ? c->time : 1) * sizeof *z->times);
	z->idx = malloc(c->time ? c->time : 1);
	z->types = malloc(c->type * sizeof *z->types);
	z->chars = malloc(c->chars + 1u);
	if (!z->times || !z->idx || !z->types || !z->chars)
		return PARSE_NOMEM;
	for (size_t i = 0; i < c->time; i++) {
		z->times[i] = tsize == 8 ? be64_signed(times + 8 * i) : be32_signed(times + 4 * i);
		z->idx[i] = idx[i];
		if (idx[i] >= c->type || (i > 0 && z->times[i] <= z->times[i - 1]))
			return PARSE_BAD;
	}
	for (size_t i = 0; i < c->type; i++) {
		const unsigned char *t = types + 6 * i;
		z->types[i].utoff = be32_signed(t);
		z->types[i].isdst = t[4];
		z->types[i].abbr = t[5];
		if (z->types[i].utoff <= -TZ_OFF_MAX || z->types[i].utoff >= TZ_OFF_MAX || t[4] > 1 ||
		    t[5] >= c->chars)
			return PARSE_BAD;
	}
	memcpy(z->chars, chars, c->chars);
	z->chars[c->chars] = '\0';
	return PARSE_OK;
}

/* Parses a whole TZif file into z; *why says what is wrong when it is not
 * one we accept. */
static enum parse_rc parse_tzif(const unsigned char *buf, size_t len, struct tz *z, const char **why)
{
	struct reader r = {buf, len};
	struct tzif_counts c;
	char version;
	*why = "is not a time zone file";
	if (!read_header(&r, &version, &c))
		return PARSE_BAD;
	if (c.leap != 0) {
		*why = "counts leap seconds, which are not supported";
		return PARSE_BAD;
	}
	if (version == '\0')
		return read_block(&r, &c, 4, z);

	/* Version 2 and later: skip the 32-bit block, read the 64-bit one. */
	const unsigned char *skip;
	size_t v1 = (size_t)c.time * 5 + (size_t)c.type * 6 + c.chars + (size_t)c.leap * 8 + c.isstd + c.isut;
	if (!take(&r, v1, &skip) || !read_header(&r, &version, &c) || version == '\0')
		return PARSE_BAD;
	if (c.leap != 0) {
		*why = "counts leap seconds, which are not supported";
		return PARSE_BAD;
	}
	enum parse_rc rc = read_block(&r, &c, 8, z);
	if (rc != PARSE_OK)
		return rc;
	/* The footer: "\n" TZ string "\n". */
	const unsigned char *nl;
	if (!take(&r, 1, &nl) || *nl != '\n')
		return PARSE_BAD;
	const unsigned char *end = memchr(r.p, '\n', r.left);
	if (!end || (size_t)(end - r.p) > 255)
		return PARSE_BAD;
	char tzstr[256];
	memcpy(tzstr, r.p, (size_t)(end - r.p));
	tzstr[end - r.p] = '\0';
	if (!parse_footer(tzstr, &z->footer)) {
		*why = "has a time zone rule that cannot be read";
		return PARSE_BAD;
	}
	return PARSE_OK;
}

/* ---- loading --------------------------------------------------------- */

static void set_err(char *err, size_t errlen, const char *fmt, ...)
{
	if (errlen == 0)
		return;
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(err, errlen, fmt, ap);
	va_end(ap);
}

/* The caller's name fit to quote in a message: printable ASCII only
 * (anything else becomes '?', so the message stays valid UTF-8 on one
 * line), cut at 64 bytes with "...". */
static const char *quote(const char *name, char buf[72])
{
	size_t n = 0;
	for (; n < 64 && name[n]; n++)
		buf[n] = (name[n] >= 0x20 && name[n] < 0x7f) ? name[n] : '?';
	if (name[n]) {
		memcpy(buf + n, "...", 3);
		n += 3;
	}
	buf[n] = '\0';
	return buf;
}

static bool name_ok(const char *name)
{
	size_t n = strlen(name);
	if (n == 0 || n > TZ_NAME_MAX || name[0] == '/' || strstr(name, ".."))
		return false;
	for (size_t i = 0; i < n; i++) {
		char ch = name[i];
		if (!((ch >= 'A' && ch <= 'Z') || (ch >= 'a' && ch <= 'z') || (ch >= '0' && ch <= '9') || ch == '_' ||
		      ch == '+' || ch == '-' || ch == '/'))
			return false;
	}
	return true;
}

static struct tz *tz_utc(void)
{
	struct tz *z = calloc(1, sizeof *z);
	if (!z)
		return NULL;
	z->name = strdup("UTC");
	z->typecnt = 1;
	z->types = calloc(1, sizeof *z->types);
	z->chars = strdup("UTC");
	if (!z->name || !z->types || !z->chars) {
		tz_free(z);
		return NULL;
	}
	return z;
}

/* Reads the file at path into a new buffer. Returns 0, -1 with errno set,
 * or -2 when it is not a regular file or is too large. */
static int read_file(const char *path, unsigned char **buf, size_t *len)
{
	int rc = -1;
	unsigned char *b = NULL;
	int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
	if (fd < 0)
		goto out;
	struct stat st;
	if (fstat(fd, &st) != 0)
		goto out;
	if (!S_ISREG(st.st_mode) || st.st_size > TZ_FILE_MAX) {
		rc = -2;
		goto out;
	}
	size_t cap = (size_t)st.st_size, n = 0;
	b = malloc(cap + 1);
	if (!b)
		goto out;
	while (n < cap) {
		ssize_t got = read(fd, b + n, cap - n);
		if (got < 0 && errno == EINTR)
			continue;
		if (got < 0)
			goto out;
		if (got == 0)
			break;
		n += (size_t)got;
	}
	*buf = b;
	*len = n;
	b = NULL;
	rc = 0;
out:
	if (fd >= 0) {
		int saved = errno;
		close(fd);
		errno = saved;
	}
	free(b);
	return rc;
}

enum tz_status tz_load(const char *name, struct tz **out, char *err, size_t errlen)
{
	enum tz_status rc = TZ_ERROR;
	struct tz *z = NULL;
	unsigned char *buf = NULL;
	size_t len = 0;
	*out = NULL;
	if (errlen > 0)
		err[0] = '\0';

	if (!name_ok(name)) {
		char q[72];
		set_err(err, errlen, "time zone \"%s\" is not a valid name", quote(name, q));
		return TZ_INVALID;
	}
	if (strcmp(name, "UTC") == 0) {
		z = tz_utc();
		if (!z) {
			set_err(err, errlen, "time zone \"UTC\": out of memory");
			return TZ_ERROR;
		}
		*out = z;
		return TZ_OK;
	}

	const char *dir = getenv("TZDIR");
	if (!dir || !*dir)
		dir = TZ_DEFAULT_DIR;
	char path[PATH_MAX];
	int plen = snprintf(path, sizeof path, "%s/%s", dir, name);
	if (plen < 0 || (size_t)plen >= sizeof path) {
		set_err(err, errlen, "time zone \"%s\" is unknown", name); /* a valid name: no quoting needed */
		return TZ_INVALID;
	}
	int r = read_file(path, &buf, &len);
	if (r == -2) {
		set_err(err, errlen, "time zone \"%s\" is unknown", name); /* a directory */
		rc = TZ_INVALID;
		goto out;
	}
	if (r != 0) {
		if (errno == ENOENT || errno == ENOTDIR || errno == ELOOP || errno == ENAMETOOLONG) {
			set_err(err, errlen, "time zone \"%s\" is unknown", name);
			rc = TZ_INVALID;
		} else {
			set_err(err, errlen, "time zone \"%s\" could not be read: %s", name, strerror(errno));
		}
		goto out;
	}

	z = calloc(1, sizeof *z);
	if (!z || !(z->name = strdup(name))) {
		set_err(err, errlen, "time zone \"%s\": out of memory", name);
		goto out;
	}
	const char *why = NULL;
	enum parse_rc prc = parse_tzif(buf, len, z, &why);
	if (prc == PARSE_NOMEM) {
		set_err(err, errlen, "time zone \"%s\": out of memory", name);
		goto out;
	}
	if (prc != PARSE_OK) {
		set_err(err, errlen, "time zone \"%s\" %s", name, why);
		rc = TZ_INVALID;
		goto out;
	}
	*out = z;
	z = NULL;
	rc = TZ_OK;
out:
	tz_free(z);
	free(buf);
	return rc;
}
