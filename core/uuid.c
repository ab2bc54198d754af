/* UUIDv7 generation. The counter in rand_a keeps ids monotonic within a
 * millisecond; when it overflows the timestamp is advanced by one ms, which
 * RFC 9562 section 6.2 allows. */
#include "core/uuid.h"

#include <ctype.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/random.h>

#include "core/clock.h"

static pthread_mutex_t uuid_mu = PTHREAD_MUTEX_INITIALIZER;
static int64_t uuid_last_ms;   /* guarded by uuid_mu */
static unsigned uuid_counter;  /* guarded by uuid_mu; 12 bits */

void uuid_v7(char out[UUID_LEN + 1])
{
	uint8_t b[16];
	if (getrandom(b, sizeof b, 0) != (ssize_t)sizeof b) {
		/* getrandom on a 16-byte buffer only fails before the kernel's
		 * pool is ready; the counter below still keeps ids unique. */
		memset(b, 0, sizeof b);
	}
	pthread_mutex_lock(&uuid_mu);
	int64_t ms = clock_now_ms();
	if (ms <= uuid_last_ms) {
		ms = uuid_last_ms;
		if (++uuid_counter > 0xfff) {
			uuid_counter = 0;
			ms++;
		}
	} else {
		uuid_counter = b[6] & 0x07; /* random start, room to count up */
	}
	uuid_last_ms = ms;
	unsigned counter = uuid_counter;
	pthread_mutex_unlock(&uuid_mu);

	for (int i = 0; i < 6; i++)
		b[i] = (uint8_t)((uint64_t)ms >> (40 - 8 * i));
	b[6] = (uint8_t)(0x70 | (counter >> 8));
	b[7] = (uint8_t)(counter & 0xff);
	b[8] = (uint8_t)(0x80 | (b[8] & 0x3f));
	snprintf(out, UUID_LEN + 1,
	         "%02x%02x%02x%02x-%02x%02x-%02x%02x-%02x%02x-%02x%02x%02x%02x%02x%02x",
	         b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7], b[8], b[9],
	         b[10], b[11], b[12], b[13], b[14], b[15]);
}

bool uuid_valid(const char *s)
{
	for (int i = 0; i < UUID_LEN; i++) {
		bool dash = i == 8 || i == 13 || i == 18 || i == 23;
		if (dash ? s[i] != '-' : !isxdigit((unsigned char)s[i]))
			return false;
	}
	return s[UUID_LEN] == '\0';
}
