package e2e

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/require"

	"github.com/lodgetix/stripe-sync/jobs"
	"github.com/lodgetix/stripe-sync/stripeclient"
	"github.com/lodgetix/stripe-sync/stripeclient/emulator"
)

// chaosDefaultDuration keeps the chaos test inside `make test`'s budget;
// `make chaos` sets CHAOS_DURATION=3m.
const chaosDefaultDuration = 10 * time.Second

// chaosOrgs are the organisations the chaos test mutates; each may move
// between its two accounts during the run.
var chaosOrgs = []struct{ id, accountA, accountB string }{
	{"0a000000-0000-4000-8000-00000000c001", "acct_chaos_1a", "acct_chaos_1b"},
	{"0a000000-0000-4000-8000-00000000c002", "acct_chaos_2a", "acct_chaos_2b"},
	{"0a000000-0000-4000-8000-00000000c003", "acct_chaos_3a", "acct_chaos_3b"},
}

// chaosMoves is the order of the organisations' account changes (to: 0 no
// account, 1 its account A, 2 its account B): the first organisation loses
// its account and gets it back, the last moves away from its account A while
// A refuses us (see refuseFrom), the second moves and loses its account.
var chaosMoves = []struct{ org, to int }{
	{0, 0}, {2, 2}, {0, 1}, {1, 2}, {1, 0}, {1, 1},
}

