/* UUIDv7 job ids (RFC 9562): 48 bits of unix milliseconds, then a 12-bit
 * counter and random bits. Ids made by one process are strictly increasing,
 * so they sort in submission order. */
#ifndef JOBQ_UUID_H
#define JOBQ_UUID_H

#include <stdbool.h>

#define UUID_LEN 36

/* Writes a new lowercase UUIDv7 and a terminating NUL. Thread-safe. */
void uuid_v7(char out[UUID_LEN + 1]);

/* True when s is a canonical lowercase or uppercase UUID (any version). */
bool uuid_valid(const char *s);

#endif
