/* Logging to stderr, one line per call, written with a single fputs so
 * lines from different threads do not interleave. Values are escaped so
 * that a client-chosen path or header can never start a line of its own or
 * forge a key. */
#include "core/log.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "core/clock.h"
#include "core/text.h"

#define LINE_MAX_BYTES 4096

enum log_level log_threshold = LOG_INFO;
enum log_format log_format = LOG_FORMAT_LOGFMT;

static const char *const level_names[] = {"error", "warn", "info", "debug"};

int log_level_parse(const char *name, enum log_level *out)
{
	for (size_t i = 0; i < sizeof level_names / sizeof level_names[0]; i++) {
		if (strcmp(name, level_names[i]) == 0) {
			*out = (enum log_level)i;
			return 0;
		}
	}
	return -1;
}

int log_format_parse(const char *name, enum log_format *out)
{
	if (strcmp(name, "logfmt") == 0)
		*out = LOG_FORMAT_LOGFMT;
	else if (strcmp(name, "json") == 0)
		*out = LOG_FORMAT_JSON;
	else
		return -1;
	return 0;
}

/* A bounded line: appends stop quietly at the end, keeping room for the
 * closing characters and the newline. */
struct line {
	char *p;
	size_t len, cap;  /* cap excludes the reserved tail */
	bool cut;         /* something did not fit */
};

static void put(struct line *l, const char *s, size_t n)
{
	if (l->len + n > l->cap) {
		n = l->cap - l->len;
		l->cut = true;
	}
	memcpy(l->p + l->len, s, n);
	l->len += n;
}

static void puts_(struct line *l, const char *s)
{
	put(l, s, strlen(s));
}

/* Writes s between quotes with JSON escapes; invalid UTF-8 becomes U+FFFD.
 * logfmt uses the same escapes, which logfmt readers accept. */
static void put_quoted(struct line *l, const char *s)
{
	put(l, "\"", 1);
	for (const unsigned char *c = (const unsigned char *)s; *c;) {
		char esc[8];
		size_t n = utf8_seq_len((const char *)c, 4); /* stops at the NUL */
		if (*c == '"' || *c == '\\') {
			esc[0] = '\\';
			esc[1] = (char)*c;
			put(l, esc, 2);
		} else if (*c == '\n') {
			puts_(l, "\\n");
		} else if (*c == '\t') {
			puts_(l, "\\t");
		} else if (*c < 0x20 || *c == 0x7f) {
			snprintf(esc, sizeof esc, "\\u%04x", *c);
			puts_(l, esc);
		} else if (n == 0) {
			puts_(l, "\xef\xbf\xbd");
		} else {
			put(l, (const char *)c, n);
			c += n;
			continue;
		}
		c++;
	}
	put(l, "\"", 1);
}

/* logfmt leaves a value bare when it holds no blank, quote, '=' or
 * control or non-ASCII byte, and is not empty. */
static bool logfmt_bare(const char *s)
{
	if (!*s)
		return false;
	for (const unsigned char *c = (const unsigned char *)s; *c; c++)
		if (*c <= ' ' || *c == '"' || *c == '=' || *c == '\\' || *c >= 0x7f)
			return false;
	return true;
}

static void put_field(struct line *l, enum log_format format, bool first, const char *key,
                      const char *value, bool number)
{
	if (format == LOG_FORMAT_JSON) {
		if (!first)
			put(l, ",", 1);
		put_quoted(l, key);
		put(l, ":", 1);
		if (number)
			puts_(l, value);
		else
			put_quoted(l, value);
		return;
	}
	if (!first)
		put(l, " ", 1);
	puts_(l, key);
	put(l, "=", 1);
	if (logfmt_bare(value))
		puts_(l, value);
	else
		put_quoted(l, value);
}

size_t log_format_line(char *out, size_t len, enum log_format format, const char *ts,
                       const char *level, const char *msg, const struct log_field *f, size_t n)
{
	if (len < 4) {
		if (len)
			out[0] = '\0';
		return 0;
	}
	struct line l = {.p = out, .len = 0, .cap = len - 3}; /* room for "}\n\0" */
	if (format == LOG_FORMAT_JSON)
		put(&l, "{", 1);
	put_field(&l, format, true, "ts", ts, false);
	put_field(&l, format, false, "level", level, false);
	put_field(&l, format, false, "msg", msg, false);
	/* A field that does not fit is left out whole, so a long line stays
	 * well-formed (messages are shorter than a line). */
	size_t good = l.len;
	for (size_t i = 0; i < n && !l.cut; i++) {
		put_field(&l, format, false, f[i].key, f[i].value ? f[i].value : "", f[i].number);
		if (!l.cut)
			good = l.len;
	}
	l.len = good;
	if (format == LOG_FORMAT_JSON)
		out[l.len++] = '}';
	out[l.len++] = '\n';
	out[l.len] = '\0';
	return l.len;
}

void log_fields(enum log_level level, const char *msg, const struct log_field *f, size_t n)
{
	if (level > log_threshold)
		return;
	char when[32], out[LINE_MAX_BYTES];
	clock_rfc3339(clock_now_ms(), when);
	log_format_line(out, sizeof out, log_format, when, level_names[level], msg, f, n);
	fputs(out, stderr);
}

void log_write(enum log_level level, const char *file, int line, int err,
               const char *fmt, ...)
{
	if (level > log_threshold)
		return;
	char msg[1024], at[128];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof msg, fmt, ap);
	va_end(ap);
	snprintf(at, sizeof at, "%s:%d", file, line);
	struct log_field f[2] = {{"at", at, false}, {"error", err ? strerror(err) : "", false}};
	log_fields(level, msg, f, err ? 2 : 1);
}
