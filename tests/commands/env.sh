#!/bin/sh
# Prints the job's environment as JSON.
printf '{"job_id": "%s", "attempt": "%s", "progress_fd": "%s", "inherited": "%s"}\n' \
	"$JOBQ_JOB_ID" "$JOBQ_ATTEMPT" "$JOBQ_PROGRESS_FD" "$CMDTEST_INHERITED"
