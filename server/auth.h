/* API keys and roles. A key is kept only as its SHA-256 digest; a
 * presented key is hashed and compared with every configured digest in
 * constant time (CRYPTO_memcmp), so neither the comparison nor the number
 * of keys checked depends on the key's bytes. Keys are never logged or
 * echoed in error messages. */
#ifndef JOBQ_AUTH_H
#define JOBQ_AUTH_H

#include <stdbool.h>
#include <stddef.h>

#include "core/digest.h"

/* read < submit < admin: each can do what the ones below it can. worker
 * sits beside submit: read, plus the lease API; admin can do it too. */
enum auth_role { AUTH_NONE, AUTH_READ, AUTH_SUBMIT, AUTH_ADMIN, AUTH_WORKER };

#define AUTH_KEY_MAX 256   /* characters in a key */
#define AUTH_MAX_KEYS 256

struct auth_key {
	enum auth_role role;
	char digest[DIGEST_HEX_LEN + 1];   /* SHA-256 of the key, hex */
};

struct auth_keys {
	struct auth_key v[AUTH_MAX_KEYS];
	int n;
};

/* "admin", "submit", "worker" or "read"; NULL for AUTH_NONE. */
const char *auth_role_name(enum auth_role role);

/* Whether a key of role have may call a route that needs role need. */
bool auth_allows(enum auth_role have, enum auth_role need);

/* Adds one "role:key" item (blanks around it trimmed). On error returns -1
 * with a reason in why that never contains the key. */
int auth_add(struct auth_keys *keys, const char *item, char *why, size_t whylen);

/* Reads a key file: one "role:key" per line, blank lines and lines
 * starting with '#' ignored. On error returns -1 and err names the path
 * and the line number (never the line's text). */
int auth_load_file(struct auth_keys *keys, const char *path, char *err, size_t errlen);

/* Reads a comma-separated list of "role:key" items (JOBQ_API_KEYS). On
 * error returns -1 and err names the item's position. */
int auth_load_list(struct auth_keys *keys, const char *list, const char *what,
                   char *err, size_t errlen);

/* The role of the key in an Authorization header value ("Bearer KEY",
 * scheme in any case); AUTH_NONE when the header is NULL, malformed or the
 * key is unknown. */
enum auth_role auth_check(const struct auth_keys *keys, const char *authorization);

#endif
