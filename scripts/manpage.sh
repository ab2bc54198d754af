#!/bin/sh
# Writes jobqd.1 (roff, man(7) macros) on stdout from the built jobqd's own
# --help, so the page lists exactly the options the binary takes, with the
# sections a man page needs around them.
# Usage: manpage.sh JOBQD
set -eu
[ $# -eq 1 ] || { echo "usage: $0 JOBQD" >&2; exit 2; }
jobqd=$1
version=$("$jobqd" --version | sed 's/^jobqd //')

# roff: a backslash is \e, a line may not start with . or '
esc() { sed -e 's/\\/\\e/g' -e "s/^\([.']\)/\\\\\&\1/" -e 's/-/\\-/g'; }

cat <<HEAD
.TH JOBQD 1 "" "jobq $version" "User Commands"
.SH NAME
jobqd \- a durable job queue that speaks HTTP/JSON
.SH SYNOPSIS
.B jobqd
.RI [ options ]
.SH DESCRIPTION
.B jobqd
accepts jobs over HTTP, stores each in its database before it answers,
runs them on its own worker pool (built\-in types, outbound HTTP requests
and registered commands) or hands them to external workers over a lease
API, retries them with backoff, and lets clients poll, long\-poll or stream
their state, progress and results.
The database is an SQLite file, or a PostgreSQL schema that several
.B jobqd
may share.
The API is described by /openapi.yaml on the running server; a dashboard is
served at /.
.SH OPTIONS
Every option may also be given as the environment variable named in
brackets; a flag wins over its variable.
Repeatable options take a comma\-separated list in their variable.
HEAD

# "  --flag ARG   help [env VAR]" -> .TP / .BR flag " " ARG / help
"$jobqd" --help | sed -n 's/^  \(--[a-z-]*\) *\(.*\)$/\1\t\2/p' | while IFS="$(printf '\t')" read -r flag rest; do
	case $rest in
	[A-Z]*|full*|logfmt*)        # an argument, then the help
		arg=${rest%% *}
		help=${rest#"$arg"}
		;;
	*)
		arg=
		help=$rest
		;;
	esac
	help=$(printf '%s\n' "$help" | sed 's/^ *//')
	echo ".TP"
	if [ -n "$arg" ]; then
		printf '.BI "%s " "%s"\n' "$(printf '%s' "$flag" | esc)" "$(printf '%s' "$arg" | esc)"
	else
		printf '.B %s\n' "$(printf '%s' "$flag" | esc)"
	fi
	printf '%s\n' "$help" | esc
done

cat <<'TAIL'
.SH SIGNALS
.TP
.B SIGTERM, SIGINT
Stop taking jobs, let running jobs finish for the shutdown grace, put the
rest back in their queues, and exit 0.
.SH EXIT STATUS
.TP
.B 0
A clean shutdown, or
.B \-\-help
and
.BR \-\-version .
.TP
.B 1
Another start\-up failure: the address cannot be listened on, a thread
cannot start.
.TP
.B 2
A flag, variable, key file or command is refused.
.TP
.B 3
The database cannot be opened or written.
.TP
.B 4
The database is damaged (corrupt pages found by the start\-up check).
.PP
Each failure writes one line on standard error that says why.
.SH FILES
.TP
.I ./jobq.db
The default SQLite database (with its \-wal and \-shm files beside it).
.SH EXAMPLES
Run on loopback with a local database, then submit a job and wait for it:
.PP
.nf
.RS
jobqd \-\-db /var/lib/jobq/jobq.db
curl \-s \-X POST localhost:8080/v1/jobs \-d '{"type":"echo","payload":{"hi":1}}'
curl \-s 'localhost:8080/v1/jobs/ID?wait=30'
.RE
.fi
.SH SEE ALSO
The README, docs/ and openapi.yaml in jobq's source tree; the systemd unit
.IR jobqd.service .
TAIL
