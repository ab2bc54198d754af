#!/bin/sh
# Reports progress on $JOBQ_PROGRESS_FD (with malformed lines in between that
# must be ignored), then waits (at most 20 s) for the file named by the
# payload {"go": "/path"} before it succeeds.
go=$(sed -n 's/.*"go":"\([^"]*\)".*/\1/p')
{
	echo "progress 10 starting"
	echo "progress 42 halfway there"
	echo "progress nope not a number"
	echo "progress"
	echo "progress 77x trailing junk"
	echo "some other line"
} >&"$JOBQ_PROGRESS_FD"
i=0
while [ ! -e "$go" ] && [ $i -lt 200 ]; do
	sleep 0.1
	i=$((i + 1))
done
[ -e "$go" ] || exit 9
echo '{"done": true}'
