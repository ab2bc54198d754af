#!/usr/bin/env bash
# Checks the Dockerfile, deploy/compose.yaml and deploy/jobqd.service against
# the built jobqd, without building an image (no container engine is
# needed): the runtime stage installs exactly the packages that provide the
# libraries jobqd links, the build stage the -dev packages scripts/deps.sh
# names; jobqd starts with the image's environment and entrypoint as PID 1
# of its own PID namespace, passes the image's health check, and drains on
# SIGTERM; the systemd unit passes systemd-analyze verify and gives jobqd
# more time to stop than its shutdown grace; the compose file wires what
# the README says.
# Usage: deploy_test.sh   (from the repository root; JOBQD names the binary)
set -euo pipefail
test_name=deploy_test
# shellcheck source=tests/lib.sh
. "$(dirname "$0")/lib.sh"

jobqd=${JOBQD:-build/jobqd}
dockerfile=Dockerfile
unit=deploy/jobqd.service
compose=deploy/compose.yaml
ns_pid=
jobqd_pid=

cleanup() {
	[ -n "$jobqd_pid" ] && kill -KILL "$jobqd_pid" 2>/dev/null || true
	[ -n "$ns_pid" ] && kill -KILL "$ns_pid" 2>/dev/null && wait "$ns_pid" 2>/dev/null || true
}
at_exit cleanup
fail_hook() {
	[ -f "$dir/jobqd.log" ] && { echo "--- jobqd log ---"; cat "$dir/jobqd.log"; }
}

[ -x "$jobqd" ] || fail "no jobqd at $jobqd"

# ---- the Dockerfile --------------------------------------------------------

# The lines of one stage (0: build, 1: runtime), continuations joined.
stage() {
	sed -e ':a' -e '/\\$/N; s/\\\n//; ta' "$dockerfile" |
		awk -v want="$1" '/^FROM /{n++} n == want + 1'
}
stage 0 > "$dir/build.stage"
stage 1 > "$dir/runtime.stage"
[ -s "$dir/build.stage" ] && [ -s "$dir/runtime.stage" ] || fail "$dockerfile needs two stages"
grep -q '^FROM debian:bookworm-slim AS build$' "$dir/build.stage" || fail "the build stage is not debian:bookworm-slim AS build"
grep -q '^FROM debian:bookworm-slim$' "$dir/runtime.stage" || fail "the runtime stage is not debian:bookworm-slim"
[ "$(grep -c '^FROM ' "$dockerfile")" = 2 ] || fail "$dockerfile should have exactly two stages"

# The packages of a stage's apt-get install, one a line.
installed() {
	grep -o 'apt-get install [^&]*' "$1" | tr ' ' '\n' | grep -v -e '^-' -e '^apt-get$' -e '^install$' -e '^$' | sort -u
}
installed "$dir/build.stage" > "$dir/build.pkgs"
installed "$dir/runtime.stage" > "$dir/runtime.pkgs"

# The build stage has every -dev package scripts/deps.sh installs for `make`.
sed -n 's/^[[:space:]]*check_pc [^ ]* \([^ ]*\)$/\1/p' scripts/deps.sh | grep -v -e '^check$' -e '^libsubunit' |
	sort -u > "$dir/deps.pkgs"
[ -s "$dir/deps.pkgs" ] || fail "no check_pc lines in scripts/deps.sh"
missing=$(comm -23 "$dir/deps.pkgs" "$dir/build.pkgs" | tr '\n' ' ')
[ -z "$missing" ] || fail "the build stage lacks what scripts/deps.sh installs: $missing"
grep -q '^RUN make .*all$' "$dir/build.stage" || fail "the build stage does not run make all"
pass "build stage: bookworm-slim with scripts/deps.sh's packages, runs make all"

# The Debian package of each library jobqd links directly (ELF NEEDED).
# Sanitizer runtimes are left out: the image is never built with them.
: > "$dir/needed.pkgs"
for lib in $(readelf -d "$jobqd" | sed -n 's/.*(NEEDED).*\[\(.*\)\]/\1/p' | grep -v -e '^libasan' -e '^libubsan' -e '^libtsan'); do
	path=$(ldd "$jobqd" | awk -v l="$lib" '$1 == l { print $3 }')
	[ -n "$path" ] || fail "ldd does not resolve $lib"
	pkg=
	for p in "$path" "$(readlink -f "$path")" "/usr$path" "${path#/usr}"; do
		pkg=$(dpkg -S "$p" 2>/dev/null | head -n 1 | cut -d: -f1) && [ -n "$pkg" ] && break
	done
	[ -n "$pkg" ] || fail "no Debian package owns $path ($lib)"
	echo "$pkg" >> "$dir/needed.pkgs"
