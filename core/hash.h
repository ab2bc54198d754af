/* The one non-cryptographic hash: FNV-1a, 64 bits. For hash-table buckets
 * and validators that need to differ, not to resist an attacker (content
 * that must resist one uses core/digest.h). */
#ifndef JOBQ_HASH_H
#define JOBQ_HASH_H

#include <stddef.h>
#include <stdint.h>

#define HASH_INIT UINT64_C(14695981039346656037)  /* FNV-1a's offset basis */

/* Continues hash h (HASH_INIT to start) over len bytes of data. */
uint64_t hash_add(uint64_t h, const void *data, size_t len);

/* The hash of a NUL-terminated string. */
uint64_t hash_str(const char *s);

#endif
