#!/bin/bash
# Ignores SIGTERM, so only the SIGKILL after the grace period ends it.
# argv[0] carries "jobq-marker-<marker>" (payload {"marker": "..."}).
payload=$(cat)
marker=$(printf '%s' "$payload" | sed -n 's/.*"marker":"\([A-Za-z0-9_-]*\)".*/\1/p')
trap '' TERM
exec -a "jobq-marker-$marker-stubborn" sleep 300
