#!/bin/sh
# A private PostgreSQL cluster for the tests: never a system service.
#   pg-cluster.sh start DIR    initdb into DIR (once), start the server on a
#                              free loopback port with its socket in DIR, and
#                              print its URL (a non-superuser role owning a
#                              database, both named jobq) on stdout
#   pg-cluster.sh stop DIR     stop it (nothing to do when it is not running)
#   pg-cluster.sh restart DIR  pg_ctl restart -m fast, same port
#   pg-cluster.sh url DIR      print the URL again
# Trust authentication for the unix socket and loopback only; fsync stays on.
# initdb refuses root: as root the cluster runs as the unprivileged user
# PG_CLUSTER_USER (default postgres, which Debian's package creates) and DIR
# is handed to it. Every wait is bounded (PG_CLUSTER_WAIT_S, default 60).
# Needs Debian's postgresql-15 (scripts/deps.sh test installs it).
set -eu

usage() {
	echo "usage: $0 start|stop|restart|url DIR" >&2
	exit 2
}
die() {
	echo "pg-cluster: $*" >&2
	exit 1
}

[ $# -eq 2 ] || usage
cmd=$1
dir=$2
[ -n "$dir" ] || usage
wait_s=${PG_CLUSTER_WAIT_S:-60}
user=${PG_CLUSTER_USER:-postgres}
# Nothing of the caller's libpq environment may redirect the cluster's tools.
unset PGHOST PGHOSTADDR PGPORT PGDATABASE PGUSER PGPASSWORD PGSERVICE PGOPTIONS PGDATA PGPASSFILE || true

bindir=${PG_BINDIR:-}
if [ -z "$bindir" ]; then
	for v in 17 16 15; do
		if [ -x "/usr/lib/postgresql/$v/bin/initdb" ]; then
			bindir=/usr/lib/postgresql/$v/bin
			break
		fi
	done
fi
[ -n "$bindir" ] && [ -x "$bindir/pg_ctl" ] ||
	die "no PostgreSQL server binaries (want /usr/lib/postgresql/15/bin; scripts/deps.sh test installs postgresql-15)"

case $dir in
/*) ;;
*) dir=$(pwd)/$dir ;;
esac
data=$dir/data
sock=$dir/sock
log=$dir/server.log

# Runs a command as the cluster's owner, from DIR (its own cwd).
as_owner() {
	if [ "$(id -u)" = 0 ]; then
		(cd "$dir" && runuser -u "$user" -- "$@")
	else
		(cd "$dir" && "$@")
	fi
}

port_of() {
	sed -n 's/^port = \([0-9][0-9]*\).*/\1/p' "$data/postgresql.conf" | tail -n 1
}

url() {
	p=$(port_of)
	[ -n "$p" ] || die "no port in $data/postgresql.conf"
	echo "postgresql://jobq@127.0.0.1:$p/jobq"
}

running() {
	[ -f "$data/postmaster.pid" ] && as_owner "$bindir/pg_ctl" -D "$data" status >/dev/null 2>&1
}

# A loopback port nobody listens on now (the server binds it right after;
# start tries again on another port if it lost the race).
free_port() {
	/usr/bin/python3 -c 'import socket
s = socket.socket()
s.bind(("127.0.0.1", 0))
print(s.getsockname()[1])'
}

server_log_tail() {
	[ -f "$log" ] && tail -n 20 "$log" >&2 || true
}

init_cluster() {
	mkdir -p "$dir"
	[ -z "$(ls -A "$dir")" ] || die "$dir is not empty and holds no cluster"
	if [ "$(id -u)" = 0 ]; then
		id -u "$user" >/dev/null 2>&1 ||
			die "no user $user to own the cluster (initdb cannot run as root); set PG_CLUSTER_USER"
		chown "$user" "$dir"
		as_owner test -w "$dir" ||
			die "user $user cannot write $dir (is every parent directory searchable by it?)"
	fi
	chmod 0700 "$dir"
	mkdir -p "$sock"
	[ "$(id -u)" = 0 ] && chown "$user" "$sock"
	if ! as_owner "$bindir/initdb" -D "$data" -U postgres --auth=trust \
		--encoding=UTF8 --locale=C --no-instructions >"$dir/initdb.log" 2>&1; then
		cat "$dir/initdb.log" >&2
		die "initdb failed in $data"
	fi
	# Only the socket and loopback, trusted; nothing else is let in.
	cat >"$data/pg_hba.conf" <<-EOF
		local all all trust
		host all all 127.0.0.1/32 trust
		host all all ::1/128 trust
	EOF
	cat >>"$data/postgresql.conf" <<-EOF
		# pg-cluster.sh
		listen_addresses = '127.0.0.1'
		unix_socket_directories = '$sock'
		max_connections = 300
		fsync = on
		logging_collector = off
	EOF
}

start_server() {
	as_owner "$bindir/pg_ctl" -D "$data" -l "$log" -w -t "$wait_s" start >/dev/null 2>&1
}

# The role and database jobq uses: a plain owner, no superuser.
make_role() {
	as_owner "$bindir/psql" -X -q -v ON_ERROR_STOP=1 -h "$sock" -p "$(port_of)" -U postgres -d postgres <<-EOF >/dev/null
		SELECT 'CREATE ROLE jobq LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE'
		 WHERE NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'jobq') \gexec
		SELECT 'CREATE DATABASE jobq OWNER jobq'
		 WHERE NOT EXISTS (SELECT 1 FROM pg_database WHERE datname = 'jobq') \gexec
	EOF
}

start() {
	if [ ! -f "$data/PG_VERSION" ]; then
		init_cluster
		fresh=1
	else
		fresh=0
	fi
	if running; then
		url
		return 0
	fi
	tries=0
	while :; do
		if [ "$fresh" = 1 ] || [ -z "$(port_of)" ]; then
			echo "port = $(free_port)" >>"$data/postgresql.conf"
		fi
		start_server && break
		tries=$((tries + 1))
		# Another process may have taken the port in between: a new one.
		if [ "$tries" -lt 3 ] && grep -q "Address already in use" "$log" 2>/dev/null; then
			fresh=1
			continue
		fi
		server_log_tail
		die "the server in $data did not start within ${wait_s} s (log: $log)"
	done
	make_role || { server_log_tail; die "could not create role and database jobq"; }
	url
}

stop() {
	[ -f "$data/PG_VERSION" ] || return 0
	running || return 0
	if ! as_owner "$bindir/pg_ctl" -D "$data" -m fast -w -t "$wait_s" stop >/dev/null 2>&1; then
		as_owner "$bindir/pg_ctl" -D "$data" -m immediate -w -t "$wait_s" stop >/dev/null 2>&1 ||
			die "the server in $data did not stop within ${wait_s} s"
	fi
}

restart() {
	[ -f "$data/PG_VERSION" ] || die "no cluster in $dir"
	as_owner "$bindir/pg_ctl" -D "$data" -l "$log" -m fast -w -t "$wait_s" restart >/dev/null 2>&1 || {
		server_log_tail
		die "the server in $data did not restart within ${wait_s} s"
	}
}

case $cmd in
start) start ;;
stop) stop ;;
restart) restart ;;
url) [ -f "$data/PG_VERSION" ] || die "no cluster in $dir"; url ;;
*) usage ;;
esac