done
sort -u -o "$dir/needed.pkgs" "$dir/needed.pkgs"
# libc6 comes with the base image; ca-certificates and curl are there on
# purpose (https for http jobs, the health check).
missing=$(grep -vx libc6 "$dir/needed.pkgs" | comm -23 - "$dir/runtime.pkgs" | tr '\n' ' ')
[ -z "$missing" ] || fail "the runtime stage lacks packages jobqd links: $missing"
extra=$(comm -13 "$dir/needed.pkgs" "$dir/runtime.pkgs" | grep -vx -e ca-certificates -e curl | tr '\n' ' ' || true)
[ -z "$extra" ] || fail "the runtime stage installs packages jobqd does not link: $extra"
grep -qE -- '-dev$' "$dir/runtime.pkgs" && fail "the runtime stage installs -dev packages"
while read -r pkg; do
	apt-cache show --no-all-versions "$pkg" > /dev/null 2>&1 || fail "no Debian package $pkg"
done < "$dir/runtime.pkgs"
pass "runtime stage: exactly the packages of jobqd's libraries ($(tr '\n' ' ' < "$dir/needed.pkgs")) + ca-certificates, curl"

user=$(sed -n 's/^USER \(.*\)$/\1/p' "$dir/runtime.stage" | tail -n 1)
[ -n "$user" ] && [ "$user" != root ] && [ "$user" != 0 ] || fail "the runtime stage runs as '${user:-root}'"
grep -qE "useradd .* $user( |$)" "$dir/runtime.stage" || fail "the runtime stage does not create the user $user"
grep -qE '^VOLUME (\[")?/data' "$dir/runtime.stage" || fail "no VOLUME /data"
grep -q 'JOBQ_DB=/data/' "$dir/runtime.stage" || fail "the database is not under /data"
grep -q 'JOBQ_LISTEN=0.0.0.0:8080' "$dir/runtime.stage" || fail "jobqd does not listen on 0.0.0.0:8080"
grep -q '^EXPOSE 8080$' "$dir/runtime.stage" || fail "no EXPOSE 8080"
grep -q '^STOPSIGNAL SIGTERM$' "$dir/runtime.stage" || fail "no STOPSIGNAL SIGTERM"
entrypoint=$(sed -n 's/^ENTRYPOINT \(\[.*\]\)$/\1/p' "$dir/runtime.stage")
[ -n "$entrypoint" ] || fail "ENTRYPOINT is not in exec form (jobqd would not be PID 1)"
pass "runtime stage: user $user, VOLUME /data, 0.0.0.0:8080, exec-form ENTRYPOINT"

# ---- the image's jobqd, started as the container would start it ----------

# ENTRYPOINT + CMD as words, the binary swapped for the built one.
python3 -c 'import json, sys
args = json.loads(sys.argv[1]) + (json.loads(sys.argv[2]) if sys.argv[2] else [])
assert args[0] == "/usr/local/bin/jobqd", args[0]
for a in args[1:]: print(a)' "$entrypoint" "$(sed -n 's/^CMD \(\[.*\]\)$/\1/p' "$dir/runtime.stage")" > "$dir/args" ||
	fail "the entrypoint is not /usr/local/bin/jobqd"
mapfile -t image_args < "$dir/args"
# The image's ENV, as NAME=VALUE words.
sed -n 's/^ENV //p' "$dir/runtime.stage" | tr -s ' ' '\n' | grep '=' > "$dir/env"
mapfile -t image_env < "$dir/env"
healthcheck=$(sed -n 's/^HEALTHCHECK .*CMD \(\[.*\]\)$/\1/p' "$dir/runtime.stage")
[ -n "$healthcheck" ] || fail "no exec-form HEALTHCHECK"
grep -q '/readyz' <<< "$healthcheck" || fail "the health check does not ask /readyz: $healthcheck"

# As PID 1 of a new PID namespace, as in a container (as root, or in a user
# namespace when the kernel allows it); the address and database are moved
# to a free loopback port and a temp dir; a key is given as a user would.
pid1=()
if unshare --pid --fork true 2>/dev/null; then
	pid1=(unshare --pid --fork --kill-child)
elif unshare --user --map-root-user --pid --fork true 2>/dev/null; then
	pid1=(unshare --user --map-root-user --pid --fork --kill-child)
