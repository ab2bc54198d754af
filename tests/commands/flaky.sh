#!/bin/sh
# Fails (exit 1, retryable) until its third attempt, then succeeds.
if [ "$JOBQ_ATTEMPT" -lt 3 ]; then
	echo "attempt $JOBQ_ATTEMPT failed" >&2
	exit 1
fi
echo "{\"attempt\": $JOBQ_ATTEMPT}"
