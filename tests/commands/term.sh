#!/bin/bash
# Waits (at most 60 s) and, on SIGTERM, writes "terminated" to the file named
# by the payload {"file": "/path"} and exits 143: shows that the group gets
# SIGTERM first and that jobqd's blocked signals do not leak into commands.
payload=$(cat)
file=$(printf '%s' "$payload" | sed -n 's/.*"file":"\([^"]*\)".*/\1/p')
trap 'echo terminated > "$file"; exit 143' TERM
echo started > "$file"
sleep 60 &
wait $!
