/* Strict JSON for request bodies: a recursive-descent reading of RFC 8259
 * that builds a cJSON tree outside payloads and only checks the syntax of
 * a payload, which is kept as its text. Depth is bounded by
 * JSON_DEPTH_MAX, so the recursion is too. */
#include "core/json.h"

#include <errno.h>
#include <float.h>
#include <limits.h>
#include <math.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define PATH_CAP 256

struct parser {
	const char *start, *at, *end;
	int depth;
	bool find_nul;       /* checking: stop at the first \u0000 */
	bool found_nul;
	bool track;          /* keep path up to date */
	char path[PATH_CAP]; /* where the parser is: jobs[2].payload */
	size_t plen;
	struct problem *p;
};

/* ---- errors and the path ----------------------------------------------- */

static int syntax(struct parser *ps, const char *what)
{
	return problem_set(ps->p, PROBLEM_MALFORMED_JSON, NULL, "the request body is not valid JSON: %s at byte %zu",
	                   what, (size_t)(ps->at - ps->start));
}

static int oom(struct parser *ps)
{
	return problem_set(ps->p, PROBLEM_INTERNAL, NULL, "out of memory");
}

/* Copies src into dst[cap], cut on a UTF-8 character boundary. */
static void cut_copy(char *dst, size_t cap, const char *src)
{
	size_t n = strlen(src);
	if (n >= cap) {
		n = cap - 1;
		while (n > 0 && ((unsigned char)src[n] & 0xc0) == 0x80)
			n--;
	}
	memcpy(dst, src, n);
	dst[n] = '\0';
}

/* invalid_field naming the current path. */
__attribute__((format(printf, 2, 3)))
static int field_error(struct parser *ps, const char *fmt, ...)
{
	char field[sizeof ps->p->field];
	cut_copy(field, sizeof field, ps->path);
	problem_set(ps->p, PROBLEM_INVALID_FIELD, field, "%s", "");
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(ps->p->detail, sizeof ps->p->detail, fmt, ap);
	va_end(ap);
	return -1;
}

/* Appends n bytes of s to the path, cut where it no longer fits. */
static void path_add(struct parser *ps, const char *s, size_t n)
{
	size_t room = PATH_CAP - 1 - ps->plen;
	if (n > room)
		n = room;
	memcpy(ps->path + ps->plen, s, n);
	ps->plen += n;
	ps->path[ps->plen] = '\0';
}

/* Appends a step (a then b) to the path; returns the length to restore
 * with pop. A path that no longer fits stays cut where it was. Every
 * member of a request body passes here: no printf. */
static size_t push(struct parser *ps, const char *a, size_t an, const char *b, size_t bn)
{
	size_t saved = ps->plen;
	if (!ps->track || ps->plen >= PATH_CAP - 1)
		return saved;
	path_add(ps, a, an);
	path_add(ps, b, bn);
	return saved;
}

static size_t push_index(struct parser *ps, int i)
{
	char text[16], *e = text + sizeof text, *w = e;
	*--w = ']';
	unsigned u = (unsigned)i;
	do
		*--w = (char)('0' + u % 10);
	while (u /= 10);
	return push(ps, "[", 1, w, (size_t)(e - w));
}

static void pop(struct parser *ps, size_t saved)
{
	ps->plen = saved;
	ps->path[saved] = '\0';
}

static size_t push_key(struct parser *ps, const char *key)
{
	return push(ps, ".", ps->plen ? 1 : 0, key, strlen(key));
}

/* ---- tokens ------------------------------------------------------------ */

static void skip_ws(struct parser *ps)
{
	while (ps->at < ps->end && (*ps->at == ' ' || *ps->at == '\t' || *ps->at == '\n' || *ps->at == '\r'))
		ps->at++;
}

static bool is_digit(const struct parser *ps)
{
	return ps->at < ps->end && *ps->at >= '0' && *ps->at <= '9';
}

