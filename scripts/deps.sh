#!/bin/sh
# Installs what jobq needs to build (`deps.sh build`), to build and test
# (`deps.sh test`), to run the benchmarks (`deps.sh bench`), the static
# analysis (`deps.sh analyze`), to build the fuzz targets with clang's
# libFuzzer (`deps.sh fuzz`) or to test the image in Docker
# (`deps.sh container`) on Debian 12. As root it runs apt-get; otherwise it
# prints the exact command to run and fails.
set -eu
what=${1:-test}

# pkg-config module -> Debian package
need_pkgs=""
check_pc() {
	pkg-config --exists "$1" 2>/dev/null || need_pkgs="$need_pkgs $2"
}
check_cmd() {
	command -v "$1" >/dev/null 2>&1 || need_pkgs="$need_pkgs $2"
}

check_cmd cc gcc
check_cmd make make
check_cmd pkg-config pkg-config
if command -v pkg-config >/dev/null 2>&1; then
	check_pc libmicrohttpd libmicrohttpd-dev
	check_pc sqlite3 libsqlite3-dev
	check_pc libcjson libcjson-dev
	check_pc libcurl libcurl4-openssl-dev
	check_pc libcrypto libssl-dev
	check_pc libpq libpq-dev
	if [ "$what" = test ] || [ "$what" = analyze ]; then   # analyze builds the tests too
		check_pc check check
		check_pc libsubunit libsubunit-dev
	fi
else
	need_pkgs="$need_pkgs libmicrohttpd-dev libsqlite3-dev libcjson-dev libcurl4-openssl-dev libssl-dev libpq-dev"
	case $what in test|analyze) need_pkgs="$need_pkgs check libsubunit-dev" ;; esac
fi
# Time zones come from the system's zone files (core/tz.c): jobqd's
# schedules read them, and so do the unit tests.
[ -f /usr/share/zoneinfo/Europe/Berlin ] || need_pkgs="$need_pkgs tzdata"
if [ "$what" = fuzz ]; then
	check_cmd clang clang
	# libFuzzer and the sanitizer runtimes of Debian 12's clang (14)
	ls /usr/lib/llvm-*/lib/clang/*/lib/linux/libclang_rt.fuzzer-x86_64.a >/dev/null 2>&1 ||
		ls /usr/lib/llvm-*/lib/clang/*/lib/linux/libclang_rt.fuzzer-*.a >/dev/null 2>&1 ||
		need_pkgs="$need_pkgs libclang-rt-14-dev"
fi
if [ "$what" = bench ]; then
	check_cmd curl curl
	check_cmd python3 python3
	check_cmd wrk wrk
	# BACKEND=pg and bench-peers: a private cluster, psql and pgbench
	[ -x /usr/lib/postgresql/15/bin/pgbench ] || need_pkgs="$need_pkgs postgresql-15"
	check_cmd psql postgresql-client-15
fi
if [ "$what" = container ]; then
	# tests/container_test.sh: the engine, compose, and debootstrap for a
	# base image when no registry is reachable (both in /usr/sbin).
	[ -x /usr/sbin/dockerd ] || need_pkgs="$need_pkgs docker.io"
	check_cmd docker-compose docker-compose
	[ -x /usr/sbin/debootstrap ] || need_pkgs="$need_pkgs debootstrap"
	check_cmd curl curl
	check_cmd python3 python3
	python3 -c 'import yaml' 2>/dev/null || need_pkgs="$need_pkgs python3-yaml"
fi
if [ "$what" = analyze ]; then
	check_cmd cppcheck cppcheck
	check_cmd scan-build clang-tools   # scan-build, with clang as its analyzer
fi
if [ "$what" = test ]; then
	check_cmd curl curl
	check_cmd python3 python3
	python3 -c 'import yaml' 2>/dev/null || need_pkgs="$need_pkgs python3-yaml"
	# check-python installs clients/python with Debian's pip under build/
	/usr/bin/python3 -c 'import setuptools' 2>/dev/null || need_pkgs="$need_pkgs python3-setuptools"
	/usr/bin/python3 -m pip --version >/dev/null 2>&1 || need_pkgs="$need_pkgs python3-pip"
	/usr/bin/python3 -c 'import ensurepip' 2>/dev/null || need_pkgs="$need_pkgs python3-venv"
	/usr/bin/python3 -c 'import tqdm' 2>/dev/null || need_pkgs="$need_pkgs python3-tqdm"
	check_cmd node nodejs
	check_cmd npm npm
	check_cmd promtool prometheus   # `promtool check metrics` in check-metrics
	# the dashboard's browser test drives Debian's chromium
	[ -x /usr/bin/chromium ] || need_pkgs="$need_pkgs chromium"
	# the reverse-proxy test puts Debian's nginx in front of jobqd
	# (in /usr/sbin, which is not on every user's PATH)
	command -v nginx >/dev/null 2>&1 || [ -x /usr/sbin/nginx ] || need_pkgs="$need_pkgs nginx"
	check_cmd systemd-analyze systemd
	# check-install renders the man page
	check_cmd man man-db
	check_cmd groff groff-base
	check_cmd col bsdextrautils
	# check-pg: a private cluster from Debian's server (scripts/pg-cluster.sh)
	[ -x /usr/lib/postgresql/15/bin/initdb ] || need_pkgs="$need_pkgs postgresql-15"
	check_cmd psql postgresql-client-15
fi

[ -z "$need_pkgs" ] && exit 0
echo "jobq: missing Debian packages:$need_pkgs" >&2
if [ "$(id -u)" = 0 ]; then
	export DEBIAN_FRONTEND=noninteractive
	apt-get update -qq
	# shellcheck disable=SC2086
	apt-get install -y -qq --no-install-recommends $need_pkgs
else
	echo "jobq: run as root:  apt-get install -y$need_pkgs" >&2
	exit 1
fi
