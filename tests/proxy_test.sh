#!/usr/bin/env bash
# Runs deploy/nginx/jobq.conf in Debian's nginx, unprivileged, on 127.0.0.2
# in front of a real jobqd on 127.0.0.1, and checks what the config is for:
# the API under /jobq/ (Location included), a long-poll held past 30 s, event
# streams that are not buffered, the dashboard at /jobq/, the client's real
# address in jobqd's request log, and nginx's own errors as problem+json.
#
# Checks that need a feature another part of jobqd brings (the dashboard,
# --trust-proxy and the request log) say PENDING while the binary or tree
# lacks that feature, and are enforced as soon as it has it; PROXY_STRICT=1
# enforces them always.
# Usage: proxy_test.sh [SITE.conf]   (JOBQD names the binary)
set -euo pipefail
test_name=proxy_test
# shellcheck source=tests/lib.sh
. "$(dirname "$0")/lib.sh"

site=${1:-deploy/nginx/jobq.conf}
jobqd=${JOBQD:-build/jobqd}
nginx=$(command -v nginx || echo /usr/sbin/nginx)
ngx=$dir/nginx
jobqd_pid=
nginx_pid=
bg_pids=()
pending=0

cleanup() {
	for p in "${bg_pids[@]}"; do
		kill "$p" 2>/dev/null || true
	done
	kill_wait "$nginx_pid" "$jobqd_pid"
}
at_exit cleanup
fail_hook() {
	echo "--- jobqd log ---"
	cat "$dir/jobqd.log" || true
	echo "--- nginx error log ---"
	cat "$ngx/error.log" || true
}
# A check that cannot pass until jobqd has a feature from elsewhere.
not_yet() {
	[ "${PROXY_STRICT:-0}" = 1 ] && fail "$1 (PROXY_STRICT=1)"
	echo "proxy_test: PENDING: $1"
	pending=$((pending + 1))
}

[ -x "$nginx" ] || fail "nginx is not installed (scripts/deps.sh test installs it)"
[ -x "$jobqd" ] || fail "no jobqd at $jobqd"
[ -f "$site" ] || fail "no site config at $site"

# ---- jobqd -------------------------------------------------------------

jobqd_args=(--listen 127.0.0.1:0 --db "$dir/jobq.db" --workers 4 --sse-heartbeat 20 --shutdown-grace 2)
trust_proxy=0
if "$jobqd" --help | grep -q -- '--trust-proxy'; then
	trust_proxy=1
	jobqd_args+=(--trust-proxy 127.0.0.1/32)
fi
"$jobqd" "${jobqd_args[@]}" 2> "$dir/jobqd.log" &
jobqd_pid=$!
wait_listening "$dir/jobqd.log" "jobqd did not start"

# ---- nginx -------------------------------------------------------------

