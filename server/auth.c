/* API keys: parsing the key file and list, and checking a bearer token. */
#include "server/auth.h"

#include <errno.h>
#include <openssl/crypto.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

static const char *const role_names[] = {NULL, "read", "submit", "admin", "worker"};

const char *auth_role_name(enum auth_role role)
{
	return role_names[role];
}

bool auth_allows(enum auth_role have, enum auth_role need)
{
	if (need == AUTH_NONE || have == AUTH_ADMIN)
		return true;
	if (have == AUTH_WORKER)
		return need == AUTH_READ || need == AUTH_WORKER;
	return need != AUTH_WORKER && have >= need;
}

static bool key_char_ok(unsigned char c)
{
	return c > ' ' && c < 0x7f;
}

int auth_add(struct auth_keys *keys, const char *item, char *why, size_t whylen)
{
	while (*item == ' ' || *item == '\t')
		item++;
	size_t len = strlen(item);
	while (len > 0 && (item[len - 1] == ' ' || item[len - 1] == '\t' || item[len - 1] == '\r' ||
	                   item[len - 1] == '\n'))
		len--;
	const char *colon = memchr(item, ':', len);
	if (!colon) {
		snprintf(why, whylen, "expected ROLE:KEY");
		return -1;
	}
	enum auth_role role = AUTH_NONE;
	for (int r = AUTH_READ; r <= AUTH_WORKER; r++)
		if ((size_t)(colon - item) == strlen(role_names[r]) &&
		    strncmp(item, role_names[r], (size_t)(colon - item)) == 0)
			role = (enum auth_role)r;
	if (role == AUTH_NONE) {
		snprintf(why, whylen, "the role must be admin, submit or read, or worker");
		return -1;
	}
	const char *key = colon + 1;
	size_t klen = len - (size_t)(key - item);
	if (klen == 0) {
		snprintf(why, whylen, "the key is empty");
		return -1;
	}
	if (klen > AUTH_KEY_MAX) {
		snprintf(why, whylen, "the key is longer than %d characters", AUTH_KEY_MAX);
		return -1;
	}
	for (size_t i = 0; i < klen; i++) {
		if (!key_char_ok((unsigned char)key[i])) {
			snprintf(why, whylen, "the key may hold only visible ASCII characters, no blanks");
			return -1;
		}
	}
	if (keys->n == AUTH_MAX_KEYS) {
		snprintf(why, whylen, "more than %d keys", AUTH_MAX_KEYS);
		return -1;
	}
	struct auth_key *k = &keys->v[keys->n];
	digest_sha256_hex(key, klen, k->digest);
	for (int i = 0; i < keys->n; i++) {
		if (strcmp(keys->v[i].digest, k->digest) == 0) {
			snprintf(why, whylen, "the same key is listed twice");
			return -1;
		}
	}
	k->role = role;
	keys->n++;
	return 0;
}

int auth_load_file(struct auth_keys *keys, const char *path, char *err, size_t errlen)
{
	FILE *f = fopen(path, "r");
	if (!f) {
		snprintf(err, errlen, "--api-key-file %.200s: %s", path, strerror(errno));
		return -1;
	}
	char line[AUTH_KEY_MAX + 64], why[128];
	int lineno = 0, rc = 0;
	while (rc == 0 && fgets(line, sizeof line, f)) {
		lineno++;
		size_t len = strlen(line);
		if (len == sizeof line - 1 && line[len - 1] != '\n' && !feof(f)) {
			snprintf(err, errlen, "--api-key-file %.200s line %d: the line is too long", path, lineno);
			rc = -1;
			break;
		}
		const char *p = line + strspn(line, " \t\r\n");
		if (*p == '\0' || *p == '#')
			continue;
		if (auth_add(keys, p, why, sizeof why) != 0) {
			snprintf(err, errlen, "--api-key-file %.200s line %d: %s", path, lineno, why);
			rc = -1;
		}
	}
	if (rc == 0 && ferror(f)) {
		snprintf(err, errlen, "--api-key-file %.200s: %s", path, strerror(errno));
		rc = -1;
	}
	fclose(f);
	explicit_bzero(line, sizeof line);
	return rc;
}

int auth_load_list(struct auth_keys *keys, const char *list, const char *what,
                   char *err, size_t errlen)
{
	char *buf = strdup(list);
	if (!buf) {
		snprintf(err, errlen, "out of memory");
		return -1;
	}
	char why[128];
	int item = 0, rc = 0;
	for (char *p = buf, *next; p && rc == 0; p = next) {
		next = strchr(p, ',');
		if (next)
			*next++ = '\0';
		item++;
		if (auth_add(keys, p, why, sizeof why) != 0) {
			snprintf(err, errlen, "%s item %d: %s", what, item, why);
			rc = -1;
		}
	}
	explicit_bzero(buf, strlen(list));
	free(buf);
	return rc;
}

enum auth_role auth_check(const struct auth_keys *keys, const char *authorization)
{
	if (!authorization)
		return AUTH_NONE;
	const char *p = authorization + strspn(authorization, " ");
	if (strncasecmp(p, "Bearer ", 7) != 0)
		return AUTH_NONE;
	p += 7;
	p += strspn(p, " ");
	size_t len = strlen(p);
	while (len > 0 && p[len - 1] == ' ')
		len--;
	if (len == 0 || len > AUTH_KEY_MAX)
		return AUTH_NONE;
	char digest[DIGEST_HEX_LEN + 1];
	digest_sha256_hex(p, len, digest);
	/* Every key is compared, without an early exit. */
	enum auth_role role = AUTH_NONE;
	for (int i = 0; i < keys->n; i++) {
		bool same = CRYPTO_memcmp(digest, keys->v[i].digest, DIGEST_HEX_LEN) == 0;
		role = same ? keys->v[i].role : role;
	}
	return role;
}
