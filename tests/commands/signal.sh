#!/bin/sh
# Dies of SIGUSR1 (no core dump) after a line on stderr.
echo "about to die of a signal" >&2
kill -USR1 $$
sleep 5
