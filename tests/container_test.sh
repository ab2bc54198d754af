#!/usr/bin/env bash
# Builds the image from the Dockerfile and runs it in the real Docker engine:
# jobqd answers /readyz, takes a job and answers its long-poll, runs as the
# unprivileged user as PID 1, lets a running job finish on `docker stop`,
# keeps its jobs on the volume for the next container, and its HEALTHCHECK
# reaches healthy. Then deploy/compose.yaml, as shipped, brings up jobqd
# behind nginx with Debian's docker-compose, and a job goes through nginx.
#
# Nothing here needs a registry. Without a running engine (DOCKER_HOST or
# the default socket), the test starts its own dockerd (as root; no bridge,
# no iptables) with its state in a temp dir, and stops it at the end. An
# image that is missing and cannot be pulled is made from Debian's
# packages: debian:bookworm-slim with debootstrap from the mirror apt uses,
# and the compose file's nginx image as a stand-in with Debian's nginx,
# tagged with the name the compose file uses. Builds use the host's
# network (to reach the mirror); containers get a network namespace of
# their own with only a loopback (--network none), which the test enters
# with nsenter, so the image keeps its own address (0.0.0.0:8080) and
# health check, and nothing listens on the host.
# Usage: container_test.sh   (from the repository root, as root)
set -euo pipefail
test_name=container_test
# shellcheck source=tests/lib.sh
. "$(dirname "$0")/lib.sh"

dockerfile=Dockerfile
compose_file=deploy/compose.yaml
# Names of this run's containers, volume and compose project.
tag=jobq-ct-$$
key=container-test-key
image=jobq
nginx_build_pid=
compose_up=
compose_pid=
# The nginx stand-in, when this run made one under the real image's name.
stand_ins=()

# What fail shows: the containers' and compose's logs.
fail_hook() {
	for c in "$tag-1" "$tag-2"; do
		docker inspect "$c" > /dev/null 2>&1 || continue
		echo "--- docker logs $c ---" >&2
		docker logs "$c" 2>&1 | tail -n 40 >&2 || true
	done
	if [ -n "$compose_up" ]; then
		echo "--- docker-compose logs ---" >&2
		compose logs --no-color 2>&1 | tail -n 60 >&2 || true
	fi
}

compose() {
	docker-compose -p "$tag" -f "$dir/deploy/compose.yaml" -f "$dir/deploy/compose.test.yaml" "$@"
}

