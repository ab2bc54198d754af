#!/bin/sh
# Static analysis of jobqd's C sources (`make analyze`): cppcheck, then
# clang's scan-build over a fresh build of jobqd and jobqd-test in
# $BUILD (default build/analyze). Fails on any finding, and when the
# analyzer cannot parse a file. A false positive is suppressed where it is,
# with the reason beside it (// cppcheck-suppress id).
#
# The tests are left out: both tools report mostly noise in Check's macros,
# and what the tests run is the code checked here.
set -eu
src="core store workers server handlers"
out=${BUILD:-build/analyze}
jobs=$(nproc 2>/dev/null || echo 2)
rc=0

echo "analyze: cppcheck $(cppcheck --version | sed 's/^Cppcheck //')" >&2
# shellcheck disable=SC2086
cppcheck --std=c11 --library=posix -D_GNU_SOURCE -I. \
	--enable=warning,style,performance,portability --inline-suppr \
	--error-exitcode=1 --quiet -j "$jobs" \
	--template='{file}:{line}:{column}: {severity}: {message} [{id}]' \
	$src || rc=1

echo "analyze: scan-build ($out)" >&2
rm -rf "$out"
mkdir -p "$out"
scan-build --status-bugs -o "$out/report" \
	"${MAKE:-make}" --no-print-directory -j "$jobs" BUILD="$out" "$out/jobqd" "$out/jobqd-test" || rc=1
if ls -d "$out"/report/*/failures >/dev/null 2>&1; then
	echo "analyze: clang could not analyze some files; see $out/report/*/failures" >&2
	rc=1
fi

[ "$rc" = 0 ] && echo "analyze: no findings" >&2
exit "$rc"
