/* Cron expressions: the five classic fields (minute hour day-of-month month
 * day-of-week) parsed into bit sets, and the next fire time of one in a
 * time zone. A parsed expression is a plain value (no allocation, nothing
 * to free); both functions are pure and safe from any thread. */
#ifndef JOBQ_CORE_CRON_H
#define JOBQ_CORE_CRON_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/tz.h"

/* Bit n set = value n matches. */
struct cron {
	uint64_t minute; /* 0-59 */
	uint32_t hour;   /* 0-23 */
	uint32_t dom;    /* 1-31 */
	uint16_t month;  /* 1-12 */
	uint8_t dow;     /* 0-6, 0 = Sunday (7 is read as 0) */
	/* Whether day-of-month / day-of-week were restricted: anything but a
	 * lone star (with no step or a step of 1). When both are, a day
	 * matches when EITHER does; otherwise when both do. */
	bool dom_restricted, dow_restricted;
};

/* Longest expression accepted, in bytes. */
#define CRON_TEXT_MAX 256

/* Parses text into *out. Fields are separated by spaces or tabs. Each field
 * is a comma list of: `*`, a number, a range `a-b`, any of those followed
 * by a step `/n` (`a/n` means a to the field's end); months and weekdays
 * also take names (jan-dec, sun-sat, any case) and weekday 7 is Sunday.
 * Macros: @yearly, @annually, @monthly, @weekly, @daily, @midnight,
 * @hourly. Returns 0, or -1 with *out untouched and err (when errlen > 0)
 * naming the field and what is wrong, e.g. "hour: 24 is out of range
 * 0-23"; the field names are minute, hour, day-of-month, month,
 * day-of-week, and "expression" for the whole. */
int cron_parse(const char *text, struct cron *out, char *err, size_t errlen);

enum cron_next_status {
	CRON_FOUND = 0,
	CRON_NEVER = 1, /* no matching day within the bounded search (e.g. Feb 30) */
	CRON_RANGE = -1, /* after_utc is outside the years the zone covers (1-9999) */
};

/* The first fire time strictly after after_utc (unix seconds), evaluated on
 * the wall clock of zone z, into *next (unix seconds, on a local minute).
 * Daylight saving: a matching wall time that does not exist that day fires
 * at the first instant after the gap (once, however many matching times
 * the gap swallowed); one that happens twice fires at its first occurrence
 * only. The search stops after CRON_SEARCH_YEARS years of wall-clock days
 * (long enough for February 29th) and answers CRON_NEVER; *next is written
 * only on CRON_FOUND. */
#define CRON_SEARCH_YEARS 9
enum cron_next_status cron_next(const struct cron *c, const struct tz *z, int64_t after_utc, int64_t *next);

#endif
