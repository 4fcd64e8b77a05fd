#!/usr/bin/env bash
# .ci/with-pg.sh CMD ARGS...
#
# Runs CMD with DATABASE_URL and TEST_DATABASE_URL set. If DATABASE_URL is
# already set it is used as-is; otherwise a throwaway PostgreSQL is started
# for the duration of CMD and always torn down afterwards. Exits with CMD's
# status.
set -euo pipefail

[[ $# -gt 0 ]] || { echo "usage: $0 CMD [ARGS...]" >&2; exit 2; }

if [[ -n ${DATABASE_URL:-} ]]; then
	export TEST_DATABASE_URL=${TEST_DATABASE_URL:-$DATABASE_URL}
	exec "$@"
fi

pg=$(dirname "${BASH_SOURCE[0]}")/pg.sh
dir=$(mktemp -d "${TMPDIR:-/tmp}/stripesync-pg.XXXXXX")

cleanup() {
	local rc=$?
	trap - EXIT INT TERM
	bash "$pg" stop "$dir" || true
	rm -rf "$dir"
	exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

DATABASE_URL=$(bash "$pg" start "$dir")
export DATABASE_URL
export TEST_DATABASE_URL=${TEST_DATABASE_URL:-$DATABASE_URL}

set +e
"$@"
exit $?
