/* UTF-8 validation, the one validator every module uses: request bodies,
 * query names in problems, log lines, command output and http job
 * responses. Strict: no overlong forms, no surrogates, nothing past
 * U+10FFFF. */
#ifndef JOBQ_TEXT_H
#define JOBQ_TEXT_H

#include <stdbool.h>
#include <stddef.h>

/* The length (1 to 4) of the valid UTF-8 sequence that starts s, looking
 * at no more than n bytes (n > 0); 0 when it is invalid or cut short. It
 * reads no byte past the first that is not a continuation byte, so on a
 * NUL-terminated string n may be 4. */
size_t utf8_seq_len(const char *s, size_t n);

/* True when s[0..len) is valid UTF-8 (NUL bytes are valid characters). */
bool utf8_valid(const char *s, size_t len);

#endif
