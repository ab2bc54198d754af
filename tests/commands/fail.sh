#!/bin/sh
# Fails with exit status 3 after 6000 bytes of stderr; only the tail (ending
# in the last line) belongs in the job's error.
i=0
while [ $i -lt 100 ]; do
	echo "filler line $i ................................................" >&2
	i=$((i + 1))
done
echo "the last line: disk on fire" >&2
exit 3
