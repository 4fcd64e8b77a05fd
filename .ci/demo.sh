#!/usr/bin/env bash
# The main job end to end on embedded defaults (run through `make demo`, which
# provides DATABASE_URL): the LodgeTix fixture with sample data, the built-in
# Stripe emulator unless STRIPE_SECRET_KEY is set, a worker, a few edits, and
# a printout of jobs and the resulting Stripe objects.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

: "${DATABASE_URL:?DATABASE_URL must be set (make demo starts a throwaway PostgreSQL)}"
work=$(mktemp -d)
pids=()
cleanup() {
	for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
	wait 2>/dev/null || true
	rm -rf "$work"
}
trap cleanup EXIT

# River's tables and ours live in the sync schema; the demo's queries name
# them unqualified, as the product's own connections do.
export PGOPTIONS="-c search_path=${STRIPE_SYNC_SCHEMA:-stripe_sync},public"
step() { printf '\n\033[1m== %s\033[0m\n' "$*"; }
sql() { psql "$DATABASE_URL" -v ON_ERROR_STOP=1 -qAt -c "$1"; }
table() { psql "$DATABASE_URL" -v ON_ERROR_STOP=1 -q -P pager=off -c "$1"; }
free_port() {
	local p
	for _ in $(seq 50); do
		p=$((20000 + RANDOM % 20000))
		(exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null || { echo "$p"; return; }
	done
	echo "demo: no free port" >&2
	exit 1
}
wait_idle() {
	for _ in $(seq 300); do
		busy=$(sql "SELECT count(*) FROM river_job WHERE kind IN ('stripe_sync_event','stripe_sync_ticket','stripe_sync_org','stripe_sync_webhook')
			AND state IN ('available','running','retryable','scheduled','pending')")
		[[ $busy == 0 ]] && return
		sleep 0.1
	done
	echo "demo: jobs still busy after 30 s" >&2
	exit 1
}

step "build"
go build -o "$work/syncctl" ./cmd/syncctl
syncctl() { "$work/syncctl" "$@"; }

if [[ -z ${STRIPE_SECRET_KEY:-} ]]; then
	step "start the built-in Stripe emulator"
	export STRIPE_SECRET_KEY=sk_test_demo_emulator_key
	# The emulator signs the events it sends the worker's webhook endpoint
	# with this secret, as Stripe signs a Connect endpoint's.
	export STRIPE_WEBHOOK_SECRET=whsec_demo_emulator_secret
	hook_port=$(free_port)
	port=$(free_port)
	"$work/syncctl" stripe-emulator --addr "127.0.0.1:$port" \
		--webhook-url "http://127.0.0.1:$hook_port/stripe/webhooks" 2>"$work/emulator.log" &
	pids+=($!)
	export STRIPE_API_BASE="http://127.0.0.1:$port"
	for _ in $(seq 100); do curl -fs "$STRIPE_API_BASE/_emulator/stats" >/dev/null && break; sleep 0.05; done
	echo "emulator at $STRIPE_API_BASE"
fi

step "migrate (fixture schema + sample data: the triggers enqueue a job per row)"
syncctl migrate --with-fixture --sample-data
table "SELECT kind, count(*) AS jobs, min(state::text) AS state FROM river_job GROUP BY kind ORDER BY kind"

step "start a worker"
hook_args=()
[[ -n ${hook_port:-} ]] && hook_args=(--webhook-addr "127.0.0.1:$hook_port")
"$work/syncctl" worker --metrics-addr "127.0.0.1:$(free_port)" --concurrency 4 "${hook_args[@]}" 2>"$work/worker.log" &
pids+=($!)
wait_idle
table "SELECT e.title, e.stripe_product_id, o.stripe_onbehalfof AS account FROM events e JOIN organisations o USING (organisation_id) ORDER BY e.title"

step "a few edits: rename an event, change a price, rename a ticket, unpublish, delete, add an event with a ticket"
sql "UPDATE events SET title = 'Grand Installation 2026 (Black Tie)' WHERE slug = 'grand-installation-2026'"
sql "UPDATE event_tickets SET price = 99.95 WHERE name = 'Mason'"
sql "UPDATE event_tickets SET name = 'Guest of a Mason' WHERE name = 'Guest'"
sql "UPDATE events SET is_published = false WHERE slug = 'installation-banquet-2026'"
sql "DELETE FROM events WHERE slug = 'harmony-ladies-night'"
sql "BEGIN;
     INSERT INTO events (event_id, organisation_id, title, description, type, slug, is_published)
     VALUES ('0e000000-0000-4000-8000-0000000000ff', '0a000000-0000-4000-8000-000000000002', 'Harmony Christmas Social',
             'Carols and supper.', 'social', 'harmony-christmas', true);
     INSERT INTO event_tickets (id, event_id, name, price, total_capacity)
     VALUES ('07000000-0000-4000-8000-0000000000ff', '0e000000-0000-4000-8000-0000000000ff', 'Supper', 45.00, 80);
     COMMIT;"
wait_idle

step "hand enqueue of an unchanged event: a job that makes no Stripe write"
syncctl enqueue event 0e000000-0000-4000-8000-000000000001
wait_idle

if [[ -n ${hook_port:-} ]]; then
	step "someone renames an event's Product in the Stripe Dashboard: the signed webhook makes the worker repair it"
	IFS='|' read -r prod acct < <(sql "SELECT e.stripe_product_id, o.stripe_onbehalfof FROM events e JOIN organisations o USING (organisation_id)
		WHERE e.slug = 'grand-installation-2026'")
	name_of() {
		curl -fs "$STRIPE_API_BASE/_emulator/state" | python3 -c '
import json, sys
for p in json.load(sys.stdin)["accounts"][sys.argv[1]]["products"]:
    if p["id"] == sys.argv[2]: print(p["name"])' "$acct" "$prod"
	}
	curl -fs -X POST "$STRIPE_API_BASE/_emulator/dashboard/$prod" -H 'Content-Type: application/json' \
		-d "{\"account\": \"$acct\", \"name\": \"Grand Installation (renamed in the Dashboard)\"}"
	start=$(date +%s%N)
	echo "Dashboard edit: name := 'Grand Installation (renamed in the Dashboard)'"
	for _ in $(seq 100); do
		[[ $(name_of) == 'Grand Installation 2026 (Black Tie)' ]] && break
		sleep 0.05
	done
	echo "Stripe now:     $(name_of)  (seen after $(( ($(date +%s%N) - start) / 1000000 )) ms of polling)"
	wait_idle
	table "SELECT type, disposition, count(*) FROM stripe_sync_webhook_event GROUP BY 1, 2 ORDER BY 1, 2"
	table "SELECT entity_type, action, status, error_message FROM stripe_sync_log
	       WHERE error_message LIKE '%drift%' ORDER BY created_at"
fi

step "jobs"
table "SELECT id, kind, coalesce(args->>'event_id', args->>'ticket_id', args->>'organisation_id') AS entity, state, attempt
       FROM river_job WHERE kind LIKE 'stripe_sync%' AND kind <> 'stripe_sync_resync' ORDER BY id"

step "sync log (one row per attempt)"
table "SELECT entity_type, entity_id, action, status, stripe_object_id, coalesce(error_message, '') AS message
       FROM stripe_sync_log ORDER BY created_at, id"

step "Stripe objects"
if [[ -n ${STRIPE_API_BASE:-} ]] && curl -fs "$STRIPE_API_BASE/_emulator/state" >"$work/state.json"; then
	python3 - "$work/state.json" <<'PY'
import json, sys
state = json.load(open(sys.argv[1]))
for acct, objs in sorted(state.get("accounts", {}).items()):
    print(f"account {acct}")
    for p in objs.get("products") or []:
        print(f"  product {p['id']:<44} {'active  ' if p['active'] else 'archived'} {p['name']}")
    for p in objs.get("prices") or []:
        amount = f"{p['unit_amount'] / 100:.2f} {p['currency'].upper()}"
        print(f"  price   {p['id']:<44} {'active  ' if p['active'] else 'archived'} {amount:>12}  {p.get('nickname') or ''}  (product {p['product']})")
PY
	curl -fs "$STRIPE_API_BASE/_emulator/stats" | python3 -c '
import json, sys
s = json.load(sys.stdin)
print("\nemulator: %d requests, %d writes" % (s["request_count"], s["write_count"]))'
else
	echo "(real Stripe: see the dashboard; the sync log above names every object)"
fi
