/* Time zones: an IANA zone read from the system's TZif files (tzdata) into an
 * immutable struct, UTC instants to local wall time and back. glibc offers
 * only the process-wide TZ, so this module never touches TZ, tzset or
 * localtime: a loaded zone is read-only and may be shared by any number of
 * threads without a lock. Instants are unix seconds (int64_t), years
 * 1-9999. */
#ifndef JOBQ_CORE_TZ_H
#define JOBQ_CORE_TZ_H

#include <stddef.h>
#include <stdint.h>

struct tz;

enum tz_status {
	TZ_OK = 0,
	TZ_INVALID = -1, /* the name is refused, unknown or not a zone: the caller's input */
	TZ_ERROR = -2,   /* out of memory or an I/O error: the system's fault */
};

/* A local wall time. tz_local fills every field; tz_resolve reads only
 * year..second. month 1-12, day 1-31, wday 0-6 (0 = Sunday), yday 0-365;
 * utoff is seconds east of UTC; abbr points into the zone (valid while it
 * lives). */
struct tz_time {
	int year, month, day, hour, minute, second;
	int wday, yday;
	int32_t utoff;
	int isdst;
	const char *abbr;
};

/* Loads the zone `name` ("Europe/Berlin") from $TZDIR when set and not
 * empty, else /usr/share/zoneinfo. "UTC" always works, without any file.
 * Names with "..", a leading '/' or characters outside [A-Za-z0-9_+-/] are
 * refused before any file is opened. Reads TZif versions 1-4; a zone with
 * leap seconds ("right/...") is refused. On success *out is a new zone
 * (tz_free it); on failure *out is NULL and err (when errlen > 0) holds a
 * message that quotes the name, e.g. `time zone "Mars/Base" is unknown`. */
enum tz_status tz_load(const char *name, struct tz **out, char *err, size_t errlen);

/* Frees a zone; NULL is a no-op. */
void tz_free(struct tz *z);

/* The name the zone was loaded by. */
const char *tz_name(const struct tz *z);

/* The local wall time at the instant utc. Returns 0, or -1 (out is
 * untouched) when utc is outside years 1-9999. */
int tz_local(const struct tz *z, int64_t utc, struct tz_time *out);

/* The instant of the local wall time in (year..second), with the rules a
 * scheduler needs: a wall time that does not exist (skipped by a forward
 * change, the spring gap) gives the first instant after the gap; one that
 * happens twice (the autumn overlap) gives its first occurrence. Returns 0,
 * or -1 (*utc untouched) when a field is out of range (month 1-12, day
 * within the month, hour 0-23, minute 0-59, second 0-59, year 1-9999). */
int tz_resolve(const struct tz *z, const struct tz_time *wall, int64_t *utc);

#endif
