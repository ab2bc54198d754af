/* What every fuzz target shares: the input as a C string in a buffer of
 * its exact size (so AddressSanitizer sees a read past its end), split
 * into lines for targets that take several values. */
#ifndef JOBQ_FUZZ_H
#define JOBQ_FUZZ_H

#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* data as a NUL-terminated string (it ends at the first NUL in data); the
 * caller frees it. Aborts when out of memory, as a fuzz run may. */
static inline char *fuzz_str(const uint8_t *data, size_t size)
{
	char *s = malloc(size + 1);
	if (!s)
		abort();
	memcpy(s, data, size);
	s[size] = '\0';
	return s;
}

/* Splits s in place at each '\n' into at most max lines; returns how many. */
static inline int fuzz_lines(char *s, char **lines, int max)
{
	int n = 0;
	while (n < max) {
		lines[n++] = s;
		char *nl = strchr(s, '\n');
		if (!nl)
			break;
		*nl = '\0';
		s = nl + 1;
	}
	return n;
}

#endif
