# The shell tests' one preamble, sourced by tests/*.sh right after
# `set -euo pipefail` with test_name set: log/pass/fail, a temp dir ($dir)
# removed at exit after a chain of cleanups, JSON field and header readers,
# and for the container tests the Docker engine (a dockerd of the test's own
# when none runs) and the Debian base image made with debootstrap.
# shellcheck shell=bash

: "${test_name:?set test_name before sourcing tests/lib.sh}"
dir=$(mktemp -d)
passed=0
lib_cleanups=()

log() {
	echo "$test_name: $*"
}
pass() {
	log "ok: $* (${SECONDS}s)"
	passed=$((passed + 1))
}
# Says why on stderr, runs the test's fail_hook (its logs) when it has one,
# and exits 1; the cleanups still run.
fail() {
	echo "$test_name: FAIL: $*" >&2
	if declare -F fail_hook > /dev/null; then
		fail_hook >&2 || true
	fi
	exit 1
}

# at_exit CMD: CMD (one shell word, usually a function) runs at exit, the
# last added first, before the temp dir is removed.
at_exit() {
	lib_cleanups+=("$1")
}
lib_cleanup() {
	local i
	set +e
	for ((i = ${#lib_cleanups[@]} - 1; i >= 0; i--)); do
		"${lib_cleanups[i]}"
	done
	rm -rf "$dir"
}
trap lib_cleanup EXIT

# Kills and reaps each running pid given (empty ones are skipped).
kill_wait() {
	local p
	for p in "$@"; do
		[ -n "$p" ] && kill "$p" 2>/dev/null && wait "$p" 2>/dev/null
	done
	return 0
}

# One field of a JSON file, by a Python expression on j; "" when absent.
# Objects, arrays, booleans and null print as compact JSON with sorted keys.
field() {
	python3 -c 'import json, sys
j = json.load(open(sys.argv[1]))
v = eval(sys.argv[2], {"j": j})
print(json.dumps(v, sort_keys=True, separators=(",", ":")) if isinstance(v, (dict, list, bool)) or v is None else v)' "$1" "$2" 2>/dev/null || true
}
# A header's value from a curl -D file, without the CR.
header() {
	sed -n "s/^$2: *//Ip" "$1" | tr -d '\r' | tail -n 1
}

# Sets port from jobqd's "listening on" line in log $1 once it is there
# (polled, at most 10 s); fails with $2 when it never comes.
wait_listening() {
	port=
	for _ in $(seq 1 200); do
		port=$(sed -n 's|^jobqd: listening on http://127.0.0.1:\([0-9]*\)$|\1|p' "$1")
		[ -n "$port" ] && return 0
		sleep 0.05
	done
	fail "$2"
}

# ---- the Docker engine and base image (container tests) ---------------------

docker_pid=

have_image() {
	docker image inspect "$1" > /dev/null 2>&1
}

# Stops the dockerd this test started, if any, and unmounts what it left.
stop_dockerd() {
	[ -n "$docker_pid" ] || return 0
	kill -TERM "$docker_pid" 2>/dev/null || true
	for _ in $(seq 1 300); do
		kill -0 "$docker_pid" 2>/dev/null || break
		sleep 0.1
	done
	kill -KILL "$docker_pid" 2>/dev/null || true
	wait "$docker_pid" 2>/dev/null || true
	docker_pid=
	# Layers or volumes a killed engine left mounted.
	findmnt -rn -o TARGET | grep "^$dir/" | sort -r | while read -r m; do
		umount -l "$m" || true
	done
}

# Uses the engine at DOCKER_HOST or the default socket; without one, starts
# a dockerd of the test's own (as root; no bridge, no iptables) with its
# state in $dir/docker, exports DOCKER_HOST for it, and stops it at exit.
docker_engine() {
	local dockerd
	if [ -z "${DOCKER_HOST:-}" ] && ! docker version > /dev/null 2>&1; then
		[ "$(id -u)" = 0 ] || fail "no Docker engine is running, and only root can start one"
		dockerd=$(command -v dockerd || echo /usr/sbin/dockerd)
		[ -x "$dockerd" ] || fail "dockerd is not installed (scripts/deps.sh container installs docker.io)"
		mkdir -p "$dir/docker"
		export DOCKER_HOST=unix://$dir/docker/sock
		"$dockerd" --bridge=none --iptables=false \
			--data-root "$dir/docker/root" --exec-root "$dir/docker/exec" \
			--pidfile "$dir/docker/pid" -H "$DOCKER_HOST" > "$dir/dockerd.log" 2>&1 &
		docker_pid=$!
		at_exit stop_dockerd
		for _ in $(seq 1 300); do
			docker version > /dev/null 2>&1 && break
			kill -0 "$docker_pid" 2>/dev/null || break
			sleep 0.1
		done
		docker version > /dev/null 2>&1 || fail "dockerd did not start: $(tail -n 20 "$dir/dockerd.log")"
		log "started dockerd $(docker version -f '{{.Server.Version}}') in $dir/docker"
	fi
	docker version > /dev/null 2>&1 || fail "the Docker engine at ${DOCKER_HOST:-the default socket} does not answer"
}

# Writes into the new folder $2 the Dockerfile of an nginx stand-in on base
# image $1, run as the official image runs it: Debian's nginx in the
# foreground, the conf.d site only, logs to the container's output.
nginx_stand_in() {
	mkdir "$2"
	printf '%s\n' "FROM $1" \
		'RUN apt-get update \' \
		' && apt-get install -y --no-install-recommends nginx \' \
		' && rm -rf /var/lib/apt/lists/* /etc/nginx/sites-enabled/default \' \
		' && ln -sf /dev/stdout /var/log/nginx/access.log \' \
		' && ln -sf /dev/stderr /var/log/nginx/error.log' \
		'STOPSIGNAL SIGQUIT' \
		'CMD ["nginx", "-g", "daemon off;"]' > "$2/Dockerfile"
}

# "deb URI SUITE COMPONENT" for each bookworm suite apt uses here.
apt_sources() {
	# shellcheck disable=SC2016 # apt expands $(...) itself
	apt-get indextargets --format '$(REPO_URI) $(RELEASE) $(COMPONENT)' 'Identifier: Packages' |
		awk '$2 ~ /^bookworm(-updates|-security)?$/ { print "deb " $0 }' | sort -u
}

# Makes image $1 (debian:bookworm-slim) when it is missing and cannot be
# pulled: debootstrap from the mirror apt uses, slimmed as Debian's image
# is, imported under that name.
base_image() {
	local base=$1 mirror root
	have_image "$base" && return 0
	timeout 30 docker pull -q "$base" > /dev/null 2>&1 && return 0
	command -v debootstrap > /dev/null || [ -x /usr/sbin/debootstrap ] ||
		fail "no $base to pull, and no debootstrap (scripts/deps.sh container installs it)"
	apt_sources > "$dir/sources.list" || true
	if [ ! -s "$dir/sources.list" ]; then
		apt-get update -qq
		apt_sources > "$dir/sources.list"
	fi
	mirror=$(awk '$3 == "bookworm" { print $2; exit }' "$dir/sources.list")
	[ -n "$mirror" ] || fail "apt has no Debian bookworm source to debootstrap from"
	root=${dir:?}/rootfs
	PATH=$PATH:/usr/sbin debootstrap --variant=minbase bookworm "$root" "$mirror" > "$dir/debootstrap.log" 2>&1 ||
		fail "debootstrap from $mirror: $(tail -n 20 "$dir/debootstrap.log")"
	[ -x "$root/usr/bin/apt-get" ] || fail "debootstrap made no tree with apt in $root"
	cp "$dir/sources.list" "$root/etc/apt/sources.list"
	# What makes Debian's image slim and quick to apt-get in, as its files
	# in /etc/dpkg/dpkg.cfg.d and /etc/apt/apt.conf.d do there: no docs,
	# man pages or translations, no fsync in dpkg.
	printf '%s\n' 'path-exclude /usr/share/doc/*' 'path-include /usr/share/doc/*/copyright' \
		'path-exclude /usr/share/groff/*' 'path-exclude /usr/share/info/*' \
		'path-exclude /usr/share/linda/*' 'path-exclude /usr/share/lintian/overrides/*' \
		'path-exclude /usr/share/locale/*' 'path-include /usr/share/locale/locale.alias' \
		'path-exclude /usr/share/man/*' > "$root/etc/dpkg/dpkg.cfg.d/docker"
	echo force-unsafe-io > "$root/etc/dpkg/dpkg.cfg.d/docker-apt-speedup"
	echo 'Acquire::Languages "none";' > "$root/etc/apt/apt.conf.d/docker-no-languages"
	(
		cd "$root" || exit 1
		find usr/share/doc -mindepth 2 ! -name copyright ! -type d -delete
		find usr/share/locale -mindepth 1 -maxdepth 1 ! -name locale.alias -exec rm -rf {} +
		rm -rf usr/share/man usr/share/info usr/share/groff var/cache/apt/archives/*.deb var/lib/apt/lists/*
	) || fail "could not slim the debootstrap tree"
	tar -C "$root" -c . | docker import - "$base" > /dev/null || fail "docker import of the debootstrap tree"
	rm -rf "$root"
	log "made $base with debootstrap from $mirror (${SECONDS}s)"
}
