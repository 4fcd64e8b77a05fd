#!/usr/bin/env bash
# Throwaway PostgreSQL for tests and demos.
#
#   .ci/pg.sh start DIR   initdb into DIR/data, start on a free 127.0.0.1 port,
#                         create database "stripesync", print its URL on stdout.
#   .ci/pg.sh stop DIR    stop the server (immediate) and remove DIR.
#
# PostgreSQL refuses to run as root, so as root the server runs as the system
# user "stripesync" (created if missing). Progress goes to stderr; stdout
# carries only the URL.
set -euo pipefail

PG_USER=stripesync
DB_NAME=stripesync
MARKER=.stripesync-pg # marks DIR as ours, so "stop" never removes a foreign directory

log() { echo "pg.sh: $*" >&2; }
die() { log "error: $*"; exit 1; }

# bindir finds the PostgreSQL server binaries, installing them if root and missing.
bindir() {
	local d
	for d in "${PG_BINDIR:-}" /usr/lib/postgresql/15/bin $(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -rV); do
		[[ -n $d && -x $d/initdb && -x $d/pg_ctl ]] && { echo "$d"; return; }
	done
	[[ $EUID -eq 0 ]] || die "PostgreSQL server binaries not found (install postgresql-15 or set PG_BINDIR)"
	log "installing postgresql-15 with apt-get"
	export DEBIAN_FRONTEND=noninteractive
	apt-get update >&2 && apt-get install -y postgresql-15 >&2
	[[ -x /usr/lib/postgresql/15/bin/initdb ]] || die "postgresql-15 installed but initdb is missing"
	echo /usr/lib/postgresql/15/bin
}

# as USER CMD... runs CMD as USER (directly when that is us), from / so an
# unreadable working directory does not bother PostgreSQL.
as() {
	local user=$1; shift
	if [[ $user == "$(id -un)" ]]; then
		(cd / && "$@")
	elif command -v runuser >/dev/null; then
		(cd / && runuser -u "$user" -- "$@")
	else
		(cd / && setpriv --reuid="$user" --regid="$(id -g "$user")" --init-groups -- "$@")
	fi
}

# server_user prints the user who runs (or will run) the server in DIR.
server_user() {
	if [[ -d $1/data ]]; then stat -c %U "$1/data"
	elif [[ $EUID -eq 0 ]]; then echo "$PG_USER"
	else id -un
	fi
}

port_in_use() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

free_port() {
	local p
	for _ in $(seq 100); do
		p=$((15000 + RANDOM % 17000)) # below the Linux ephemeral range
		port_in_use "$p" || { echo "$p"; return; }
	done
	die "no free port found"
}

url() { echo "postgres://postgres@127.0.0.1:$1/$DB_NAME?sslmode=disable"; }

running() { [[ -f $1/data/postmaster.pid ]] && as "$(server_user "$1")" "$BIN/pg_ctl" -D "$1/data" status >/dev/null 2>&1; }

start() {
	local dir=$1 user port started=
	mkdir -p "$dir"
	dir=$(cd "$dir" && pwd)
	[[ -z $(ls -A "$dir") || -e $dir/$MARKER ]] || die "$dir is not empty and was not made by pg.sh"
	touch "$dir/$MARKER"

	if running "$dir"; then
		log "already running in $dir"
		url "$(cat "$dir/port")"
		return
	fi

	user=$(server_user "$dir")
	if [[ $EUID -eq 0 && $user == "$PG_USER" ]] && ! id "$PG_USER" >/dev/null 2>&1; then
		log "creating system user $PG_USER"
		useradd --system --no-create-home --shell /usr/sbin/nologin "$PG_USER"
	fi
	[[ $user == "$(id -un)" ]] || chown "$user" "$dir"
	chmod 700 "$dir"
	as "$user" test -w "$dir" ||
		die "$user cannot reach $dir (a parent directory is not traversable); use a directory under /tmp"
	# The socket path must fit in sun_path (107 bytes).
	((${#dir} < 80)) || die "$dir is too long for a unix socket path; use a shorter directory"

	if [[ ! -f $dir/data/PG_VERSION ]]; then
		log "initdb $dir/data (as $user)"
		as "$user" "$BIN/initdb" -D "$dir/data" -U postgres --auth=trust -E UTF8 --locale=C.UTF-8 >"$dir/initdb.log" 2>&1 ||
			{ tail -n 20 "$dir/initdb.log" >&2; die "initdb failed"; }
		cat >"$dir/data/pg_hba.conf" <<-EOF
			local all all              trust
			host  all all 127.0.0.1/32 trust
			host  all all ::1/128      trust
		EOF
		cat >>"$dir/data/postgresql.conf" <<-EOF

			# pg.sh: throwaway test server
			listen_addresses = '127.0.0.1'
			unix_socket_directories = '$dir'
			fsync = off
			synchronous_commit = off
			full_page_writes = off
			max_connections = 300
			shared_buffers = 128MB
		EOF
	fi

	for attempt in 1 2 3 4 5; do
		port=$(free_port)
		log "starting on 127.0.0.1:$port (as $user)"
		rm -f "$dir/postgres.log"
		if as "$user" "$BIN/pg_ctl" -D "$dir/data" -l "$dir/postgres.log" -o "-p $port" -w -t 60 start >/dev/null 2>&1; then
			started=1
			break
		fi
		grep -qE 'could not bind|Address already in use|could not create any TCP/IP sockets' "$dir/postgres.log" 2>/dev/null || break
		log "port $port was taken, retrying ($attempt)"
	done
	if [[ -z $started ]]; then
		log "server log tail ($dir/postgres.log):"
		tail -n 30 "$dir/postgres.log" >&2 2>/dev/null || true
		die "PostgreSQL did not start"
	fi
	echo "$port" >"$dir/port"

	local deadline=$((SECONDS + 30))
	until "$BIN/pg_isready" -q -h 127.0.0.1 -p "$port" -U postgres; do
		if ((SECONDS > deadline)); then
			tail -n 30 "$dir/postgres.log" >&2
			die "PostgreSQL on port $port not ready after 30s"
		fi
		sleep 0.1
	done

	if ! "$BIN/psql" -qAtX -h 127.0.0.1 -p "$port" -U postgres -d postgres \
		-c "select 1 from pg_database where datname = '$DB_NAME'" | grep -q 1; then
		"$BIN/createdb" -h 127.0.0.1 -p "$port" -U postgres "$DB_NAME"
	fi
	log "ready"
	url "$port"
}

stop() {
	local dir=$1
	[[ -e $dir ]] || return 0
	[[ -e $dir/$MARKER ]] || die "$dir was not made by pg.sh; not removing it"
	if [[ -f $dir/data/postmaster.pid ]]; then
		BIN=$(bindir)
		local pid
		pid=$(head -n 1 "$dir/data/postmaster.pid")
		log "stopping server in $dir"
		as "$(server_user "$dir")" "$BIN/pg_ctl" -D "$dir/data" -m immediate -w stop >/dev/null 2>&1 || true
		# The detached postmaster is reaped by init; wait (briefly) until it is gone.
		for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
	fi
	rm -rf "$dir"
}

[[ $# -eq 2 && ($1 == start || $1 == stop) ]] || { echo "usage: $0 start|stop DIR" >&2; exit 2; }
[[ $1 == stop ]] || BIN=$(bindir)
"$1" "$2"
