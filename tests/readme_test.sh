#!/usr/bin/env bash
# Runs the README's quickstart block against a live jobqd, so the README
# cannot rot: every command must succeed, and the outputs must show what the
# README says they show. Usage: readme_test.sh README.md  (JOBQD names the binary)
set -euo pipefail

readme=${1:-README.md}
jobqd=${JOBQD:-build/jobqd}
dir=$(mktemp -d)
pid=
cleanup() {
	[ -n "$pid" ] && kill "$pid" 2>/dev/null && wait "$pid" 2>/dev/null || true
	rm -rf "$dir"
}
trap cleanup EXIT
fail() {
	echo "readme_test: FAIL: $*" >&2
	echo "--- jobqd log ---" >&2
	cat "$dir/jobqd.log" >&2 || true
	exit 1
}

# The block between the quickstart markers, talking to our port.
sed -n '/<!-- quickstart/,/<!-- \/quickstart -->/p' "$readme" | sed '1,2d;$d' | sed '$d' > "$dir/block.sh"
[ -s "$dir/block.sh" ] || fail "no quickstart block in $readme"

"$jobqd" --listen 127.0.0.1:0 --db "$dir/jobq.db" 2> "$dir/jobqd.log" &
pid=$!
port=
for _ in $(seq 1 200); do
	port=$(sed -n 's|^jobqd: listening on http://127.0.0.1:\([0-9]*\)$|\1|p' "$dir/jobqd.log")
	[ -n "$port" ] && break
	sleep 0.05
done
[ -n "$port" ] || fail "jobqd did not start"
sed -i "s|localhost:8080|127.0.0.1:$port|g" "$dir/block.sh"

bash -euo pipefail "$dir/block.sh" > "$dir/out.txt" 2>&1 || fail "the quickstart block failed: $(cat "$dir/out.txt")"

expect() {
	grep -q -- "$1" "$dir/out.txt" || fail "output lacks $1; it was: $(cat "$dir/out.txt")"
}
expect '"type":"echo","queue":"default","priority":0,"state":"queued"'
expect '"state":"succeeded","payload":{"seconds":1},"result":{"slept":1}'
expect '"jobs":\[{'
expect '"next_cursor":null'
expect '"state":"canceled","payload":{"seconds":60},"result":null,"error":"canceled"'
[ "$(grep -o '"id":"' "$dir/out.txt" | wc -l)" -ge 4 ] || fail "expected at least four job objects in the output"

kill -TERM "$pid"
wait "$pid" || fail "jobqd exited with status $? after SIGTERM"
pid=
if grep -qE 'ERROR: (Address|Leak)Sanitizer|runtime error:' "$dir/jobqd.log"; then
	fail "sanitizer report in the jobqd log"
fi
echo "readme_test: 1 passed, 0 failed"