// TestChaos_convergence mutates events and tickets at random from several
// goroutines while three worker processes sync them, the emulator injects
// 500s, lost responses, 429s and latency, and workers are killed with
// SIGKILL and restarted. Changes are reverted right after they are made (so
// some revert a write whose answer was lost), organisations move between
// accounts and to none and back, tickets move between events, and for a
// while one account refuses every request (deauthorised). Once the mutations
// stop and the queue drains, Stripe must match the database exactly.
func TestChaos_convergence(t *testing.T) {
	t.Parallel()
	duration := chaosDefaultDuration
	if s := os.Getenv("CHAOS_DURATION"); s != "" {
		d, err := time.ParseDuration(s)
		require.NoError(t, err, "CHAOS_DURATION")
		duration = d
	}
	seed := uint64(time.Now().UnixNano())
	if s := os.Getenv("CHAOS_SEED"); s != "" {
		var err error
		seed, err = strconv.ParseUint(s, 10, 64)
		require.NoError(t, err, "CHAOS_SEED")
	}
	rng := rand.New(rand.NewPCG(seed, 1))
	t.Logf("chaos: %s of mutations, CHAOS_SEED=%d", duration, seed)

	h := newHarness(t, "sk_test_e2e_chaos_0123456789")
	proxy := startRefusingProxy(t, h.apiBase)
	h.workerAPIBase = proxy.url
	c := &chaos{pool: h.pool, everEvents: map[string]bool{}, everTickets: map[string]bool{},
		rolledBack: map[string]bool{}, mutations: map[string]int{}, rejected: map[string]int{}}
	ctx := context.Background()
	for _, o := range chaosOrgs {
		h.exec(`INSERT INTO organisations (organisation_id, name, stripe_onbehalfof) VALUES ($1, 'Chaos', $2)`, o.id, o.accountA)
		for range 3 {
			require.NoError(t, c.insertEvent(ctx, rng, o.id, 2))
		}
	}
	clear(c.mutations)

	// Every request may be slow; a few fail in each way Stripe fails. The
	// probabilities are per request, and a sync makes one to four.
	for _, f := range []emulator.Fault{
		{Kind: emulator.FaultLatency, Probability: 0.2, Latency: 20 * time.Millisecond, LatencyMax: 400 * time.Millisecond},
		{Kind: emulator.FaultLatency, Probability: 0.01, Latency: 2 * time.Second, LatencyMax: 6 * time.Second},
		{Kind: emulator.FaultError500, Probability: 0.03},
		// Stripe stores a 500 raised mid-request under the key and replays it.
		{Kind: emulator.FaultError500Stored, Method: "POST", Probability: 0.02, Applied: true},
		{Kind: emulator.FaultResponseLost, Probability: 0.04},
		{Kind: emulator.FaultRateLimit, Probability: 0.04, RetryAfter: time.Second},
	} {
		h.addFault(f)
	}

	// Short job timeouts, so a SIGKILLed worker's jobs come back in seconds.
	cfg := workerConfig{Concurrency: 4, JobTimeout: 5 * time.Second, RescueAfter: 6 * time.Second}
	workers := make([]*worker, 3)
	starts := make([]int, len(workers))
	for i := range workers {
		starts[i] = 1
		workers[i] = h.startWorker(fmt.Sprintf("worker-%d", i+1), cfg)
	}

	start := time.Now()
	mctx, stopMutators := context.WithCancel(ctx)
	var wg sync.WaitGroup
	for i := range 3 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c.mutate(mctx, rand.New(rand.NewPCG(seed, uint64(i)+2)))
		}()
	}

	// Kills stop before the end so the last rescue is not what the drain
	// waits for; account moves every 30 s (once, early, in a short run).
	kills := 0
	nextKill := start.Add(2*time.Second + time.Duration(rng.Int64N(int64(time.Second))))
	moveEvery := min(30*time.Second, duration*2/5)
	nextMove, moves := start.Add(moveEvery), 0
	// One account refuses every request for a while (deauthorised), then
	// answers again, so the run can still converge.
	refusing := chaosOrgs[len(chaosOrgs)-1].accountA
	refuseFrom, refuseUntil, refusingNow := start.Add(duration*3/10), start.Add(duration*6/10), false
	// reauthorised is what an operator does once the organisation lets the
	// platform in again: `syncctl enqueue org` for it, which clears the
	// account's unreachable mark and enqueues what is left there.
	reauthorised := func() {
		proxy.refuse("")
		ids := make([]string, len(chaosOrgs))
		for i, o := range chaosOrgs {
			ids[i] = o.id
		}
		h.exec(`SELECT stripe_sync_enqueue_many('org', $1::uuid[], 1)`, ids)
	}
	for time.Since(start) < duration {
		time.Sleep(50 * time.Millisecond)
		now := time.Now()
		if !refusingNow && now.After(refuseFrom) && now.Before(refuseUntil) {
			proxy.refuse(refusing)
			refusingNow = true
			c.count("account starts refusing (deauthorised)")
		}
		if refusingNow && now.After(refuseUntil) {
			reauthorised()
			refusingNow = false
		}
		if now.After(nextKill) && now.Sub(start) < duration*85/100 {
			i := rng.IntN(len(workers))
			workers[i].kill(t)
			kills++
			time.Sleep(time.Duration(200+rng.IntN(500)) * time.Millisecond)
			starts[i]++
			workers[i] = h.startWorker(fmt.Sprintf("worker-%d#%d", i+1, starts[i]), cfg)
			nextKill = time.Now().Add(3*time.Second + time.Duration(rng.Int64N(int64(2*time.Second))))
		}
		if now.After(nextMove) {
			m := chaosMoves[moves%len(chaosMoves)]
			o := chaosOrgs[m.org]
			switch to := []string{"", o.accountA, o.accountB}[m.to]; to {
			case "":
				h.exec(`UPDATE organisations SET stripe_onbehalfof = NULL WHERE organisation_id = $1`, o.id)
				c.count("organisation's account set to NULL")
			default:
				h.exec(`UPDATE organisations SET stripe_onbehalfof = $2 WHERE organisation_id = $1`, o.id, to)
				c.count("move organisation to another account")
			}
			moves++
			nextMove = now.Add(moveEvery)
		}
	}
	stopMutators()
	wg.Wait()
	if refusingNow {
		reauthorised()
	}
	mutating := time.Since(start)
	c.mu.Lock()
	c.mutations["requests refused by the deauthorised account"] = int(proxy.refused.Load())
	c.mu.Unlock()

	require.NoError(t, h.ctl.ClearFaults(ctx))
	drainStart := time.Now()
	hurried := h.waitIdle(max(2*time.Minute, duration), true)
	drain := time.Since(drainStart)

	stats, err := h.ctl.Stats(ctx)
	require.NoError(t, err)
	summary := c.summary(h, stats, mutating, drain, kills, hurried)
	t.Log(summary)

	require.Empty(t, c.unexpected, "host writes the sync must never break")
	require.Empty(t, stats.Overlaps, "two writes in flight on one Stripe object at once")
	states := h.jobStates()
	require.Equal(t, map[string]int{"completed": states["completed"]}, states,
		"every sync job completed: none discarded, cancelled or unfinished")
	rows, err := h.pool.Query(ctx, `
		SELECT entity_type || ' ' || entity_id || ' wanted ' || wanted_version || ' handled ' || handled_version
		FROM stripe_sync_state WHERE wanted_version > handled_version ORDER BY 1`)
	require.NoError(t, err)
	unhandled, err := pgx.CollectRows(rows, pgx.RowTo[string])
	require.NoError(t, err)
	require.Empty(t, unhandled, "every committed change was handled by a job")
	require.Empty(t, c.divergences(t, h), "Stripe differs from the database")
	for i, w := range workers {
		require.True(t, w.Running(), "worker %d", i+1)
		w.signal(t, syscall.SIGTERM)
	}
	for _, w := range workers {
		require.Equal(t, 0, w.waitExit(t, 30*time.Second))
	}
}