static int hex4(const char *s, uint32_t *out)
{
	uint32_t v = 0;
	for (int i = 0; i < 4; i++) {
		char c = s[i];
		int d = c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10
		      : c >= 'A' && c <= 'F' ? c - 'A' + 10 : -1;
		if (d < 0)
			return -1;
		v = v << 4 | (uint32_t)d;
	}
	*out = v;
	return 0;
}

/* Reads \uXXXX (a surrogate pair as one) at s; *len is the escape's length.
 * -1 when it is not a valid escape. */
static int read_u(const char *s, const char *end, uint32_t *cp, size_t *len)
{
	if (end - s < 6 || hex4(s + 2, cp) != 0)
		return -1;
	*len = 6;
	if (*cp >= 0xdc00 && *cp <= 0xdfff)
		return -1; /* a low surrogate alone */
	if (*cp < 0xd800 || *cp > 0xdbff)
		return 0;
	uint32_t lo;
	if (end - s < 12 || s[6] != '\\' || s[7] != 'u' || hex4(s + 8, &lo) != 0 || lo < 0xdc00 || lo > 0xdfff)
		return -1;
	*cp = 0x10000 + ((*cp - 0xd800) << 10) + (lo - 0xdc00);
	*len = 12;
	return 0;
}

static size_t put_utf8(char *o, uint32_t cp)
{
	if (cp < 0x80) {
		o[0] = (char)cp;
		return 1;
	}
	if (cp < 0x800) {
		o[0] = (char)(0xc0 | cp >> 6);
		o[1] = (char)(0x80 | (cp & 0x3f));
		return 2;
	}
	if (cp < 0x10000) {
		o[0] = (char)(0xe0 | cp >> 12);
		o[1] = (char)(0x80 | (cp >> 6 & 0x3f));
		o[2] = (char)(0x80 | (cp & 0x3f));
		return 3;
	}
	o[0] = (char)(0xf0 | cp >> 18);
	o[1] = (char)(0x80 | (cp >> 12 & 0x3f));
	o[2] = (char)(0x80 | (cp >> 6 & 0x3f));
	o[3] = (char)(0x80 | (cp & 0x3f));
	return 4;
}

/* Decodes the already checked string body s..e into a new C string. */
static char *decode(const char *s, const char *e)
{
	char *out = malloc((size_t)(e - s) + 1), *o = out;
	if (!out)
		return NULL;
	while (s < e) {
		if (*s != '\\') {
			*o++ = *s++;
			continue;
		}
		static const char from[] = "\"\\/bfnrt", to[] = "\"\\/\b\f\n\r\t";
		const char *m = strchr(from, s[1]);
		if (s[1] != 'u') {
			*o++ = to[m - from];
			s += 2;
			continue;
		}
		uint32_t cp;
		size_t len;
		if (read_u(s, e, &cp, &len) != 0)
			cp = 0xfffd, len = 2; /* not reached: the string was checked */
		o += put_utf8(o, cp);
		s += len;
	}
	*o = '\0';
	return out;
}

/* Reads the string at ps->at (its opening quote). With out, *out is its
 * decoded text (a \u0000 in it ends the C string early). *nul: it holds a
 * \u0000. */
static int parse_string(struct parser *ps, char **out, bool *nul)
{
	const char *body = ++ps->at;
	*nul = false;
	for (;;) {
		if (ps->at >= ps->end)
			return syntax(ps, "a string is not closed");
		unsigned char c = (unsigned char)*ps->at;
		if (c == '"')
			break;
		if (c < 0x20)
			return syntax(ps, "a control character in a string must be escaped");
		if (c != '\\') {
			ps->at++;
			continue;
		}
		char e = ps->end - ps->at > 1 ? ps->at[1] : '\0';
		if (e && strchr("\"\\/bfnrt", e)) {
			ps->at += 2;
			continue;
		}
		uint32_t cp;
		size_t len;
		if (e != 'u' || read_u(ps->at, ps->end, &cp, &len) != 0)
			return syntax(ps, "bad escape in a string (\\u needs four hex digits, surrogates in pairs)");
		*nul |= cp == 0;
		ps->at += len;
	}
	const char *stop = ps->at++;
	if (out && !(*out = decode(body, stop)))
		return oom(ps);
	return 0;
}

