/* UUIDv7 generation. The counter in rand_a keeps ids monotonic within a
 * millisecond; when it overflows the timestamp is advanced by one ms, which
 * RFC 9562 section 6.2 allows. The random bits come from the kernel's
 * CSPRNG in blocks: each thread keeps its own block and refills it with one
 * getrandom call per UUID_RANDOM_BLOCK bytes, not one per id. */
#include "core/uuid.h"

#include <ctype.h>
#include <pthread.h>
#include <stdint.h>
#include <string.h>
#include <sys/random.h>

#include "core/clock.h"

#define UUID_RANDOM_BLOCK 512   /* 32 ids per getrandom call */

static pthread_mutex_t uuid_mu = PTHREAD_MUTEX_INITIALIZER;
static int64_t uuid_last_ms;   /* guarded by uuid_mu */
static unsigned uuid_counter;  /* guarded by uuid_mu; 12 bits */

/* Per thread: a block of random bytes; the first random_left of them are
 * not handed out yet. */
static _Thread_local uint8_t random_block[UUID_RANDOM_BLOCK];
static _Thread_local size_t random_left;

/* Fills b with 16 random bytes from this thread's block, each used once
 * and wiped from the block. */
static void random16(uint8_t b[16])
{
	if (random_left < 16) {
		ssize_t got = getrandom(random_block, sizeof random_block, 0);
		if (got < 16) {
			/* getrandom only fails (or comes up short) before the
			 * kernel's pool is ready, or on a signal; the counter
			 * below still keeps ids unique. */
			memset(b, 0, 16);
			return;
		}
		random_left = (size_t)got;
	}
	random_left -= 16;
	memcpy(b, random_block + random_left, 16);
	memset(random_block + random_left, 0, 16);
}

void uuid_v7(char out[UUID_LEN + 1])
{
	static const char hex[] = "0123456789abcdef";
	uint8_t b[16];
	random16(b);
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
	char *w = out;
	for (int i = 0; i < 16; i++) {
		if (i == 4 || i == 6 || i == 8 || i == 10)
			*w++ = '-';
		*w++ = hex[b[i] >> 4];
		*w++ = hex[b[i] & 15];
	}
	*w = '\0';
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