// chaos is the mutators' shared record of what they did.
type chaos struct {
	pool       *pgxpool.Pool
	nextEvent  atomic.Int64
	nextTicket atomic.Int64

	mu sync.Mutex
	// everEvents and everTickets hold every id ever committed, deleted or
	// not: a Stripe object for any other id is a leak.
	everEvents  map[string]bool
	everTickets map[string]bool
	// rolledBack holds ids inserted by transactions that rolled back.
	rolledBack map[string]bool
	mutations  map[string]int
	// rejected counts host writes PostgreSQL refused for a reason of the
	// mutators' own making (a ticket for an event deleted meanwhile).
	rejected   map[string]int
	unexpected []string
}

func (c *chaos) count(op string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.mutations[op]++
}

func (c *chaos) committed(events, tickets []string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, id := range events {
		c.everEvents[id] = true
	}
	for _, id := range tickets {
		c.everTickets[id] = true
	}
}

// chaosOp is one kind of mutation and how often it is picked.
type chaosOp struct {
	name   string
	weight int
	run    func(c *chaos, ctx context.Context, rng *rand.Rand) error
}

var chaosOps = []chaosOp{
	{"insert event with tickets", 8, func(c *chaos, ctx context.Context, rng *rand.Rand) error {
		return c.insertEvent(ctx, rng, chaosOrgs[rng.IntN(len(chaosOrgs))].id, rng.IntN(4))
	}},
	{"rename event", 12, func(c *chaos, ctx context.Context, rng *rand.Rand) error {
		return c.exec(ctx, `UPDATE events SET title = $1 WHERE event_id = (SELECT event_id FROM events ORDER BY random() LIMIT 1)`,
			randomTitle(rng))
	}},
	{"rename event 5 times in a row", 2, func(c *chaos, ctx context.Context, rng *rand.Rand) error {
		var id string
		if err := c.pool.QueryRow(ctx, `SELECT event_id FROM events ORDER BY random() LIMIT 1`).Scan(&id); err != nil {
			return noRows(err)
		}
		for range 5 {
			if err := c.exec(ctx, `UPDATE events SET title = $2 WHERE event_id = $1`, id, randomTitle(rng)); err != nil {
				return err
			}
		}
		return nil
	}},
	{"change event description and image", 5, func(c *chaos, ctx context.Context, rng *rand.Rand) error {
		desc, img := randomDescription(rng), randomImage(rng)
		return c.exec(ctx, `UPDATE events SET description = $1, image_url = $2
			WHERE event_id = (SELECT event_id FROM events ORDER BY random() LIMIT 1)`, desc, img)
	}},
	{"unpublish or republish event", 8, func(c *chaos, ctx context.Context, _ *rand.Rand) error {
		return c.exec(ctx, `UPDATE events SET is_published = NOT coalesce(is_published, false)
			WHERE event_id = (SELECT event_id FROM events ORDER BY random() LIMIT 1)`)
	}},
	{"delete event", 3, func(c *chaos, ctx context.Context, _ *rand.Rand) error {
		return c.exec(ctx, `DELETE FROM events WHERE event_id = (SELECT event_id FROM events ORDER BY random() LIMIT 1)`)
	}},
	{"insert ticket", 8, func(c *chaos, ctx context.Context, rng *rand.Rand) error {
		id := uuidN("07000000", int(c.nextTicket.Add(1)))
		err := c.exec(ctx, `INSERT INTO event_tickets (id, event_id, name, price, total_capacity)
			SELECT $1, event_id, $2, $3::numeric, $4 FROM events ORDER BY random() LIMIT 1`,
			id, randomTicketName(rng), randomPrice(rng), 50+rng.IntN(500))
		if err == nil {
			c.committed(nil, []string{id})
		}
		return err
	}},
	{"change ticket price", 12, func(c *chaos, ctx context.Context, rng *rand.Rand) error {
		return c.exec(ctx, `UPDATE event_tickets SET price = $1::numeric
			WHERE id = (SELECT id FROM event_tickets ORDER BY random() LIMIT 1)`, randomPrice(rng))
	}},
	{"rename ticket", 8, func(c *chaos, ctx context.Context, rng *rand.Rand) error {
		return c.exec(ctx, `UPDATE event_tickets SET name = $1
			WHERE id = (SELECT id FROM event_tickets ORDER BY random() LIMIT 1)`, randomTicketName(rng))
	}},
	{"move ticket to another event", 2, func(c *chaos, ctx context.Context, _ *rand.Rand) error {
		return c.exec(ctx, `UPDATE event_tickets SET event_id = (SELECT event_id FROM events ORDER BY random() LIMIT 1)
			WHERE id = (SELECT id FROM event_tickets ORDER BY random() LIMIT 1)`)
	}},
	{"change ticket price, then back", 4, func(c *chaos, ctx context.Context, rng *rand.Rand) error {
		// A revert soon after a change: when the change's write lost its
		// answer, the revert equals what was last recorded.
		var id, was string
		err := c.pool.QueryRow(ctx, `SELECT id, coalesce(price::text, '1') FROM event_tickets ORDER BY random() LIMIT 1`).Scan(&id, &was)
		if err != nil {
			return noRows(err)
		}
		if err := c.exec(ctx, `UPDATE event_tickets SET price = $2::numeric WHERE id = $1`, id, randomPrice(rng)); err != nil {
			return err
		}
		time.Sleep(time.Duration(20+rng.IntN(600)) * time.Millisecond)
		return c.exec(ctx, `UPDATE event_tickets SET price = $2::numeric WHERE id = $1`, id, was)
	}},
	{"unpublish event, then republish", 3, func(c *chaos, ctx context.Context, rng *rand.Rand) error {
		var id string
		err := c.pool.QueryRow(ctx, `SELECT event_id FROM events WHERE is_published ORDER BY random() LIMIT 1`).Scan(&id)
		if err != nil {
			return noRows(err)
		}
		if err := c.exec(ctx, `UPDATE events SET is_published = false WHERE event_id = $1`, id); err != nil {
			return err
		}
		time.Sleep(time.Duration(20+rng.IntN(600)) * time.Millisecond)
		return c.exec(ctx, `UPDATE events SET is_published = true WHERE event_id = $1`, id)
	}},
	{"delete ticket", 4, func(c *chaos, ctx context.Context, _ *rand.Rand) error {
		return c.exec(ctx, `DELETE FROM event_tickets WHERE id = (SELECT id FROM event_tickets ORDER BY random() LIMIT 1)`)
	}},
	{"rename event and reprice its ticket in one transaction", 4, func(c *chaos, ctx context.Context, rng *rand.Rand) error {
		// Event before ticket: the order a cascading delete locks in, so
		// the mutators cannot deadlock one another.
		return pgx.BeginFunc(ctx, c.pool, func(tx pgx.Tx) error {
			var id string
			err := tx.QueryRow(ctx, `UPDATE events SET title = $1
				WHERE event_id = (SELECT event_id FROM event_tickets ORDER BY random() LIMIT 1) RETURNING event_id`,
				randomTitle(rng)).Scan(&id)
			if err != nil {
				return noRows(err)
			}
			_, err = tx.Exec(ctx, `UPDATE event_tickets SET price = $2::numeric
				WHERE id = (SELECT id FROM event_tickets WHERE event_id = $1 ORDER BY random() LIMIT 1)`, id, randomPrice(rng))
			return err
		})
	}},
	{"insert event and ticket, then roll back", 2, func(c *chaos, ctx context.Context, rng *rand.Rand) error {
		event, ticket := uuidN("0e000000", int(c.nextEvent.Add(1))), uuidN("07000000", int(c.nextTicket.Add(1)))
		tx, err := c.pool.Begin(ctx)
		if err != nil {
			return err
		}
		defer func() { _ = tx.Rollback(ctx) }()
		if _, err := tx.Exec(ctx, `INSERT INTO events (event_id, organisation_id, title, is_published) VALUES ($1, $2, $3, true)`,
			event, chaosOrgs[rng.IntN(len(chaosOrgs))].id, randomTitle(rng)); err != nil {
			return err
		}
		if _, err := tx.Exec(ctx, `INSERT INTO event_tickets (id, event_id, name, price) VALUES ($1, $2, 'Never', 1.00)`,
			ticket, event); err != nil {
			return err
		}
		c.mu.Lock()
		c.rolledBack[event], c.rolledBack[ticket] = true, true
		c.mu.Unlock()
		return tx.Rollback(ctx)
	}},
}