/* Reads a number; with out, its value, refusing one beyond a double. */
static int parse_number(struct parser *ps, double *out)
{
	const char *s = ps->at;
	if (*ps->at == '-')
		ps->at++;
	if (!is_digit(ps))
		return syntax(ps, "bad number");
	if (*ps->at == '0') {
		ps->at++;
		if (is_digit(ps))
			return syntax(ps, "bad number (no leading zeros)");
	} else {
		while (is_digit(ps))
			ps->at++;
	}
	if (ps->at < ps->end && *ps->at == '.') {
		ps->at++;
		if (!is_digit(ps))
			return syntax(ps, "bad number (a digit must follow the point)");
		while (is_digit(ps))
			ps->at++;
	}
	if (ps->at < ps->end && (*ps->at == 'e' || *ps->at == 'E')) {
		ps->at++;
		if (ps->at < ps->end && (*ps->at == '+' || *ps->at == '-'))
			ps->at++;
		if (!is_digit(ps))
			return syntax(ps, "bad number (a digit must follow the exponent)");
		while (is_digit(ps))
			ps->at++;
	}
	if (!out)
		return 0;
	size_t n = (size_t)(ps->at - s);
	char small[64], *copy = n < sizeof small ? small : malloc(n + 1);
	if (!copy)
		return oom(ps);
	memcpy(copy, s, n);
	copy[n] = '\0';
	errno = 0;
	*out = strtod(copy, NULL);
	bool range = errno == ERANGE;
	if (copy != small)
		free(copy);
	if (range)
		return field_error(ps, "%s: the number %.*s%s does not fit in a double", ps->path,
		                   n > 40 ? 40 : (int)n, s, n > 40 ? "..." : "");
	return 0;
}

static int literal(struct parser *ps, const char *word)
{
	size_t n = strlen(word);
	if ((size_t)(ps->end - ps->at) < n || memcmp(ps->at, word, n) != 0)
		return syntax(ps, "unexpected character");
	ps->at += n;
	return 0;
}

/* ---- values ------------------------------------------------------------ */

static int parse_value(struct parser *ps, bool build, cJSON **out);

/* The text s..e without white space outside strings. */
static char *minify(const char *s, const char *e)
{
	char *out = malloc((size_t)(e - s) + 1), *o = out;
	if (!out)
		return NULL;
	bool in_string = false;
	for (; s < e; s++) {
		if (in_string) {
			*o++ = *s;
			if (*s == '\\')
				*o++ = *++s;
			else if (*s == '"')
				in_string = false;
		} else if (*s != ' ' && *s != '\t' && *s != '\n' && *s != '\r') {
			in_string = *s == '"';
			*o++ = *s;
		}
	}
	*o = '\0';
	return out;
}

/* A payload: checked, then kept as its text in a raw item. */
static int parse_payload(struct parser *ps, cJSON **out)
{
	skip_ws(ps);
	const char *s = ps->at;
	bool track = ps->track;
	ps->track = false; /* nothing inside a payload is named in a problem */
	int rc = parse_value(ps, false, NULL);
	ps->track = track;
	if (rc != 0)
		return -1;
	char *text = minify(s, ps->at);
	*out = text ? cJSON_CreateRaw(text) : NULL;
	free(text);
	return *out ? 0 : oom(ps);
}