cleanup() {
	kill_wait $nginx_build_pid $compose_pid
	if [ -n "$compose_up" ]; then
		compose down -v --timeout 5 > /dev/null 2>&1
	fi
	docker rm -f "$tag-1" "$tag-2" > /dev/null 2>&1
	docker volume rm "$tag-data" > /dev/null 2>&1
	# An engine that is not the test's own keeps no stand-in nginx under the
	# real name (the debootstrap base stays: it is Debian bookworm).
	[ -z "$docker_pid" ] && [ ${#stand_ins[@]} -gt 0 ] && docker rmi "${stand_ins[@]}" > /dev/null 2>&1
	return 0
}

# The main process of a container, as the host sees it.
container_pid() {
	docker inspect -f '{{.State.Pid}}' "$1"
}
# HTTP inside the network namespace of process $1: req PID METHOD URL [BODY].
# The body goes to $dir/body, the headers to $dir/headers; prints the status.
req() {
	local pid=$1 method=$2 url=$3
	local args=(-s -o "$dir/body" -D "$dir/headers" -w '%{http_code}' --max-time 40
		-H "Authorization: Bearer $key" -X "$method")
	[ $# -gt 3 ] && args+=(-H 'Content-Type: application/json' --data-binary "$4")
	nsenter --net="/proc/$pid/ns/net" curl "${args[@]}" "$url" || true
}
# Polls /readyz in process $1's namespace until it answers 200.
wait_ready() {
	local code=
	for _ in $(seq 1 300); do
		code=$(req "$1" GET "$2/readyz")
		[ "$code" = 200 ] && break
		sleep 0.1
	done
	[ "$code" = 200 ] || fail "$2/readyz answered ${code:-nothing} after 30 s"
	[ "$(cat "$dir/body")" = '{"status":"ready"}' ] || fail "/readyz said $(cat "$dir/body")"
}
# Submits a job (JSON $3) through base URL $2; sets job_id, job_location.
submit() {
	local code
	code=$(req "$1" POST "$2/v1/jobs" "$3")
	[ "$code" = 201 ] || fail "submit answered $code: $(cat "$dir/body")"
	job_id=$(field "$dir/body" 'j["id"]')
	job_location=$(header "$dir/headers" Location)
	[ -n "$job_id" ] || fail "the 201 has no id: $(cat "$dir/body")"
}
# Polls a job until its state is $4 (bounded by $3 tries of 0.1 s). jobqd
# writes compact JSON, and these jobs' payloads hold no "state".
wait_state() {
	for _ in $(seq 1 "$3"); do
		[ "$(req "$1" GET "$2")" = 200 ] && grep -q "\"state\":\"$4\"" "$dir/body" && return 0
		sleep 0.1
	done
	fail "$2 is not $4: $(cat "$dir/body")"
}
# Checks a finished job in $dir/body: succeeded with result $2 (JSON) in
# one attempt, with one succeeded entry in its history.
check_done() {
	python3 - "$dir/body" "$2" <<'PY' || fail "$1: $(cat "$dir/body")"
import json, sys
j = json.load(open(sys.argv[1]))
want = {"state": "succeeded", "result": json.loads(sys.argv[2]), "attempts": 1, "error": None,
        "outcomes": ["succeeded"]}
got = {k: j.get(k) for k in ("state", "result", "attempts", "error")}
got["outcomes"] = [a["outcome"] for a in j.get("attempt_history", [])]
for k in want:
    if got[k] != want[k]:
        print(f"container_test: {k} is {got[k]!r}, not {want[k]!r}", file=sys.stderr)
sys.exit(0 if got == want else 1)
PY
}
# Polls a container's health status until it is healthy (bounded).
wait_healthy() {
	local health=
	for _ in $(seq 1 "$2"); do
		health=$(docker inspect -f '{{.State.Health.Status}}' "$1")
		[ "$health" = healthy ] && return 0
		[ "$health" = unhealthy ] && break
		sleep 0.5
	done
	fail "$1 is ${health:-without a health status}, not healthy: $(docker inspect -f '{{json .State.Health}}' "$1")"
}

[ -f "$dockerfile" ] && [ -f "$compose_file" ] || fail "run from the repository root"
for cmd in docker docker-compose curl python3 nsenter; do
	command -v "$cmd" > /dev/null || fail "$cmd is not installed (scripts/deps.sh container installs it)"
done

# ---- the engine -------------------------------------------------------------

docker_engine
at_exit cleanup

# ---- the base image -----------------------------------------------------------

base=$(sed -n 's/^FROM \([^ ]*\).*$/\1/p' "$dockerfile" | sort -u)
[ "$base" = debian:bookworm-slim ] || fail "$dockerfile is not built on debian:bookworm-slim alone: $base"
base_image "$base"

# The compose file's nginx image: pulled, or a stand-in built from the
# same base with Debian's nginx, like the official image (nginx in the
# foreground, the conf.d site only, logs to the container's output).
# Made in the background, beside jobq's image.
nginx_image=$(python3 -c 'import sys, yaml
print(yaml.safe_load(open(sys.argv[1]))["services"]["nginx"]["image"])' "$compose_file")
[ -n "$nginx_image" ] || fail "$compose_file names no nginx image"
nginx_stand_in "$base" "$dir/nginx"
{
	have_image "$nginx_image" || timeout 30 docker pull -q "$nginx_image" ||
		{ echo "no $nginx_image to pull: a stand-in" && docker build --network host -t "$nginx_image" "$dir/nginx"; }
} > "$dir/nginx.log" 2>&1 &
nginx_build_pid=$!

# ---- the image ------------------------------------------------------------------

# Tagged as the compose file names it, so compose runs this very image.
[ "$(python3 -c 'import sys, yaml
print(yaml.safe_load(open(sys.argv[1]))["services"]["jobqd"]["image"])' "$compose_file")" = "$image" ] ||
	fail "$compose_file does not name jobqd's image $image"
docker build --network host -t "$image" -f "$dockerfile" . > "$dir/build.log" 2>&1 ||
	fail "docker build: $(tail -n 30 "$dir/build.log")"
pass "docker build of $dockerfile"
printf 'JOBQ_API_KEYS=admin:%s\n' "$key" > "$dir/jobq.env"

wait "$nginx_build_pid" || fail "no $nginx_image: $(tail -n 30 "$dir/nginx.log")"
nginx_build_pid=
if grep -q '^no .*: a stand-in$' "$dir/nginx.log"; then
	stand_ins+=("$nginx_image")
	log "built a stand-in $nginx_image from $base with Debian's nginx"
fi

# Compose comes up in the background (it waits for jobqd's first health
# check, an --interval after the start) while the image is tested alone.
# It runs the shipped files, byte for byte, from a copy of deploy/ (the env
# file is the user's to write; the test writes nothing into the tree).
# The override only takes jobqd, and with it nginx, off the bridge network
# the engine may not have, into a namespace with just a loopback: the
# published port goes unused.
mkdir -p "$dir/deploy"
cp -r "$compose_file" deploy/nginx "$dir/deploy/"
cp "$dir/jobq.env" "$dir/deploy/jobq.env"
printf '%s\n' 'services:' '  jobqd:' '    network_mode: none' > "$dir/deploy/compose.test.yaml"
compose_up=1
timeout 180 docker-compose -p "$tag" -f "$dir/deploy/compose.yaml" -f "$dir/deploy/compose.test.yaml" \
	up -d --no-build > "$dir/compose-up.log" 2>&1 &
compose_pid=$!

# As the README runs it, on a volume, without --init: jobqd is PID 1.
docker volume create "$tag-data" > /dev/null
docker run -d --name "$tag-1" --network none --stop-timeout 40 --env-file "$dir/jobq.env" \
	-v "$tag-data:/data" "$image" > /dev/null || fail "docker run"
pid=$(container_pid "$tag-1")
url=http://127.0.0.1:8080
wait_ready "$pid" "$url"
pass "the container answers /readyz 200 {\"status\":\"ready\"} on 0.0.0.0:8080"

[ "$(docker inspect -f '{{.Config.User}}' "$tag-1")" = jobq ] || fail "the image's user is not jobq"
[ "$(awk '/^Uid:/ { print $2, $3, $4, $5 }' "/proc/$pid/status")" = "10001 10001 10001 10001" ] ||
	fail "jobqd does not run as uid 10001: $(grep -e '^Uid:' -e '^Name:' "/proc/$pid/status")"
[ "$(awk '/^Gid:/ { print $2, $3, $4, $5 }' "/proc/$pid/status")" = "10001 10001 10001 10001" ] ||
	fail "jobqd does not run as gid 10001: $(grep '^Gid:' "/proc/$pid/status")"
[ "$(cat "/proc/$pid/comm")" = jobqd ] || fail "the container's main process is $(cat "/proc/$pid/comm"), not jobqd"
[ "$(awk '/^NSpid:/ { print $NF }' "/proc/$pid/status")" = 1 ] || fail "jobqd is not PID 1 in the container"
[ "$(docker exec "$tag-1" stat -c '%u:%g' /data/jobq.db)" = 10001:10001 ] ||
	fail "/data/jobq.db is not owned by jobq"
pass "jobqd is PID 1 as uid/gid 10001 (jobq), its database /data/jobq.db is jobq's"

submit "$pid" "$url" '{"type":"echo","payload":{"hello":"container"}}'
echo_id=$job_id
[ "$job_location" = "/v1/jobs/$echo_id" ] || fail "Location is '$job_location'"
[ "$(req "$pid" GET "$url$job_location?wait=30")" = 200 ] || fail "the long-poll answered $(cat "$dir/body")"
check_done "the echo job" '{"hello":"container"}'
pass "POST /v1/jobs 201 Location /v1/jobs/$echo_id; its long-poll 200 succeeded with the payload"

# The health check's first run is an --interval (30 s) after the start.
wait_healthy "$tag-1" 120
[ "$(docker inspect -f '{{.State.Health.FailingStreak}}' "$tag-1")" = 0 ] || fail "the health check failed before"
pass "the HEALTHCHECK reaches healthy"

# docker stop while a job sleeps: jobqd has its shutdown grace (30 s)
# within --stop-timeout 40 and lets the job finish.
submit "$pid" "$url" '{"type":"sleep","payload":{"seconds":5}}'
sleep_id=$job_id
wait_state "$pid" "$url/v1/jobs/$sleep_id" 100 running
start=$SECONDS
stop_at=$(date -u +%Y-%m-%dT%H:%M:%S.%NZ)
docker stop "$tag-1" > /dev/null || fail "docker stop"
took=$((SECONDS - start))
[ "$(docker inspect -f '{{.State.ExitCode}} {{.State.OOMKilled}}' "$tag-1")" = "0 false" ] ||
	fail "jobqd exited with $(docker inspect -f '{{.State.ExitCode}}' "$tag-1") on docker stop"
docker logs "$tag-1" > "$dir/c1.log" 2>&1
grep -q 'signal 15: shutting down' "$dir/c1.log" || fail "jobqd did not log the SIGTERM"
grep -q 'jobqd stopped' "$dir/c1.log" || fail "jobqd did not log its stop"
[ "$took" -lt 40 ] || fail "docker stop took ${took}s"
stopped_at=$(docker inspect -f '{{.State.FinishedAt}}' "$tag-1")
pass "docker stop with a running 5 s job: exit 0 after ${took}s"

# A new container on the same volume has both jobs; the sleep job ended
# succeeded in its one attempt, and in the first container: it started
# before docker stop and finished after it, before jobqd exited. (A job put
# back at the stop would run again in the new container, with the same
# attempt count.)
docker rm "$tag-1" > /dev/null
docker run -d --name "$tag-2" --network none --init --stop-timeout 40 --env-file "$dir/jobq.env" \
	-v "$tag-data:/data" "$image" > /dev/null || fail "docker run on the old volume"
pid=$(container_pid "$tag-2")
wait_ready "$pid" "$url"
[ "$(req "$pid" GET "$url/v1/jobs/$sleep_id")" = 200 ] || fail "the sleep job is gone: $(cat "$dir/body")"
check_done "the sleep job after docker stop" '{"slept":5}'
python3 - "$dir/body" "$stop_at" "$stopped_at" <<'PY' || fail "the sleep job did not run across docker stop: $(cat "$dir/body")"
import json, re, sys
def ms(t):  # RFC 3339 UTC, any fraction, as "YYYY-MM-DDTHH:MM:SS.mmm"
    m = re.fullmatch(r"(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)(?:\.(\d+))?Z", t)
    return f"{m[1]}.{(m[2] or '')[:3]:0<3}"
j = json.load(open(sys.argv[1]))
times = [ms(j["started_at"]), ms(sys.argv[2]), ms(j["finished_at"]), ms(sys.argv[3])]
if times != sorted(times) or times[0] == times[1]:
    sys.exit(f"container_test: started_at, docker stop, finished_at, jobqd exit: {' '.join(times)}")
PY
[ "$(req "$pid" GET "$url/v1/jobs/$echo_id")" = 200 ] || fail "the echo job is gone: $(cat "$dir/body")"
check_done "the echo job in a new container" '{"hello":"container"}'
[ "$(req "$pid" GET "$url/v1/jobs?limit=10")" = 200 ] || fail "the job list: $(cat "$dir/body")"
[ "$(field "$dir/body" '" ".join(sorted(x["id"] for x in j["jobs"]))')" = "$(printf '%s\n' "$echo_id" "$sleep_id" | sort | xargs)" ] ||
	fail "the volume holds other jobs than the two: $(cat "$dir/body")"
pass "a new container (with --init) on the volume has both jobs, the sleep job ran across the stop and succeeded in 1 attempt"

docker stop "$tag-2" > /dev/null
[ "$(docker inspect -f '{{.State.ExitCode}}' "$tag-2")" = 0 ] || fail "jobqd under --init exited non-zero on docker stop"
docker rm "$tag-2" > /dev/null
docker volume rm "$tag-data" > /dev/null
pass "docker stop under --init: exit 0; container and volume removed"

# ---- compose: jobqd behind nginx ------------------------------------------------

# up waited for jobqd to be healthy before it started nginx.
wait "$compose_pid" || fail "docker-compose up: $(tail -n 30 "$dir/compose-up.log")"
compose_pid=
jobqd_c=$(compose ps -q jobqd)
nginx_c=$(compose ps -q nginx)
[ -n "$jobqd_c" ] && [ -n "$nginx_c" ] || fail "compose has no jobqd or nginx container: $(compose ps)"
[ "$(docker inspect -f '{{.Config.Image}} {{.State.Health.Status}}' "$jobqd_c")" = "$image healthy" ] ||
	fail "compose's jobqd: $(docker inspect -f '{{.Config.Image}} {{.State.Health.Status}}' "$jobqd_c")"
[ "$(docker inspect -f '{{.Config.Image}} {{.State.Status}}' "$nginx_c")" = "$nginx_image running" ] ||
	fail "compose's nginx: $(docker inspect -f '{{.Config.Image}} {{.State.Status}}' "$nginx_c")"
pass "docker-compose up: $image healthy, then $nginx_image running in its network"

pid=$(container_pid "$jobqd_c")
url=http://127.0.0.1/jobq
wait_ready "$pid" "$url"
case $(header "$dir/headers" Server) in
nginx*) ;;
*) fail "/jobq/readyz was not answered through nginx: $(cat "$dir/headers")" ;;
esac
submit "$pid" "$url" '{"type":"echo","payload":{"via":"nginx"}}'
[ "$job_location" = "/jobq/v1/jobs/$job_id" ] || fail "Location through nginx is '$job_location'"
[ "$(req "$pid" GET "http://127.0.0.1$job_location?wait=30")" = 200 ] ||
	fail "the long-poll through nginx answered $(cat "$dir/body")"
check_done "the job through nginx" '{"via":"nginx"}'
pass "through nginx on port 80: /jobq/readyz 200, submit 201 Location /jobq/v1/jobs/$job_id, long-poll 200 succeeded"

compose stop > "$dir/compose-stop.log" 2>&1 || fail "docker-compose stop: $(cat "$dir/compose-stop.log")"
[ "$(docker inspect -f '{{.State.ExitCode}}' "$jobqd_c")" = 0 ] || fail "compose's jobqd exited non-zero on stop"
compose down -v > "$dir/compose-down.log" 2>&1 || fail "docker-compose down: $(cat "$dir/compose-down.log")"
compose_up=
compose_pid=
[ -z "$(docker ps -aq --filter "label=com.docker.compose.project=$tag")" ] || fail "compose left containers"
[ -z "$(docker volume ls -q --filter "label=com.docker.compose.project=$tag")" ] || fail "compose left volumes"
pass "docker-compose stop (jobqd exit 0) and down -v leave no container or volume"

echo "container_test: $passed passed, 0 failed (${SECONDS}s)"