// mutate runs random mutations until ctx ends, at a pace the default rate
// limit can follow.
func (c *chaos) mutate(ctx context.Context, rng *rand.Rand) {
	total := 0
	for _, op := range chaosOps {
		total += op.weight
	}
	for ctx.Err() == nil {
		n := rng.IntN(total)
		op := chaosOps[0]
		for _, o := range chaosOps {
			if n < o.weight {
				op = o
				break
			}
			n -= o.weight
		}
		err := op.run(c, ctx, rng)
		var pgErr *pgconn.PgError
		switch {
		case ctx.Err() != nil:
			return
		case err == nil:
			c.count(op.name)
		case errors.As(err, &pgErr) && pgErr.Code == "23503":
			c.mu.Lock()
			c.rejected[op.name+": its event was deleted meanwhile"]++
			c.mu.Unlock()
		default:
			c.mu.Lock()
			c.unexpected = append(c.unexpected, fmt.Sprintf("%s: %v", op.name, err))
			c.mu.Unlock()
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(time.Duration(150+rng.IntN(450)) * time.Millisecond):
		}
	}
}

func (c *chaos) exec(ctx context.Context, sql string, args ...any) error {
	_, err := c.pool.Exec(ctx, sql, args...)
	return err
}

// insertEvent commits an event of org with tickets tickets.
func (c *chaos) insertEvent(ctx context.Context, rng *rand.Rand, org string, tickets int) error {
	event := uuidN("0e000000", int(c.nextEvent.Add(1)))
	var ticketIDs []string
	err := pgx.BeginFunc(ctx, c.pool, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, `
			INSERT INTO events (event_id, organisation_id, title, description, type, slug, event_start, event_end, image_url, is_published)
			VALUES ($1, $2, $3, $4, 'banquet', $5, now() + interval '30 days', now() + interval '30 days 4 hours', $6, $7)`,
			event, org, randomTitle(rng), randomDescription(rng), "slug-"+event[len(event)-6:], randomImage(rng), rng.IntN(5) > 0); err != nil {
			return err
		}
		for range tickets {
			id := uuidN("07000000", int(c.nextTicket.Add(1)))
			if _, err := tx.Exec(ctx, `INSERT INTO event_tickets (id, event_id, name, price, eligibility_criteria, total_capacity)
				VALUES ($1, $2, $3, $4::numeric, '{"members_only": true}', $5)`,
				id, event, randomTicketName(rng), randomPrice(rng), 50+rng.IntN(500)); err != nil {
				return err
			}
			ticketIDs = append(ticketIDs, id)
		}
		return nil
	})
	if err == nil {
		c.committed([]string{event}, ticketIDs)
		c.count("insert event with tickets")
	}
	return err
}