fi
env -i PATH=/usr/bin:/bin "${image_env[@]}" JOBQ_API_KEYS=admin:deploy-test-key \
	"${pid1[@]}" "$jobqd" "${image_args[@]}" --listen 127.0.0.1:0 --db "$dir/jobq.db" --shutdown-grace 10 \
	2> "$dir/jobqd.log" &
ns_pid=$!
wait_listening "$dir/jobqd.log" "jobqd did not start with the image's environment and arguments"
if [ "${#pid1[@]}" -gt 0 ]; then
	jobqd_pid=$(pgrep -P "$ns_pid" | head -n 1)
	[ -n "$jobqd_pid" ] || fail "no jobqd under unshare"
	[ "$(sed -n 's/^NSpid:[[:space:]]*[0-9]*[[:space:]]*//p' "/proc/$jobqd_pid/status")" = 1 ] ||
		fail "jobqd is not PID 1 in its namespace: $(grep NSpid "/proc/$jobqd_pid/status")"
	how="as PID 1"
else
	jobqd_pid=$ns_pid
	ns_pid=
	how="not as PID 1: this kernel lets this user make no PID namespace"
fi

python3 -c 'import json, sys; print("\n".join(json.loads(sys.argv[1])))' "$healthcheck" |
	sed "s|127.0.0.1:8080|127.0.0.1:$port|" > "$dir/health"
mapfile -t health < "$dir/health"
"${health[@]}" || fail "the image's health check failed: ${health[*]}"
pass "jobqd starts with the image's ENV and ENTRYPOINT ($how) and passes its HEALTHCHECK"

# A running job and a long-poll on it; SIGTERM to jobqd must let the job end
# and answer the long-poll, then exit 0.
auth=(-H 'Authorization: Bearer deploy-test-key')
job=$(curl -s "${auth[@]}" -H 'Content-Type: application/json' \
      -d '{"type":"sleep","payload":{"seconds":1}}' "http://127.0.0.1:$port/v1/jobs" |
      python3 -c 'import json, sys; print(json.load(sys.stdin)["id"])') || fail "could not submit a job"
curl -s "${auth[@]}" -o "$dir/poll.json" -w '%{http_code}' "http://127.0.0.1:$port/v1/jobs/$job?wait=20" > "$dir/poll.code" &
poll_pid=$!
running=
for _ in $(seq 1 100); do
	curl -s "${auth[@]}" "http://127.0.0.1:$port/v1/jobs/$job" | grep -q '"state":"running"' && running=1 && break
	sleep 0.02
done
[ -n "$running" ] || fail "the job did not start"
# The long-poll must be waiting inside jobqd before SIGTERM: one that
# arrives during the shutdown is answered at once with the running job.
waiting=
for _ in $(seq 1 250); do
	curl -s "${auth[@]}" "http://127.0.0.1:$port/metrics" | grep -q '^jobq_waiters [1-9]' && waiting=1 && break
	sleep 0.02
done
[ -n "$waiting" ] || fail "the long-poll never waited in jobqd"
kill -TERM "$jobqd_pid"
status=0
if [ -n "$ns_pid" ]; then
	wait "$ns_pid" || status=$?
	ns_pid=
else
	wait "$jobqd_pid" || status=$?
fi
jobqd_pid=
[ "$status" = 0 ] || fail "jobqd exited with status $status after SIGTERM ($how)"
wait "$poll_pid" || fail "the long-poll failed"
[ "$(cat "$dir/poll.code")" = 200 ] || fail "the long-poll answered $(cat "$dir/poll.code")"
python3 -c 'import json, sys
j = json.load(open(sys.argv[1]))
sys.exit(0 if j["state"] == "succeeded" and j["result"] == {"slept": 1} else 1)' "$dir/poll.json" ||
	fail "the job did not finish during the shutdown grace: $(cat "$dir/poll.json")"
grep -q 'signal 15: shutting down' "$dir/jobqd.log" || fail "jobqd did not log the SIGTERM"
grep -q 'jobqd stopped' "$dir/jobqd.log" || fail "jobqd did not log its stop"
if grep -qE 'ERROR: (Address|Leak)Sanitizer|WARNING: ThreadSanitizer|runtime error:' "$dir/jobqd.log"; then
	fail "sanitizer report in the jobqd log"
fi
pass "SIGTERM ($how): the running job finished, its long-poll got 200 succeeded, exit 0"

