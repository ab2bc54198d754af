/* SHA-256 and HMAC-SHA256 through libcrypto's one-shot functions. */
#include "core/digest.h"

#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <string.h>

static void to_hex(const unsigned char *md, unsigned len, char out[DIGEST_HEX_LEN + 1])
{
	static const char hex[] = "0123456789abcdef";
	for (unsigned i = 0; i < len && i < DIGEST_HEX_LEN / 2; i++) {
		out[2 * i] = hex[md[i] >> 4];
		out[2 * i + 1] = hex[md[i] & 15];
	}
	out[DIGEST_HEX_LEN] = '\0';
}

void digest_sha256_hex(const void *data, size_t len, char out[DIGEST_HEX_LEN + 1])
{
	unsigned char md[EVP_MAX_MD_SIZE];
	unsigned n = 0;
	EVP_Digest(data, len, md, &n, EVP_sha256(), NULL);
	to_hex(md, n, out);
}

void digest_hmac_sha256_hex(const char *key, const void *data, size_t len,
                            char out[DIGEST_HEX_LEN + 1])
{
	unsigned char md[EVP_MAX_MD_SIZE];
	unsigned n = 0;
	HMAC(EVP_sha256(), key, (int)strlen(key), data, len, md, &n);
	to_hex(md, n, out);
}