// noRows turns "no row to pick" (an empty table) into success.
func noRows(err error) error {
	if errors.Is(err, pgx.ErrNoRows) {
		return nil
	}
	return err
}

var (
	chaosAdjectives = []string{"Grand", "Annual", "Winter", "Installation", "Charity", "Ladies'", "Centenary", "Quarterly"}
	chaosNouns      = []string{"Banquet", "Festive Board", "Ball", "Communication", "Lecture", "Dinner", "Picnic"}
	chaosTickets    = []string{"Member", "Visitor", "Partner", "Junior", "VIP", "Early Bird", "Table of Ten"}
)

func randomTitle(rng *rand.Rand) string {
	return fmt.Sprintf("%s %s %d", chaosAdjectives[rng.IntN(len(chaosAdjectives))], chaosNouns[rng.IntN(len(chaosNouns))], rng.IntN(1000))
}

func randomTicketName(rng *rand.Rand) string {
	return fmt.Sprintf("%s %d", chaosTickets[rng.IntN(len(chaosTickets))], rng.IntN(100))
}

// randomPrice is a numeric literal from 0.00 to 999.99, often a round one.
func randomPrice(rng *rand.Rand) string {
	cents := rng.IntN(100_000)
	if rng.IntN(2) == 0 {
		cents -= cents % 500
	}
	return fmt.Sprintf("%d.%02d", cents/100, cents%100)
}