static int cmp_str(const void *a, const void *b)
{
	return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/* Refuses a key seen twice among obj's members: pair by pair in a small
 * object (a job has at most a dozen), sorted in a large one (n log n). */
static int check_duplicates(struct parser *ps, const cJSON *obj)
{
	int n = cJSON_GetArraySize(obj);
	if (n < 2)
		return 0;
	if (n <= 16) {
		const char *first = NULL; /* the least key given twice, as sorting finds it */
		for (const cJSON *a = obj->child->next; a; a = a->next)
			for (const cJSON *b = obj->child; b != a; b = b->next)
				if (strcmp(a->string, b->string) == 0 && (!first || strcmp(a->string, first) < 0))
					first = a->string;
		if (!first)
			return 0;
		push_key(ps, first);
		return field_error(ps, "%s is given twice; send each field once", ps->path);
	}
	const char **keys = malloc((size_t)n * sizeof *keys);
	if (!keys)
		return oom(ps);
	int i = 0;
	for (const cJSON *m = obj->child; m; m = m->next)
		keys[i++] = m->string;
	qsort(keys, (size_t)n, sizeof *keys, cmp_str);
	int rc = 0;
	for (i = 1; i < n && rc == 0; i++) {
		if (strcmp(keys[i - 1], keys[i]) == 0) {
			push_key(ps, keys[i]);
			rc = field_error(ps, "%s is given twice; send each field once", ps->path);
		}
	}
	free(keys);
	return rc;
}

static int parse_object(struct parser *ps, bool build, cJSON **out)
{
	cJSON *obj = NULL;
	char *key = NULL;
	ps->at++;
	if (build && !(obj = cJSON_CreateObject()))
		return oom(ps);
	skip_ws(ps);
	if (ps->at < ps->end && *ps->at == '}') {
		ps->at++;
		goto done;
	}
	for (;;) {
		skip_ws(ps);
		if (ps->at >= ps->end || *ps->at != '"') {
			syntax(ps, "expected a key in double quotes");
			goto fail;
		}
		bool nul;
		if (parse_string(ps, build || ps->find_nul ? &key : NULL, &nul) != 0)
			goto fail;
		size_t saved = push_key(ps, key ? key : "");
		if (nul && ps->find_nul) {
			ps->found_nul = true;
			goto fail;
		}
		if (nul && build) {
			field_error(ps, "the key \"%.60s\\u0000...\" holds \\u0000 (NUL), which no field name can", key);
			goto fail;
		}
		skip_ws(ps);
		if (ps->at >= ps->end || *ps->at != ':') {
			syntax(ps, "expected ':' after a key");
			goto fail;
		}
		ps->at++;
		cJSON *item = NULL;
		int rc = build && strcmp(key, "payload") == 0 ? parse_payload(ps, &item) : parse_value(ps, build, &item);
		if (rc != 0)
			goto fail;
		if (build) {
			if (!item) {
				oom(ps);
				goto fail;
			}
			/* The member takes the decoded key as is: no copy. */
			item->string = key;
			key = NULL;
			cJSON_AddItemToArray(obj, item);
		}
		pop(ps, saved);
		free(key);
		key = NULL;
		skip_ws(ps);
		if (ps->at < ps->end && *ps->at == ',') {
			ps->at++;
			continue;
		}
		if (ps->at < ps->end && *ps->at == '}') {
			ps->at++;
			break;
		}
		syntax(ps, "expected ',' or '}' in an object");
		goto fail;
	}
	if (build && check_duplicates(ps, obj) != 0)
		goto fail;
done:
	if (out)
		*out = obj;
	return 0;
fail:
	free(key);
	cJSON_Delete(obj);
	return -1;
}

static int parse_array(struct parser *ps, bool build, cJSON **out)
{
	cJSON *arr = NULL;
	ps->at++;
	if (build && !(arr = cJSON_CreateArray()))
		return oom(ps);
	skip_ws(ps);
	if (ps->at < ps->end && *ps->at == ']') {
		ps->at++;
		goto done;
	}
	for (int i = 0;; i++) {
		size_t saved = push_index(ps, i);
		cJSON *item = NULL;
		if (parse_value(ps, build, &item) != 0)
			goto fail;
		if (build && !cJSON_AddItemToArray(arr, item)) {
			cJSON_Delete(item);
			oom(ps);
			goto fail;
		}
		pop(ps, saved);
		skip_ws(ps);
		if (ps->at < ps->end && *ps->at == ',') {
			ps->at++;
			continue;
		}
		if (ps->at < ps->end && *ps->at == ']') {
			ps->at++;
			break;
		}
		syntax(ps, "expected ',' or ']' in an array");
		goto fail;
	}
done:
	if (out)
		*out = arr;
	return 0;
fail:
	cJSON_Delete(arr);
	return -1;
}

static int parse_scalar_string(struct parser *ps, bool build, cJSON **out)
{
	char *s = NULL;
	bool nul;
	if (parse_string(ps, build ? &s : NULL, &nul) != 0)
		return -1;
	if (nul && ps->find_nul)
		ps->found_nul = true;
	if (nul && (build || ps->find_nul)) {
		free(s);
		return ps->find_nul ? -1
		                    : field_error(ps, "%s holds \\u0000 (NUL); only a payload may hold it", ps->path);
	}
	if (build) {
		*out = cJSON_CreateString(s);
		free(s);
		if (!*out)
			return oom(ps);
	}
	return 0;
}

static int parse_number_value(struct parser *ps, bool build, cJSON **out)
{
	double d;
	if (parse_number(ps, build ? &d : NULL) != 0)
		return -1;
	if (build && !(*out = cJSON_CreateNumber(d)))
		return oom(ps);
	return 0;
}

static int parse_literal(struct parser *ps, bool build, cJSON **out)
{
	static const struct { const char *word; int type; } words[] = {
		{"true", cJSON_True}, {"false", cJSON_False}, {"null", cJSON_NULL},
	};
	for (size_t i = 0; i < sizeof words / sizeof words[0]; i++) {
		if (*ps->at != words[i].word[0])
			continue;
		if (literal(ps, words[i].word) != 0)
			return -1;
		if (!build)
			return 0;
		*out = words[i].type == cJSON_NULL ? cJSON_CreateNull() : cJSON_CreateBool(words[i].type == cJSON_True);
		return *out ? 0 : oom(ps);
	}
	return syntax(ps, "unexpected character");
}

static int parse_value(struct parser *ps, bool build, cJSON **out)
{
	skip_ws(ps);
	if (ps->at >= ps->end)
		return syntax(ps, "a value is missing");
	char c = *ps->at;
	if (c == '{' || c == '[') {
		if (ps->depth >= JSON_DEPTH_MAX)
			return syntax(ps, "nested too deeply");
		ps->depth++;
		int rc = c == '{' ? parse_object(ps, build, out) : parse_array(ps, build, out);
		ps->depth--;
		return rc;
	}
	if (c == '"')
		return parse_scalar_string(ps, build, out);
	if (c == '-' || (c >= '0' && c <= '9'))
		return parse_number_value(ps, build, out);
	return parse_literal(ps, build, out);
}

/* ---- entry points ------------------------------------------------------ */

/* Reads the one value of text[0..len), white space around it. */
static int parse_all(struct parser *ps, bool build, cJSON **out)
{
	if (parse_value(ps, build, out) != 0)
		return -1;
	skip_ws(ps);
	if (ps->at == ps->end)
		return 0;
	if (out) {
		cJSON_Delete(*out);
		*out = NULL;
	}
	return problem_set(ps->p, PROBLEM_MALFORMED_JSON, NULL, "unexpected data after the JSON value at byte %zu",
	                   (size_t)(ps->at - ps->start));
}

cJSON *json_parse_strict(const char *text, size_t len, struct problem *p)
{
	struct parser ps = {.start = text, .at = text, .end = text + len, .track = true, .p = p};
	cJSON *v = NULL;
	return parse_all(&ps, true, &v) == 0 ? v : NULL;
}

bool json_valid(const char *text)
{
	struct problem p;
	struct parser ps = {.start = text, .at = text, .end = text + strlen(text), .p = &p};
	return parse_all(&ps, false, NULL) == 0;
}

bool json_find_nul(const char *text, const char *base, char *path, size_t cap)
{
	struct problem p;
	struct parser ps = {.start = text, .at = text, .end = text + strlen(text), .p = &p,
	                    .find_nul = true, .track = true};
	cut_copy(ps.path, sizeof ps.path, base);
	ps.plen = strlen(ps.path);
	if (parse_all(&ps, false, NULL) == 0 || !ps.found_nul)
		return false;
	cut_copy(path, cap, ps.path);
	return true;
}

/* ---- the writer --------------------------------------------------------- */

/* Room for n more bytes and the NUL; false once out of memory. */
static bool out_room(struct json_out *o, size_t n)
{
	if (o->oom)
		return false;
	if (o->len + n + 1 <= o->cap)
		return true;
	size_t cap = o->cap ? o->cap : 1024;
	while (cap < o->len + n + 1)
		cap *= 2;
	char *buf = realloc(o->buf, cap);
	if (!buf) {
		free(o->buf);
		*o = (struct json_out){.oom = true};
		return false;
	}
	o->buf = buf;
	o->cap = cap;
	return true;
}

void json_out_raw(struct json_out *o, const char *s, size_t n)
{
	if (!out_room(o, n))
		return;
	memcpy(o->buf + o->len, s, n);
	o->len += n;
	o->buf[o->len] = '\0';
}

void json_out_str(struct json_out *o, const char *s)
{
	static const char hex[] = "0123456789abcdef";
	size_t n = strlen(s);
	if (!out_room(o, n * 6 + 2)) /* every byte escaped as \u00XX at worst */
		return;
	char *w = o->buf + o->len;
	*w++ = '"';
	for (const unsigned char *c = (const unsigned char *)s; *c; c++) {
		if (*c >= 32 && *c != '"' && *c != '\\') {
			*w++ = (char)*c;
			continue;
		}
		*w++ = '\\';
		switch (*c) {
		case '"': *w++ = '"'; break;
		case '\\': *w++ = '\\'; break;
		case '\b': *w++ = 'b'; break;
		case '\f': *w++ = 'f'; break;
		case '\n': *w++ = 'n'; break;
		case '\r': *w++ = 'r'; break;
		case '\t': *w++ = 't'; break;
		default:
			memcpy(w, "u00", 3);
			w[3] = hex[*c >> 4];
			w[4] = hex[*c & 15];
			w += 5;
		}
	}
	*w++ = '"';
	*w = '\0';
	o->len = (size_t)(w - o->buf);
}

/* cJSON's test of whether a printed number read back as the same one. */
static bool same_double(double a, double b)
{
	double max = fabs(a) > fabs(b) ? fabs(a) : fabs(b);
	return fabs(a - b) <= max * DBL_EPSILON;
}

void json_out_num(struct json_out *o, double d)
{
	char text[32];
	size_t n;
	if (isnan(d) || isinf(d)) {
		json_out_lit(o, "null");
		return;
	}
	/* An integer within int's range prints the same through %1.15g (at
	 * most 10 digits); -0 prints as -0. */
	int i = d >= (double)INT_MAX ? INT_MAX : d <= (double)INT_MIN ? INT_MIN : (int)d;
	if (d == (double)i && (signbit(d) != 0) == (i < 0)) {
		char *e = text + sizeof text, *w = e;
		unsigned u = i < 0 ? 0u - (unsigned)i : (unsigned)i;
		do
			*--w = (char)('0' + u % 10);
		while (u /= 10);
		if (i < 0)
			*--w = '-';
		json_out_raw(o, w, (size_t)(e - w));
		return;
	}
	int k = snprintf(text, sizeof text, "%1.15g", d);
	if (k <= 0 || (size_t)k >= sizeof text || !same_double(strtod(text, NULL), d))
		k = snprintf(text, sizeof text, "%1.17g", d);
	n = k > 0 && (size_t)k < sizeof text ? (size_t)k : 0;
	json_out_raw(o, text, n);
}

char *json_out_take(struct json_out *o, size_t *len)
{
	char *text = o->oom ? NULL : o->buf;
	*len = text ? o->len : 0;
	*o = (struct json_out){.buf = NULL};
	return text;
}
