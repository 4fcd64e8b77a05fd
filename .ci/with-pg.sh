#!/usr/bin/env bash
# .ci/with-pg.sh CMD ARGS...
#
# Runs CMD with DATABASE_URL and TEST_DATABASE_URL set. If DATABASE_URL is
# already set it is used as-is; otherwise a throwaway PostgreSQL is started
# for the duration of CMD and always torn down afterwards. Exits with CMD's
# status.
#
# With WITH_PGBOUNCER=1 (as `make test` sets), it also starts PgBouncer twice
# in front of that server, in session and in transaction mode, and exports
# their ports as TEST_PGBOUNCER_SESSION_PORT and
# TEST_PGBOUNCER_TRANSACTION_PORT (see .ci/pgbouncer.sh).
set -euo pipefail

[[ $# -gt 0 ]] || { echo "usage: $0 CMD [ARGS...]" >&2; exit 2; }

here=$(dirname "${BASH_SOURCE[0]}")
pg=$here/pg.sh
pgbouncer=$here/pgbouncer.sh
dir=
bouncers=()

cleanup() {
	local rc=$?
	trap - EXIT INT TERM
	for b in "${bouncers[@]}"; do bash "$pgbouncer" stop "$b" || true; done
	if [[ -n $dir ]]; then
		bash "$pg" stop "$dir" || true
		rm -rf "$dir"
	fi
	exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

if [[ -z ${DATABASE_URL:-} ]]; then
	dir=$(mktemp -d "${TMPDIR:-/tmp}/stripesync-pg.XXXXXX")
	DATABASE_URL=$(bash "$pg" start "$dir")
elif [[ ${FORCE:-} != 1 ]]; then
	# Tests and the demo create and drop databases, install fixtures and
	# write rows: refuse a server that does not look like a throwaway.
	re='^postgres(ql)?://([^@/]*@)?(127\.0\.0\.1|localhost|\[::1\])(:[0-9]+)?/([^?]*)'
	if [[ ! $DATABASE_URL =~ $re ]] || [[ ! ${BASH_REMATCH[5]} =~ (test|demo|stripesync|throwaway|tmp|dev) ]]; then
		echo "with-pg.sh: DATABASE_URL does not look like a throwaway database (want a local host and a" \
			"database named like test, demo, dev or stripesync); tests and the demo write to it." \
			"Unset it to get a throwaway PostgreSQL, or set FORCE=1 to use it anyway." >&2
		exit 2
	fi
fi
export DATABASE_URL
export TEST_DATABASE_URL=${TEST_DATABASE_URL:-$DATABASE_URL}

if [[ ${WITH_PGBOUNCER:-} == 1 ]]; then
	[[ $TEST_DATABASE_URL =~ @(127\.0\.0\.1|localhost):([0-9]+)/ ]] ||
		{ echo "with-pg.sh: WITH_PGBOUNCER=1 needs a PostgreSQL on 127.0.0.1 (TEST_DATABASE_URL)" >&2; exit 1; }
	pg_port=${BASH_REMATCH[2]}
	for mode in session transaction; do
		b=$(mktemp -d "${TMPDIR:-/tmp}/stripesync-pgbouncer.XXXXXX")
		bouncers+=("$b")
		port=$(bash "$pgbouncer" start "$b" "$pg_port" "$mode")
		export "TEST_PGBOUNCER_${mode^^}_PORT=$port"
	done
fi

set +e
"$@"
exit $?
