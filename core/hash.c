/* FNV-1a, 64 bits (core/hash.h). */
#include "core/hash.h"

#include <string.h>

#define FNV_PRIME UINT64_C(1099511628211)

uint64_t hash_add(uint64_t h, const void *data, size_t len)
{
	const unsigned char *p = data;
	for (size_t i = 0; i < len; i++)
		h = (h ^ p[i]) * FNV_PRIME;
	return h;
}

uint64_t hash_str(const char *s)
{
	return hash_add(HASH_INIT, s, strlen(s));
}
