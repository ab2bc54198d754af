#!/usr/bin/env bash
# make install into a staging root (DESTDIR) under two prefixes: the binary,
# the man page and the systemd unit land where the prefix says; the page
# renders without a warning and documents every option of the binary's
# --help; the unit runs the installed binary and passes systemd-analyze.
# Usage: install_test.sh   (from the repository root; MAKE and BUILD as the
# Makefile passes them)
set -euo pipefail
test_name=install_test
# shellcheck source=tests/lib.sh
. "$(dirname "$0")/lib.sh"

make=${MAKE:-make}
build=${BUILD:-build}

for prefix in /usr/local /opt/jobq; do
	root=$dir/root${prefix//\//_}
	$make --no-print-directory -s install BUILD="$build" DESTDIR="$root" PREFIX="$prefix" > "$dir/make.log" 2>&1 ||
		fail "make install PREFIX=$prefix: $(cat "$dir/make.log")"
	bin=$root$prefix/bin/jobqd
	page=$root$prefix/share/man/man1/jobqd.1
	unit=$root$prefix/lib/systemd/system/jobqd.service
	[ -x "$bin" ] || fail "PREFIX=$prefix: no executable $bin"
	[ "$(stat -c %a "$page")" = 644 ] && [ "$(stat -c %a "$unit")" = 644 ] ||
		fail "PREFIX=$prefix: the page or the unit is not mode 644"
	"$bin" --version | grep -q '^jobqd ' || fail "PREFIX=$prefix: the installed jobqd does not run"
	grep -qx "ExecStart=$prefix/bin/jobqd" "$unit" || fail "PREFIX=$prefix: the unit's ExecStart is $(grep ExecStart "$unit")"
	pass "PREFIX=$prefix: bin/jobqd, share/man/man1/jobqd.1, lib/systemd/system/jobqd.service"
done

# The page: no roff warning, every option of --help in it, exit statuses.
warnings=$(groff -man -ww -z "$page" 2>&1) || fail "groff: $warnings"
[ -z "$warnings" ] || fail "groff warns: $warnings"
text=$(MANWIDTH=100 man -l "$page" 2>/dev/null | col -b)
missing=
for flag in $("$bin" --help | sed -n 's/^  \(--[a-z-]*\).*/\1/p'); do
	grep -q -- "$flag" <<< "$text" || missing="$missing $flag"
done
[ -z "$missing" ] || fail "the man page lacks$missing"
grep -q '^EXIT STATUS' <<< "$text" && grep -q '^SIGNALS' <<< "$text" || fail "the man page lacks EXIT STATUS or SIGNALS"
pass "jobqd.1 renders without warnings and documents all $("$bin" --help | grep -c '^  --') options"

# The installed unit, as systemd would load it from that root.
if command -v systemd-analyze > /dev/null; then
	sed "s|^ExecStart=.*|ExecStart=$bin|" "$unit" > "$dir/jobqd.service"
	(cd "$dir" && systemd-analyze verify jobqd.service) > "$dir/verify.log" 2>&1 ||
		fail "systemd-analyze verify: $(cat "$dir/verify.log")"
	[ ! -s "$dir/verify.log" ] || fail "systemd-analyze verify warns: $(cat "$dir/verify.log")"
	pass "the installed unit passes systemd-analyze verify"
else
	echo "install_test: SKIP: systemd-analyze verify (systemd-analyze is not installed)"
fi

# A user's CFLAGS replaces only the user's part: the flags jobq needs stay,
# and -Werror comes only with make test.
# (as a user runs it: not with the variables of the make that runs this test)
user_make() { env -u MAKEFLAGS -u MFLAGS -u MAKELEVEL -u WERROR "$make" "$@"; }
line=$(user_make --no-print-directory -n -B BUILD="$dir/cflags" CFLAGS="-O0 -g3" "$dir/cflags/core/uuid.o" | grep -- ' -c ')
for want in -std=c11 -D_GNU_SOURCE -Wall -I. -O0 -g3; do
	grep -q -- " $want\( \|$\)" <<< "$line" || fail "make CFLAGS=\"-O0 -g3\" compiles without $want: $line"
done
! grep -q -- '-Werror' <<< "$line" || fail "a user's build is compiled with -Werror: $line"
line=$(user_make --no-print-directory -n -B BUILD="$dir/cflags" WERROR=-Werror "$dir/cflags/core/uuid.o" | grep -- ' -c ')
grep -q -- ' -Werror' <<< "$line" || fail "WERROR=-Werror (as make test sets it) does not reach the compiler: $line"
# Every compile and link goes through ALL_CFLAGS: a recipe with $(CFLAGS)
# alone would drop the required and sanitizer flags.
! grep -n '$(CC) $(CFLAGS)' Makefile || fail "a Makefile recipe compiles with \$(CFLAGS) instead of \$(ALL_CFLAGS)"
pass "make CFLAGS=\"-O0 -g3\" keeps jobq's required flags; -Werror only where make test asks for it"

echo "install_test: $passed passed, 0 failed"
