#!/usr/bin/env bash
# .ci/browser-check.sh (run through `make test/browser`)
#
# Renders `syncctl ui` once in headless Chromium and checks that a job this
# project inserted shows on River UI's jobs page: the JavaScript app must load,
# call the jobs API and draw the job. Installs Debian's chromium when missing
# (as root). Always uses its own throwaway PostgreSQL (.ci/with-pg.sh), never
# DATABASE_URL: it migrates the fixture schema and inserts a job.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

if [[ -z ${STRIPESYNC_BROWSER_CHECK_DB:-} ]]; then
	if ! command -v chromium >/dev/null; then
		[[ $EUID -eq 0 ]] || { echo "browser-check: chromium is not installed (apt-get install chromium)" >&2; exit 1; }
		echo "browser-check: installing chromium with apt-get" >&2
		export DEBIAN_FRONTEND=noninteractive
		apt-get update >&2 && apt-get install -y --no-install-recommends chromium >&2
	fi
	exec env -u DATABASE_URL -u TEST_DATABASE_URL STRIPESYNC_BROWSER_CHECK_DB=1 .ci/with-pg.sh "$0"
fi

start=$SECONDS
work=$(mktemp -d)
pid=
cleanup() {
	[[ -n $pid ]] && kill "$pid" 2>/dev/null && wait "$pid" 2>/dev/null
	rm -rf "$work"
}
trap cleanup EXIT

free_port() {
	local p
	for _ in $(seq 50); do
		p=$((20000 + RANDOM % 20000))
		(exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null || { echo "$p"; return; }
	done
	echo "browser-check: no free port" >&2
	exit 1
}

go build -o "$work/syncctl" ./cmd/syncctl
"$work/syncctl" migrate --with-fixture >/dev/null
"$work/syncctl" enqueue event 0e000000-0000-4000-8000-00000000b0b0 >/dev/null

port=$(free_port)
"$work/syncctl" ui --addr "127.0.0.1:$port" 2>"$work/ui.log" &
pid=$!
for _ in $(seq 100); do
	curl -fs -o /dev/null "http://127.0.0.1:$port/api/health-checks/minimal" && break
	kill -0 "$pid" 2>/dev/null || { cat "$work/ui.log" >&2; exit 1; }
	sleep 0.1
done

url="http://127.0.0.1:$port/jobs?state=available"
timeout 120 chromium --headless --no-sandbox --disable-gpu --disable-quic --no-first-run \
	--disable-background-networking --disable-component-update --disable-sync \
	--user-data-dir="$work/profile" --virtual-time-budget=10000 --dump-dom "$url" \
	>"$work/dom.html" 2>"$work/chromium.log" || { tail -20 "$work/chromium.log" >&2; exit 1; }

if grep -q stripe_sync_event "$work/dom.html"; then
	echo "browser-check: ok: River UI rendered job kind stripe_sync_event at $url ($((SECONDS - start)) s)"
else
	echo "browser-check: FAIL: stripe_sync_event not on the rendered page $url; its DOM begins:" >&2
	head -c 2000 "$work/dom.html" >&2
	exit 1
fi
