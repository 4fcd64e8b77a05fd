#!/usr/bin/env bash
# PgBouncer in front of the throwaway PostgreSQL, for the tests that prove the
# worker refuses a transaction-mode pooler and works behind a session-mode one.
#
#   .ci/pgbouncer.sh start DIR PG_PORT MODE   start PgBouncer (pool_mode MODE:
#                                             session or transaction) on a free
#                                             127.0.0.1 port forwarding every
#                                             database to PG_PORT; print its port.
#   .ci/pgbouncer.sh stop DIR                 stop it and remove DIR.
#
# Installs Debian's pgbouncer package when missing (as root). PgBouncer will
# not run as root, so as root it runs as the system user "stripesync", like
# pg.sh's server. Progress goes to stderr; stdout carries only the port.
set -euo pipefail

RUN_USER=stripesync
MARKER=.stripesync-pgbouncer

log() { echo "pgbouncer.sh: $*" >&2; }
die() { log "error: $*"; exit 1; }

binary() {
	local b
	b=$(command -v pgbouncer || true)
	[[ -z $b && -x /usr/sbin/pgbouncer ]] && b=/usr/sbin/pgbouncer
	if [[ -z $b ]]; then
		[[ $EUID -eq 0 ]] || die "pgbouncer not found (apt-get install pgbouncer)"
		log "installing pgbouncer with apt-get"
		export DEBIAN_FRONTEND=noninteractive
		apt-get install -y -qq pgbouncer >&2 || { apt-get update -qq >&2 && apt-get install -y -qq pgbouncer >&2; }
		# The package starts a system-wide instance on 6432; ours are separate.
		systemctl stop pgbouncer >/dev/null 2>&1 || service pgbouncer stop >/dev/null 2>&1 || true
		b=/usr/sbin/pgbouncer
	fi
	[[ -x $b ]] || die "pgbouncer installed but $b is missing"
	echo "$b"
}

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

port_in_use() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

start() {
	local dir=$1 pg_port=$2 mode=$3 user port bin
	[[ $mode == session || $mode == transaction ]] || die "mode must be session or transaction"
	bin=$(binary)
	mkdir -p "$dir"
	dir=$(cd "$dir" && pwd)
	[[ -z $(ls -A "$dir") || -e $dir/$MARKER ]] || die "$dir is not empty and was not made by pgbouncer.sh"
	touch "$dir/$MARKER"
	user=$(id -un)
	if [[ $EUID -eq 0 ]]; then
		user=$RUN_USER
		id "$user" >/dev/null 2>&1 || useradd --system --no-create-home --shell /usr/sbin/nologin "$user"
		chown "$user" "$dir"
	fi
	# The test server trusts local connections; PgBouncer only needs to know
	# the user names it lets through.
	cat >"$dir/userlist.txt" <<-EOF
		"postgres" ""
		"pgtdbuser" ""
		"stripe_sync_worker" ""
	EOF
	for attempt in 1 2 3 4 5; do
		port=$((15000 + RANDOM % 17000))
		port_in_use "$port" && continue
		cat >"$dir/pgbouncer.ini" <<-EOF
			[databases]
			* = host=127.0.0.1 port=$pg_port

			[pgbouncer]
			listen_addr = 127.0.0.1
			listen_port = $port
			unix_socket_dir =
			auth_type = trust
			auth_file = $dir/userlist.txt
			pool_mode = $mode
			max_client_conn = 500
			default_pool_size = 20
			ignore_startup_parameters = extra_float_digits
			logfile = $dir/pgbouncer.log
			pidfile = $dir/pgbouncer.pid
		EOF
		chown -R "$user" "$dir" 2>/dev/null || true
		if as "$user" "$bin" -d "$dir/pgbouncer.ini" >/dev/null 2>&1; then
			for _ in $(seq 50); do
				port_in_use "$port" && { echo "$port" >"$dir/port"; log "$mode pooler on 127.0.0.1:$port"; echo "$port"; return; }
				sleep 0.1
			done
		fi
		log "attempt $attempt on port $port failed; retrying"
		tail -n 5 "$dir/pgbouncer.log" >&2 2>/dev/null || true
	done
	die "PgBouncer did not start"
}

stop() {
	local dir=$1
	[[ -e $dir ]] || return 0
	[[ -e $dir/$MARKER ]] || die "$dir was not made by pgbouncer.sh; not removing it"
	if [[ -f $dir/pgbouncer.pid ]]; then
		local pid
		pid=$(cat "$dir/pgbouncer.pid")
		kill "$pid" 2>/dev/null || true
		for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
	fi
	rm -rf "$dir"
}

case "${1:-}" in
start) [[ $# -eq 4 ]] || die "usage: $0 start DIR PG_PORT MODE"; start "$2" "$3" "$4" ;;
stop) [[ $# -eq 2 ]] || die "usage: $0 stop DIR"; stop "$2" ;;
*) echo "usage: $0 start DIR PG_PORT MODE | stop DIR" >&2; exit 2 ;;
esac
