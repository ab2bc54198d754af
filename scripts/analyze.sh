#!/bin/sh
# Static analysis of jobq's C sources (`make analyze`): cppcheck over
# jobqd's sources, then clang's scan-build over a fresh build of jobqd,
# jobqd-test and the test programs in $BUILD (default build/analyze). Fails
# on any finding, and when the analyzer cannot parse a file. A false
# positive is suppressed where it is, with the reason beside it
# (// cppcheck-suppress id).
#
# cppcheck leaves the tests out: without Check's and cJSON's headers it
# cannot tell that a failed ck_assert ends the test, and reports mostly
# noise there. scan-build compiles them for real and has no such trouble.
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
targets="$out/jobqd $out/jobqd-test $out/tests/unit $out/tests/torture $out/tests/cluster_test"
for t in tests/api_*test.c; do
	targets="$targets $out/${t%.c}"
done
# shellcheck disable=SC2086
scan-build --status-bugs -o "$out/report" \
	"${MAKE:-make}" --no-print-directory -j "$jobs" BUILD="$out" WERROR=-Werror $targets || rc=1
if ls -d "$out"/report/*/failures >/dev/null 2>&1; then
	echo "analyze: clang could not analyze some files; see $out/report/*/failures" >&2
	rc=1
fi

[ "$rc" = 0 ] && echo "analyze: no findings" >&2
exit "$rc"
