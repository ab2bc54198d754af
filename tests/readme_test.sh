#!/usr/bin/env bash
# Runs the README's quickstart and story blocks against a live jobqd (and,
# for the story, a local stand-in for a slow plotting API), so the README
# cannot rot: every command must succeed, and the outputs must show what the
# README says they show. Usage: readme_test.sh README.md  (JOBQD names the binary)
set -euo pipefail

readme=${1:-README.md}
jobqd=${JOBQD:-build/jobqd}
dir=$(mktemp -d)
pid=
plot_pid=
cleanup() {
	[ -n "$pid" ] && kill "$pid" 2>/dev/null && wait "$pid" 2>/dev/null || true
	[ -n "$plot_pid" ] && kill "$plot_pid" 2>/dev/null && wait "$plot_pid" 2>/dev/null || true
	rm -rf "$dir"
}
trap cleanup EXIT
fail() {
	echo "readme_test: FAIL: $*" >&2
	echo "--- jobqd log ---" >&2
	cat "$dir/jobqd.log" >&2 || true
	exit 1
}

# The code between <!-- NAME ... --> and <!-- /NAME -->, without the fences.
block() {
	sed -n "/<!-- $1[: ]/,/<!-- \/$1 -->/p" "$readme" | sed '1,2d;$d' | sed '$d'
}
block quickstart > "$dir/block.sh"
block story > "$dir/story.sh"
block story-python > "$dir/story.py"
for f in block.sh story.sh story.py; do
	[ -s "$dir/$f" ] || fail "no $f block in $readme"
done

"$jobqd" --listen 127.0.0.1:0 --db "$dir/jobq.db" 2> "$dir/jobqd.log" &
pid=$!
port=
for _ in $(seq 1 200); do
	port=$(sed -n 's|^jobqd: listening on http://127.0.0.1:\([0-9]*\)$|\1|p' "$dir/jobqd.log")
	[ -n "$port" ] && break
	sleep 0.05
done
[ -n "$port" ] || fail "jobqd did not start"
sed -i "s|localhost:8080|127.0.0.1:$port|g" "$dir/block.sh" "$dir/story.sh" "$dir/story.py"

# The plotting API of the story, on a free port instead of 9000.
python3 "$(dirname "$0")/story/plot_server.py" 0 "$dir/plot.port" 60 &
plot_pid=$!
for _ in $(seq 1 200); do
	[ -s "$dir/plot.port" ] && break
	sleep 0.05
done
[ -s "$dir/plot.port" ] || fail "the plotting API did not start"
sed -i "s|127.0.0.1:9000|127.0.0.1:$(cat "$dir/plot.port")|g" "$dir/story.sh" "$dir/story.py"

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

bash -euo pipefail "$dir/story.sh" > "$dir/story.out" 2>&1 || fail "the story block failed: $(cat "$dir/story.out")"
grep -q '"type":"http"' "$dir/story.out" || fail "story: no http job was submitted: $(cat "$dir/story.out")"
grep -q '"succeeded":2,' "$dir/story.out" || fail "story: the batch did not end with 2 succeeded: $(cat "$dir/story.out")"
grep -q '"done":true' "$dir/story.out" || fail "story: the batch is not done: $(cat "$dir/story.out")"
python3 "$dir/story.py" > "$dir/story-py.out" 2>&1 || fail "the Python story failed: $(cat "$dir/story-py.out")"
[ "$(grep -c "^succeeded {'plotted': {'step': [123], 'loss': " "$dir/story-py.out")" = 3 ] ||
	fail "the Python story did not print three plotted steps: $(cat "$dir/story-py.out")"

kill -TERM "$pid"
wait "$pid" || fail "jobqd exited with status $? after SIGTERM"
pid=
if grep -qE 'ERROR: (Address|Leak)Sanitizer|WARNING: ThreadSanitizer|runtime error:' "$dir/jobqd.log"; then
	fail "sanitizer report in the jobqd log"
fi
echo "readme_test: 3 passed, 0 failed"
