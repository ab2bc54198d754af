/* Digests with OpenSSL's libcrypto: SHA-256 to recognise a repeated
 * request body (idempotency), HMAC-SHA256 to sign callbacks. Hex output,
 * lowercase, NUL-terminated. */
#ifndef JOBQ_DIGEST_H
#define JOBQ_DIGEST_H

#include <stddef.h>

#define DIGEST_HEX_LEN 64

void digest_sha256_hex(const void *data, size_t len, char out[DIGEST_HEX_LEN + 1]);

void digest_hmac_sha256_hex(const char *key, const void *data, size_t len,
                            char out[DIGEST_HEX_LEN + 1]);

#endif
