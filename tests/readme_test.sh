#!/usr/bin/env bash
# Runs the README's quickstart and story blocks against a live jobqd (and,
# for the story, a local stand-in for a slow plotting API), so the README
# cannot rot: every command must succeed, and the outputs must show what the
# README says they show. Usage: readme_test.sh README.md  (JOBQD names the binary)
set -euo pipefail
test_name=readme_test
# shellcheck source=tests/lib.sh
. "$(dirname "$0")/lib.sh"

readme=${1:-README.md}
jobqd=${JOBQD:-build/jobqd}
pid=
plot_pid=
worker_pid=
cleanup() {
	kill_wait "$worker_pid" "$pid" "$plot_pid"
}
at_exit cleanup
fail_hook() {
	echo "--- jobqd log ---"
	cat "$dir/jobqd.log" || true
}

# The code between <!-- NAME ... --> and <!-- /NAME -->, without the fences,
# in the README or in docs/jobs.md, where its reference moved.
block() {
	sed -n "/<!-- $1[: ]/,/<!-- \/$1 -->/p" "$readme" "$(dirname "$readme")/docs/jobs.md" | sed '1,2d;$d' | sed '$d'
}
block quickstart > "$dir/block.sh"
block story > "$dir/story.sh"
block story-python > "$dir/story.py"
block story-jobqd > "$dir/story-jobqd.sh"
mkdir "$dir/story"
block story-worker-module > "$dir/story/plots.py"
block story-worker > "$dir/story/worker.sh"
block story-loop > "$dir/story/train.py"
block deps > "$dir/deps.sh"
for f in block.sh deps.sh story.sh story.py story-jobqd.sh story/plots.py story/worker.sh story/train.py; do
	[ -s "$dir/$f" ] || fail "no $f block in $readme"
done

# The story's jobqd flags, as the README writes them after build/jobqd.
story_flags=$(sed -n 's|^build/jobqd ||p' "$dir/story-jobqd.sh")
[ -n "$story_flags" ] || fail "the story-jobqd block does not start build/jobqd with flags"
eval "set -- $story_flags"
"$jobqd" --listen 127.0.0.1:0 --db "$dir/jobq.db" "$@" 2> "$dir/jobqd.log" &
pid=$!
wait_listening "$dir/jobqd.log" "jobqd did not start"
sed -i "s|localhost:8080|127.0.0.1:$port|g" "$dir/block.sh" "$dir/deps.sh" "$dir/story.sh" "$dir/story.py" \
	"$dir/story/plots.py" "$dir/story/worker.sh" "$dir/story/train.py"

# The plotting API of the story, on a free port instead of 9000.
python3 docs/examples/plot_server.py 0 "$dir/plot.port" 60 "$dir/plot.log" > /dev/null &
plot_pid=$!
for _ in $(seq 1 200); do
	[ -s "$dir/plot.port" ] && break
	sleep 0.05
done
[ -s "$dir/plot.port" ] || fail "the plotting API did not start"
sed -i "s|127.0.0.1:9000|127.0.0.1:$(cat "$dir/plot.port")|g" "$dir/story.sh" "$dir/story.py" "$dir/story/plots.py"

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

bash -euo pipefail "$dir/deps.sh" > "$dir/deps.out" 2>&1 || fail "the deps block failed: $(cat "$dir/deps.out")"
[ "$(grep -c '"state":"blocked".*"on_dependency_failure":"cancel","dependencies_pending":1' "$dir/deps.out")" = 1 ] ||
	fail "deps: the load job was not blocked behind one parent: $(cat "$dir/deps.out")"
grep -q '"state":"succeeded","payload":"load"' "$dir/deps.out" || fail "deps: the chain did not end: $(cat "$dir/deps.out")"
grep -q '"succeeded":4,.*"done":true' "$dir/deps.out" || fail "deps: the fan-in batch did not end: $(cat "$dir/deps.out")"
grep -q '"state":"succeeded","payload":"cleanup"' "$dir/deps.out" ||
	fail "deps: the cleanup job did not run: $(cat "$dir/deps.out")"