# ---- the systemd unit -------------------------------------------------------

grace=$(sed -n 's/^Environment=JOBQ_SHUTDOWN_GRACE=\([0-9]*\)$/\1/p' "$unit")
stop=$(sed -n 's/^TimeoutStopSec=\([0-9]*\)$/\1/p' "$unit")
[ -n "$grace" ] && [ -n "$stop" ] && [ "$stop" -gt "$grace" ] ||
	fail "$unit: TimeoutStopSec (${stop:-unset}) must exceed JOBQ_SHUTDOWN_GRACE (${grace:-unset})"
grep -q '^User=jobq$' "$unit" && grep -q '^StateDirectory=jobq$' "$unit" || fail "$unit: no User=jobq or StateDirectory=jobq"
grep -q '^Environment=JOBQ_DB=/var/lib/jobq/' "$unit" || fail "$unit: the database is not in the state directory"
grep -q '^KillMode=mixed$' "$unit" || fail "$unit: KillMode is not mixed"
if command -v systemd-analyze > /dev/null; then
	# verify wants ExecStart to exist: point it at the built binary.
	sed "s|^ExecStart=/usr/local/bin/jobqd|ExecStart=$(readlink -f "$jobqd")|" "$unit" > "$dir/jobqd.service"
	(cd "$dir" && systemd-analyze verify jobqd.service) > "$dir/verify.log" 2>&1 ||
		fail "systemd-analyze verify: $(cat "$dir/verify.log")"
	# It warns about unknown keys and bad values but still exits 0.
	[ ! -s "$dir/verify.log" ] || fail "systemd-analyze verify warns: $(cat "$dir/verify.log")"
	pass "$unit: systemd-analyze verify is silent; TimeoutStopSec ${stop}s > grace ${grace}s"
else
	echo "deploy_test: SKIP: systemd-analyze verify (systemd-analyze is not installed)"
fi

# ---- the compose file --------------------------------------------------------

python3 - "$compose" "$grace" <<'EOF' || fail "$compose: see above"
import sys
import yaml

c = yaml.safe_load(open(sys.argv[1]))
grace = int(sys.argv[2])
s = c["services"]
j, n = s["jobqd"], s["nginx"]
problems = []
# Debian's docker-compose 1.29 refuses other top-level keys (name: among them).
unknown = sorted(k for k in c if k not in ("version", "services", "volumes", "networks", "secrets", "configs")
                 and not k.startswith("x-"))
if unknown:
    problems.append(f"top-level {unknown}: docker-compose 1.29 refuses the file")
if j["build"]["context"] != ".." or j["build"].get("dockerfile") != "Dockerfile":
    problems.append("jobqd is not built from the repository's Dockerfile")
if j.get("env_file") != "jobq.env":
    problems.append("jobqd takes no env_file jobq.env (its API keys)")
if "jobq-data:/data" not in j.get("volumes", []) or "jobq-data" not in c.get("volumes", {}):
    problems.append("no named volume jobq-data at /data")
if j.get("environment", {}).get("JOBQ_TRUST_PROXY") != "127.0.0.1/32":
    problems.append("jobqd does not trust the proxy on 127.0.0.1")
period = j.get("stop_grace_period", "10s")
if not period.endswith("s") or int(period[:-1]) <= grace:
    problems.append(f"stop_grace_period {period} is not longer than the {grace} s shutdown grace")
if j.get("init") is not True:
    problems.append("jobqd runs without init: true (nothing would reap orphaned command processes)")
if n.get("network_mode") != "service:jobqd":
    problems.append("nginx does not share jobqd's network (the site file expects 127.0.0.1:8080)")
if "./nginx/jobq.conf:/etc/nginx/conf.d/default.conf:ro" not in n.get("volumes", []):
    problems.append("nginx does not mount deploy/nginx/jobq.conf as its default site")
if n.get("depends_on", {}).get("jobqd", {}).get("condition") != "service_healthy":
    problems.append("nginx does not wait for jobqd's health check")
for p in problems:
    print(f"compose: {p}", file=sys.stderr)
sys.exit(1 if problems else 0)
EOF
[ -f deploy/jobq.env.example ] && grep -q '^JOBQ_API_KEYS=admin:' deploy/jobq.env.example ||
	fail "deploy/jobq.env.example has no JOBQ_API_KEYS=admin:... line"
pass "$compose: jobqd from the Dockerfile on a named volume with an env file, nginx in its network"

echo "deploy_test: $passed passed, 0 failed"
