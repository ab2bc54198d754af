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

#endif
