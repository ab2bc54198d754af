/* Strict JSON for request bodies. cJSON alone changes what a client sent
 * without a word: it keeps the first of two equal keys, cuts a string at
 * \u0000, turns 1e400 into null and -0 into 0. This parser refuses those
 * where jobqd reads a value, and keeps a payload exactly as it was sent. */
#ifndef JOBQ_JSON_H
#define JOBQ_JSON_H

#include <stdbool.h>
#include <stddef.h>

#include <cjson/cJSON.h>

#include "core/problem.h"

/* The deepest nesting accepted: cJSON's own limit, so that a kept payload
 * (one level down) always parses with cJSON again. */
#define JSON_DEPTH_MAX CJSON_NESTING_LIMIT

/* Parses text[0..len), which must be valid UTF-8, as exactly one JSON value
 * (RFC 8259, white space around it allowed; nothing is read past len).
 * Outside a payload, a key seen twice in one object, a key or string that
 * holds \u0000, and a number beyond a double's range (1e400, 1e-400) are
 * refused. A payload is the value of any member named "payload" outside
 * another payload: it is checked for syntax only and kept as its exact
 * text minus insignificant white space, in a cJSON_Raw item (its numbers,
 * escapes and \u0000 unchanged). Returns the tree (the caller deletes it),
 * or NULL with p filled: malformed_json (no field) for bad syntax,
 * invalid_field naming the place (priority, jobs[2].type) for the rest,
 * internal when out of memory. */
cJSON *json_parse_strict(const char *text, size_t len, struct problem *p);

/* True when text (NUL-terminated) is exactly one JSON value that
 * json_parse_strict would accept, payload rules applying throughout. */
bool json_valid(const char *text);

/* For text that json_valid accepts: true when a key or string in it holds
 * \u0000, with its place written to path (base, then .key or [i] for each
 * step, e.g. payload.headers.X), cut to cap bytes on a character
 * boundary. */
bool json_find_nul(const char *text, const char *base, char *path, size_t cap);

/* A JSON writer for replies on the hot path: text appended straight into
 * a growing buffer, byte for byte what cJSON_PrintUnformatted prints for
 * the same values (strings escaped as cJSON escapes them, numbers as cJSON
 * formats them), without a tree or printf for every number. Zero it to
 * start. After a failed allocation it is marked oom and ignores what
 * follows; json_out_take then returns NULL. */
struct json_out {
	char *buf;           /* NUL-terminated while not oom */
	size_t len, cap;
	bool oom;
};

/* Appends n bytes as they are (punctuation, keys, stored JSON text). */
void json_out_raw(struct json_out *o, const char *s, size_t n);

/* Appends a literal: json_out_lit(o, ",\"type\":"). */
#define json_out_lit(o, s) json_out_raw((o), (s), sizeof(s) - 1)

/* Appends s as a JSON string, quoted and escaped. */
void json_out_str(struct json_out *o, const char *s);

/* Appends a number as cJSON prints one: NaN and infinities as null, else
 * %1.15g, or %1.17g when %1.15g does not read back as the same double
 * (an integer within int's range takes a path without printf). */
void json_out_num(struct json_out *o, double d);

/* The text (the caller frees it) and its length; NULL when out of memory
 * or nothing was written. The writer is zeroed either way. */
char *json_out_take(struct json_out *o, size_t *len);

#endif