func randomDescription(rng *rand.Rand) *string {
	if rng.IntN(5) == 0 {
		return nil
	}
	s := fmt.Sprintf("Dress: %s. Carriages at %d.", []string{"black tie", "lounge suit", "regalia"}[rng.IntN(3)], 9+rng.IntN(3))
	return &s
}

func randomImage(rng *rand.Rand) *string {
	if rng.IntN(3) == 0 {
		return nil
	}
	s := fmt.Sprintf("https://img.example.org/%d.jpg", rng.IntN(10_000))
	return &s
}

// divergences compares Stripe with the database and describes every
// difference: every live event must have exactly one Product, on its
// organisation's current account, matching its row; every live ticket
// exactly one active Price, anywhere, matching its row; deleted ones must be
// archived; nothing may exist for an id never committed.
func (c *chaos) divergences(t *testing.T, h *harness) []string {
	t.Helper()
	ctx := context.Background()
	s := h.state()
	var bad []string
	report := func(format string, args ...any) { bad = append(bad, fmt.Sprintf(format, args...)) }

	type eventRow struct {
		id, org, account, title, description, productID string
		image                                           *string
		published                                       bool
	}
	rows, err := h.pool.Query(ctx, `
		SELECT e.event_id::text, e.organisation_id::text, coalesce(o.stripe_onbehalfof, ''), coalesce(e.title, ''),
		       coalesce(e.description, ''), coalesce(e.stripe_product_id, ''), e.image_url, coalesce(e.is_published, false)
		FROM events e JOIN organisations o USING (organisation_id)`)
	require.NoError(t, err)
	events, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (eventRow, error) {
		var e eventRow
		return e, row.Scan(&e.id, &e.org, &e.account, &e.title, &e.description, &e.productID, &e.image, &e.published)
	})
	require.NoError(t, err)
	type ticketRow struct{ id, event, name, price, priceID string }
	rows, err = h.pool.Query(ctx, `
		SELECT id::text, event_id::text, coalesce(name, ''), price::text, coalesce(stripe_price_id, '') FROM event_tickets`)
	require.NoError(t, err)
	tickets, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (ticketRow, error) {
		var tk ticketRow
		return tk, row.Scan(&tk.id, &tk.event, &tk.name, &tk.price, &tk.priceID)
	})
	require.NoError(t, err)

	// Every Stripe object, by the entity its metadata names.
	type located[T any] struct {
		account string
		obj     T
	}
	products := map[string][]located[stripeclient.Product]{}
	prices := map[string][]located[stripeclient.Price]{}
	for account, a := range s.Accounts {
		for _, p := range a.Products {
			products[p.Metadata["event_id"]] = append(products[p.Metadata["event_id"]], located[stripeclient.Product]{account, p})
		}
		for _, p := range a.Prices {
			prices[p.Metadata["ticket_id"]] = append(prices[p.Metadata["ticket_id"]], located[stripeclient.Price]{account, p})
		}
	}
	for id := range products {
		if !c.everEvents[id] {
			report("a Product for event %q, which was never committed (rolled back: %v)", id, c.rolledBack[id])
		}
	}
	for id := range prices {
		if !c.everTickets[id] {
			report("a Price for ticket %q, which was never committed (rolled back: %v)", id, c.rolledBack[id])
		}
	}

	live := map[string]eventRow{}
	for _, e := range events {
		live[e.id] = e
		want := jobs.ProductID(e.id)
		if e.account == "" {
			// Its organisation has no account: nothing of it on sale.
			for _, p := range products[e.id] {
				if p.obj.Active {
					report("event %s of an organisation without an account: Product %s on %s still active", e.id, p.obj.ID, p.account)
				}
			}
			continue
		}
		if e.productID != want {
			report("event %s: stripe_product_id %q, want %q", e.id, e.productID, want)
		}
		var here []stripeclient.Product
		for _, p := range products[e.id] {
			if p.account == e.account {
				here = append(here, p.obj)
			} else if p.obj.Active {
				report("event %s: Product %s on previous account %s still active", e.id, p.obj.ID, p.account)
			}
		}
		if len(here) != 1 {
			report("event %s: %d Products on its account %s, want exactly 1", e.id, len(here), e.account)
			continue
		}
		p := here[0]
		wantImages := []string{}
		if e.image != nil {
			wantImages = []string{*e.image}
		}
		switch {
		case p.ID != want:
			report("event %s: Product id %s, want %s", e.id, p.ID, want)
		case p.Name != strings.TrimSpace(e.title):
			report("event %s: Product name %q, want %q", e.id, p.Name, e.title)
		case p.Description != e.description:
			report("event %s: Product description %q, want %q", e.id, p.Description, e.description)
		case p.Active != e.published:
			report("event %s: Product active %v, want %v", e.id, p.Active, e.published)
		case strings.Join(p.Images, " ") != strings.Join(wantImages, " "):
			report("event %s: Product images %v, want %v", e.id, p.Images, wantImages)
		case p.Metadata["organisation_id"] != e.org:
			report("event %s: Product organisation_id %q, want %q", e.id, p.Metadata["organisation_id"], e.org)
		}
	}
	for id := range c.everEvents {
		if _, ok := live[id]; ok {
			continue
		}
		for _, p := range products[id] {
			if p.obj.Active {
				report("deleted event %s: Product %s on %s still active", id, p.obj.ID, p.account)
			}
		}
	}

	liveTickets := map[string]bool{}
	for _, tk := range tickets {
		liveTickets[tk.id] = true
		e := live[tk.event]
		var active []located[stripeclient.Price]
		for _, p := range prices[tk.id] {
			if p.obj.Active {
				active = append(active, p)
			}
		}
		if e.account == "" {
			for _, p := range active {
				report("ticket %s of an organisation without an account: Price %s on %s still active", tk.id, p.obj.ID, p.account)
			}
			continue
		}
		if len(active) != 1 {
			var desc []string
			for _, p := range active {
				desc = append(desc, fmt.Sprintf("%s on %s (%d, created %d)", p.obj.ID, p.account, p.obj.UnitAmount, p.obj.Created))
			}
			report("ticket %s: %d active Prices, want exactly 1 on %s: %v", tk.id, len(active), e.account, desc)
			continue
		}
		p := active[0]
		amount, err := jobs.UnitAmount(tk.price, "aud")
		require.NoError(t, err)
		switch {
		case p.account != e.account:
			report("ticket %s: Price %s on %s, want its organisation's account %s", tk.id, p.obj.ID, p.account, e.account)
		case p.obj.Product != jobs.ProductID(tk.event):
			report("ticket %s: Price %s on Product %s, want %s", tk.id, p.obj.ID, p.obj.Product, jobs.ProductID(tk.event))
		case p.obj.UnitAmount != amount || p.obj.Currency != "aud":
			report("ticket %s: Price %s is %d %s, want %d aud (price %s)", tk.id, p.obj.ID, p.obj.UnitAmount, p.obj.Currency, amount, tk.price)
		case p.obj.Nickname != tk.name:
			report("ticket %s: Price nickname %q, want %q", tk.id, p.obj.Nickname, tk.name)
		case p.obj.LookupKey != jobs.LookupKey(tk.id):
			report("ticket %s: Price lookup_key %q, want %q", tk.id, p.obj.LookupKey, jobs.LookupKey(tk.id))
		case p.obj.Metadata["event_id"] != tk.event:
			report("ticket %s: Price event_id %q, want %q", tk.id, p.obj.Metadata["event_id"], tk.event)
		case p.obj.ID != tk.priceID:
			report("ticket %s: stripe_price_id %q, want %q", tk.id, tk.priceID, p.obj.ID)
		}
	}
	for id := range c.everTickets {
		if liveTickets[id] {
			continue
		}
		for _, p := range prices[id] {
			if p.obj.Active {
				report("deleted ticket %s: Price %s on %s still active", id, p.obj.ID, p.account)
			}
		}
	}
	sort.Strings(bad)
	return bad
}