mkdir -p "$ngx"
# The site file as shipped, with jobqd's port and a free port on
# 127.0.0.2; each replacement must hit, or the config changed shape.
nport=$(python3 -c 'import socket
s = socket.socket(); s.bind(("127.0.0.2", 0)); print(s.getsockname()[1])')
sed -e "s|^\( *server \)127\.0\.0\.1:8080;|\1127.0.0.1:$port;|" \
    -e "s|^\( *listen \)80;|\1127.0.0.2:$nport;|" \
    -e '/^ *listen \[::\]:80;/d' "$site" > "$ngx/site.conf"
grep -q "server 127.0.0.1:$port;" "$ngx/site.conf" || fail "no 'server 127.0.0.1:8080;' upstream in $site"
grep -q "listen 127.0.0.2:$nport;" "$ngx/site.conf" || fail "no 'listen 80;' in $site"

# The long-poll timeout must outlast jobqd's 60 s cap on ?wait.
read_timeout=$(sed -n 's/^ *proxy_read_timeout \([0-9]*\)s;/\1/p' "$site" | head -n 1)
[ -n "$read_timeout" ] && [ "$read_timeout" -gt 60 ] ||
	fail "proxy_read_timeout (${read_timeout:-unset}) must exceed jobqd's 60 s long-poll cap"
pass "proxy_read_timeout ${read_timeout}s outlasts the 60 s long-poll cap"

cat > "$ngx/nginx.conf" <<EOF
worker_processes 1;
daemon off;
pid $ngx/nginx.pid;
error_log $ngx/error.log info;
events { worker_connections 256; }
http {
    access_log $ngx/access.log;
    client_body_temp_path $ngx/client_body;
    proxy_temp_path $ngx/proxy;
    fastcgi_temp_path $ngx/fastcgi;
    uwsgi_temp_path $ngx/uwsgi;
    scgi_temp_path $ngx/scgi;
    include $ngx/site.conf;
}
EOF
# Unprivileged: as root, drop to nobody before nginx starts.
run_as=()
if [ "$(id -u)" = 0 ]; then
	chown -R nobody:nogroup "$ngx"
	chmod 755 "$dir"
	run_as=(setpriv --reuid=nobody --regid=nogroup --clear-groups --)
fi
nginx_cmd=("${run_as[@]}" "$nginx" -p "$ngx/" -e "$ngx/error.log" -c "$ngx/nginx.conf")
"${nginx_cmd[@]}" -t -q 2> "$dir/nginx-t.log" || fail "nginx -t refused the config: $(cat "$dir/nginx-t.log")"
"${nginx_cmd[@]}" &
nginx_pid=$!
base=http://127.0.0.2:$nport
up=
for _ in $(seq 1 200); do
	if [ "$(curl -s -o /dev/null -w '%{http_code}' "$base/jobq/healthz")" = 200 ]; then
		up=1
		break
	fi
	kill -0 "$nginx_pid" 2>/dev/null || fail "nginx exited"
	sleep 0.05
done
[ -n "$up" ] || fail "nginx did not answer /jobq/healthz with 200"
pass "nginx (unprivileged) answers /jobq/healthz from jobqd"

# ---- the long-poll, in the background while the rest runs ---------------

# A 31 s job waited on for up to 35 s: the connection stays open for about
# 31 s, so a proxy that cut it at 30 s would answer 504 (or 502).
curl -s -o "$dir/slow.json" -D "$dir/slow.h" -w '%{http_code}' -H 'Content-Type: application/json' \
     -d '{"type":"sleep","payload":{"seconds":31},"timeout_s":60}' "$base/jobq/v1/jobs" > "$dir/slow.code"
[ "$(cat "$dir/slow.code")" = 201 ] || fail "submitting the slow job answered $(cat "$dir/slow.code")"
slow=$(field "$dir/slow.json" 'j["id"]')
curl -s -o "$dir/poll.json" -w '%{http_code} %{time_total}' "$base/jobq/v1/jobs/$slow?wait=35" > "$dir/poll.out" &
poll_pid=$!
bg_pids+=("$poll_pid")

# ---- the API under /jobq/ -------------------------------------------------

code=$(curl -s -o "$dir/echo.json" -D "$dir/echo.h" -w '%{http_code}' -H 'Content-Type: application/json' \
       -d '{"type":"echo","payload":{"via":"nginx"}}' "$base/jobq/v1/jobs")
[ "$code" = 201 ] || fail "POST /jobq/v1/jobs answered $code: $(cat "$dir/echo.json")"
id=$(field "$dir/echo.json" 'j["id"]')
[ -n "$id" ] || fail "the 201 has no id: $(cat "$dir/echo.json")"
[ "$(field "$dir/echo.json" 'j["type"]')" = echo ] || fail "submit: wrong type: $(cat "$dir/echo.json")"
location=$(header "$dir/echo.h" Location)
[ "$location" = "/jobq/v1/jobs/$id" ] || fail "Location is '$location', expected /jobq/v1/jobs/$id"
pass "POST /jobq/v1/jobs: 201, Location /jobq/v1/jobs/ID"

code=$(curl -s -o "$dir/got.json" -w '%{http_code}' "$base$location?wait=10")
[ "$code" = 200 ] || fail "GET $location answered $code"
[ "$(field "$dir/got.json" 'j["id"]')" = "$id" ] || fail "GET $location: wrong job: $(cat "$dir/got.json")"
[ "$(field "$dir/got.json" 'j["state"]')" = succeeded ] || fail "the echo job did not succeed: $(cat "$dir/got.json")"
[ "$(field "$dir/got.json" 'j["result"]')" = '{"via":"nginx"}' ] || fail "wrong result: $(cat "$dir/got.json")"
pass "GET of the Location: 200, the echo job succeeded with its payload"

code=$(curl -s -o "$dir/list.json" -w '%{http_code}' "$base/jobq/v1/jobs?limit=10")
[ "$code" = 200 ] || fail "GET /jobq/v1/jobs answered $code"
[ "$(field "$dir/list.json" 'sorted(x["id"] for x in j["jobs"]) == sorted(["'"$id"'", "'"$slow"'"])')" = true ] ||
	fail "the list does not hold exactly the two jobs: $(cat "$dir/list.json")"
pass "GET /jobq/v1/jobs: 200, both jobs listed"

code=$(curl -s -o /dev/null -D "$dir/bare.h" -w '%{http_code}' "$base/jobq")
[ "$code" = 301 ] && [ "$(header "$dir/bare.h" Location)" = /jobq/ ] ||
	fail "GET /jobq answered $code to $(header "$dir/bare.h" Location), expected 301 to /jobq/"
pass "GET /jobq: 301 to /jobq/"

# ---- event streams reach the client unbuffered -----------------------------

# Waits up to 1 s for a complete event (its data line) in a stream file.
first_event() {
	for _ in $(seq 1 20); do
		grep -q '^data: ' "$1" 2>/dev/null && return 0
		sleep 0.05
	done
	return 1
}
curl -sN -D "$dir/sse.h" -o "$dir/sse.txt" --max-time 40 "$base/jobq/v1/jobs/$slow/events" &
sse_pid=$!
bg_pids+=("$sse_pid")
first_event "$dir/sse.txt" || fail "no event within 1 s on /jobq/v1/jobs/ID/events (buffered?): '$(cat "$dir/sse.txt")'"
[ "$(header "$dir/sse.h" Content-Type)" = text/event-stream ] || fail "the job stream is $(header "$dir/sse.h" Content-Type)"
sed -n 's/^data: //p' "$dir/sse.txt" | head -n 1 > "$dir/sse1.json"
[ "$(field "$dir/sse1.json" 'j["id"]')" = "$slow" ] && [ "$(field "$dir/sse1.json" 'j["state"]')" = running ] ||
	fail "the first event is not the running slow job: $(cat "$dir/sse.txt")"
grep -q '^event: job$' "$dir/sse.txt" || fail "the first event is not 'event: job': $(cat "$dir/sse.txt")"
# The sleep job reports progress every 100 ms: those events follow.
progressed=
for _ in $(seq 1 20); do
	grep -q '^event: progress$' "$dir/sse.txt" && progressed=1 && break
	sleep 0.05
done
[ -n "$progressed" ] || fail "no progress event within 1 s on /jobq/v1/jobs/ID/events (buffered?): '$(cat "$dir/sse.txt")'"
kill "$sse_pid" 2>/dev/null || true
pass "GET /jobq/v1/jobs/ID/events: the running job's state, then its progress, each within 1 s"

# A stream that has nothing to say yet: buffered by nginx, not even its
# headers would reach the client until enough events piled up.
curl -sN -D "$dir/all.h" -o "$dir/all.txt" --max-time 40 "$base/jobq/v1/events?type=echo" &
all_pid=$!
bg_pids+=("$all_pid")
# Events published before the stream opened are not sent: submit once the
# response headers are in.
for _ in $(seq 1 100); do
	grep -q '^HTTP/1.1 200' "$dir/all.h" 2>/dev/null && break
	sleep 0.02
done
grep -q '^HTTP/1.1 200' "$dir/all.h" || fail "/jobq/v1/events did not answer 200: $(cat "$dir/all.h" 2>/dev/null)"
curl -s -o /dev/null -H 'Content-Type: application/json' -d '{"type":"echo","payload":{}}' "$base/jobq/v1/jobs"
got=
first_event "$dir/all.txt" && got=1
[ -n "$got" ] || fail "no event within 1 s of a submit on /jobq/v1/events (buffered?): '$(cat "$dir/all.txt")'"
sed -n 's/^data: //p' "$dir/all.txt" | head -n 1 > "$dir/all1.json"
[ "$(field "$dir/all1.json" 'j["type"]')" = echo ] || fail "the first event is not an echo job's: $(cat "$dir/all.txt")"
kill "$all_pid" 2>/dev/null || true
pass "GET /jobq/v1/events: a new job's event arrives within 1 s"

# ---- the dashboard at /jobq/ ----------------------------------------------

code=$(curl -s -o "$dir/root.body" -D "$dir/root.h" -w '%{http_code}' "$base/jobq/")
ctype=$(header "$dir/root.h" Content-Type)
if [ "$code" = 200 ] && [ "${ctype%%;*}" = text/html ]; then
	pass "GET /jobq/: 200 text/html from jobqd's GET /"
elif [ ! -f web/index.html ]; then
	# No dashboard in this tree: jobqd's 404 for "/" still shows the
	# prefix was stripped.
	grep -q '"detail":"no resource at /"' "$dir/root.body" ||
		fail "GET /jobq/ did not reach jobqd's GET /: $code $(cat "$dir/root.body")"
	not_yet "GET /jobq/ reaches jobqd's GET / (404 there: no dashboard in this tree yet); 200 text/html expected once it is"
else
	fail "GET /jobq/ answered $code $ctype, expected 200 text/html"
fi

# ---- the client's address in jobqd's request log ---------------------------

code=$(curl -s -o /dev/null -w '%{http_code}' --interface 127.0.0.3 -H 'X-Request-Id: proxy-test-client' \
       "$base/jobq/v1/jobs?limit=1")
[ "$code" = 200 ] || fail "the request from 127.0.0.3 answered $code"
if [ "$trust_proxy" = 1 ]; then
	logged=
	for _ in $(seq 1 40); do
		if grep 'msg=request' "$dir/jobqd.log" | grep 'request_id=proxy-test-client' | grep -q 'client=127\.0\.0\.3'; then
			logged=1
			break
		fi
		sleep 0.05
	done
	[ -n "$logged" ] || fail "no 'msg=request ... client=127.0.0.3 ... request_id=proxy-test-client' line in jobqd's log"
	pass "jobqd logs the request from 127.0.0.3 with client=127.0.0.3 and its X-Request-Id"
else
	not_yet "client=127.0.0.3 in jobqd's request log (this jobqd has no --trust-proxy or request log yet)"
fi

# ---- nginx's own errors are problem+json -----------------------------------

head -c 1048577 /dev/zero | tr '\0' ' ' > "$dir/big.json"
code=$(curl -s -o "$dir/big.out" -D "$dir/big.h" -w '%{http_code}' -H 'Content-Type: application/json' \
       --data-binary @"$dir/big.json" "$base/jobq/v1/jobs")
[ "$code" = 413 ] || fail "a body of 1 MiB + 1 answered $code"
[ "$(header "$dir/big.h" Content-Type)" = application/problem+json ] || fail "413 is $(header "$dir/big.h" Content-Type)"
[ "$(field "$dir/big.out" 'j["code"]')" = body_too_large ] && [ "$(field "$dir/big.out" 'j["status"]')" = 413 ] ||
	fail "413 body: $(cat "$dir/big.out")"
pass "a body over 1 MiB: 413 problem+json body_too_large"

# ---- the long-poll held past 30 s ------------------------------------------

wait "$poll_pid" || fail "the long-poll curl failed: $(cat "$dir/poll.out")"
read -r code took < "$dir/poll.out" || true
[ "$code" = 200 ] || fail "the long-poll answered $code after ${took}s: $(cat "$dir/poll.json")"
[ "$(field "$dir/poll.json" 'j["id"]')" = "$slow" ] && [ "$(field "$dir/poll.json" 'j["state"]')" = succeeded ] ||
	fail "the long-poll did not return the finished job: $(cat "$dir/poll.json")"
[ "$(field "$dir/poll.json" 'j["result"]["slept"]')" = 31 ] || fail "the slow job's result: $(cat "$dir/poll.json")"
python3 -c 'import sys; sys.exit(0 if float(sys.argv[1]) >= 30 else 1)' "$took" ||
	fail "the long-poll answered after ${took}s, before the job could have ended"
pass "GET /jobq/v1/jobs/ID?wait=35 held ${took}s and answered 200 with the succeeded job"

# ---- jobqd stops; nginx answers for it -------------------------------------

kill -TERM "$jobqd_pid"
wait "$jobqd_pid" || fail "jobqd exited with status $? after SIGTERM"
jobqd_pid=
code=$(curl -s -o "$dir/down.out" -D "$dir/down.h" -w '%{http_code}' "$base/jobq/healthz")
[ "$code" = 502 ] && [ "$(header "$dir/down.h" Content-Type)" = application/problem+json ] &&
	[ "$(field "$dir/down.out" 'j["code"]')" = upstream_unreachable ] ||
	fail "with jobqd stopped: $code $(cat "$dir/down.out")"
pass "jobqd stopped: 502 problem+json upstream_unreachable"

if grep -qE 'ERROR: (Address|Leak)Sanitizer|WARNING: ThreadSanitizer|runtime error:' "$dir/jobqd.log"; then
	fail "sanitizer report in the jobqd log"
fi
grep -q '\[emerg\]\|\[alert\]' "$ngx/error.log" && fail "nginx logged an emergency or alert"
echo "proxy_test: $passed passed, 0 failed, $pending pending"