bash -euo pipefail "$dir/story.sh" > "$dir/story.out" 2>&1 || fail "the story block failed: $(cat "$dir/story.out")"
grep -q '"type":"http"' "$dir/story.out" || fail "story: no http job was submitted: $(cat "$dir/story.out")"
grep -q '"succeeded":2,' "$dir/story.out" || fail "story: the batch did not end with 2 succeeded: $(cat "$dir/story.out")"
grep -q '"done":true' "$dir/story.out" || fail "story: the batch is not done: $(cat "$dir/story.out")"
python3 "$dir/story.py" > "$dir/story-py.out" 2>&1 || fail "the Python story failed: $(cat "$dir/story-py.out")"
[ "$(grep -c "^succeeded {'plotted': {'step': [123], 'loss': " "$dir/story-py.out")" = 3 ] ||
	fail "the Python story did not print three plotted steps: $(cat "$dir/story-py.out")"

# The story finished: the plotting function on a Python worker process
# (the client from this tree), the loop's three lines, as written.
export PYTHONPATH="$(cd "$(dirname "$0")/../clients/python" && pwd)${PYTHONPATH:+:$PYTHONPATH}"
: > "$dir/plot.log"
# One command, exec'd so that SIGTERM reaches the worker itself.
[ "$(grep -c . "$dir/story/worker.sh")" = 1 ] || fail "the story-worker block is not one command"
(cd "$dir/story" && eval "exec $(cat worker.sh)") > "$dir/worker.log" 2>&1 &
worker_pid=$!
(cd "$dir/story" && timeout 60 python3 train.py) > "$dir/train.out" 2>&1 ||
	fail "the story's training loop failed: $(cat "$dir/train.out"); worker: $(cat "$dir/worker.log")"
[ "$(cat "$dir/train.out")" = "{'plotted': {'step': 1, 'loss': 1}}
{'plotted': {'step': 2, 'loss': 0.5}}
{'plotted': {'step': 3, 'loss': 0.3333333333333333}}" ] ||
	fail "the training loop did not print the three plots: $(cat "$dir/train.out"); worker: $(cat "$dir/worker.log")"
[ "$(sort "$dir/plot.log")" = '{"step": 1, "loss": 1.0}
{"step": 2, "loss": 0.5}
{"step": 3, "loss": 0.3333333333333333}' ] ||
	fail "the plotting API did not get each step exactly once: $(cat "$dir/plot.log")"
curl -sf "http://127.0.0.1:$port/v1/jobs?queue=py.plots&limit=100" > "$dir/plots.json" ||
	fail "listing the py.plots jobs failed"
python3 - "$dir/plots.json" <<'PY' || fail "the plot jobs: $(cat "$dir/plots.json")"
import json, sys
jobs = json.load(open(sys.argv[1]))["jobs"]
assert sorted(j["payload"]["args"][0] for j in jobs) == [1, 2, 3], jobs
assert all(j["type"] == "plot" and j["state"] == "succeeded" and j["attempts"] == 1 for j in jobs), jobs
PY
kill -TERM "$worker_pid"
wait "$worker_pid" || fail "the story's worker exited with status $? after SIGTERM: $(cat "$dir/worker.log")"
worker_pid=
grep -q '^jobq worker: plots:worker serving py.plots on ' "$dir/worker.log" ||
	fail "the story's worker did not say what it serves: $(cat "$dir/worker.log")"

kill -TERM "$pid"
wait "$pid" || fail "jobqd exited with status $? after SIGTERM"
pid=
if grep -qE 'ERROR: (Address|Leak)Sanitizer|WARNING: ThreadSanitizer|runtime error:' "$dir/jobqd.log"; then
	fail "sanitizer report in the jobqd log"
fi
# The README is the way in: every relative link in it, and in the pages it
# leads to, names a file that exists.
python3 - "$readme" > "$dir/links.out" 2>&1 <<'PY' || fail "broken links: $(cat "$dir/links.out")"
import glob, os, re, sys
root = os.path.dirname(os.path.abspath(sys.argv[1]))
pages = [sys.argv[1]] + [os.path.join(root, p) for p in ("CONTRIBUTING.md", "CHANGELOG.md", "clients/python/README.md")]
pages += glob.glob(os.path.join(root, "docs", "*.md"))
broken = []
for page in pages:
    text = re.sub(r"```.*?```", "", open(page).read(), flags=re.S)
    for target in re.findall(r"\]\(([^)\s]+)\)", text):
        if re.match(r"[a-z]+:", target) or target.startswith("#"):
            continue
        if not os.path.exists(os.path.join(os.path.dirname(page), target.split("#")[0])):
            broken.append(f"{os.path.relpath(page, root)}: {target}")
print("\n".join(broken))
sys.exit(1 if broken else 0)
PY
echo "readme_test: 6 passed, 0 failed"