// summary says what the run did.
func (c *chaos) summary(h *harness, stats *emulator.Stats, mutating, drain time.Duration, kills, hurried int) string {
	ctx := context.Background()
	var b strings.Builder
	fmt.Fprintf(&b, "chaos summary\n  mutating %s, draining %s (%d backed-off retries hurried)\n", mutating.Round(time.Millisecond), drain.Round(time.Millisecond), hurried)
	c.mu.Lock()
	total := 0
	for _, n := range c.mutations {
		total += n
	}
	fmt.Fprintf(&b, "  mutations: %d committed\n", total)
	for _, k := range sortedKeys(c.mutations) {
		fmt.Fprintf(&b, "    %-55s %d\n", k, c.mutations[k])
	}
	for _, k := range sortedKeys(c.rejected) {
		fmt.Fprintf(&b, "    refused by PostgreSQL (%s) %d\n", k, c.rejected[k])
	}
	fmt.Fprintf(&b, "  entities: %d events and %d tickets committed over the run\n", len(c.everEvents), len(c.everTickets))
	c.mu.Unlock()
	fmt.Fprintf(&b, "  workers killed with SIGKILL and restarted: %d\n", kills)
	faults := map[string]int{}
	for k, v := range stats.FaultsInjected {
		faults[string(k)] = v
	}
	fmt.Fprintf(&b, "  Stripe requests: %d (%d writes reached the write path)\n", stats.RequestCount, stats.WriteCount)
	fmt.Fprintf(&b, "  faults injected:")
	for _, k := range sortedKeys(faults) {
		fmt.Fprintf(&b, " %s=%d", k, faults[k])
	}
	fmt.Fprintf(&b, "\n  overlapping writes: %d\n", len(stats.Overlaps))
	var jobsTotal, attempts, rescued, logFailed, logRows int
	_ = h.pool.QueryRow(ctx, `
		SELECT count(*), coalesce(sum(attempt), 0), count(*) FILTER (WHERE errors::text LIKE '%Stuck job rescued%')
		FROM river_job WHERE kind IN `+syncKinds).Scan(&jobsTotal, &attempts, &rescued)
	_ = h.pool.QueryRow(ctx, `SELECT count(*), count(*) FILTER (WHERE status = 'failed') FROM stripe_sync_log`).Scan(&logRows, &logFailed)
	fmt.Fprintf(&b, "  sync jobs: %d, attempts %d, rescued after a kill %d; sync log rows %d (%d failed attempts)\n",
		jobsTotal, attempts, rescued, logRows, logFailed)
	// What a round really takes (the job timeout's default rests on it).
	var p50, p99, longest float64
	_ = h.pool.QueryRow(ctx, `
		SELECT coalesce(percentile_cont(0.5) WITHIN GROUP (ORDER BY duration_ms), 0),
		       coalesce(percentile_cont(0.99) WITHIN GROUP (ORDER BY duration_ms), 0), coalesce(max(duration_ms), 0)
		FROM stripe_sync_log WHERE duration_ms IS NOT NULL`).Scan(&p50, &p99, &longest)
	fmt.Fprintf(&b, "  round duration: p50 %.0f ms, p99 %.0f ms, max %.0f ms\n", p50, p99, longest)
	fmt.Fprintf(&b, "  job states: %v", h.jobStates())
	return b.String()
}

func sortedKeys(m map[string]int) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}
