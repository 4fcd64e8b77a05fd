package bench

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/lodgetix/stripe-sync/jobs"
)

// The entities figure 5 changes.
const (
	burstEvent  = "0e000000-0000-4000-8000-00000000b001"
	ticketEvent = "0e000000-0000-4000-8000-00000000b002"
	ticket      = "07000000-0000-4000-8000-00000000b002"
	newEvent    = "0e000000-0000-4000-8000-00000000b003"
)

// change is one of figure 5's logical changes: transactions of statements,
// each committed before the next.
type change struct {
	name   string
	target int
	txs    [][]string
}

// writesSetup is the state every change starts from: two events, one with a
// ticket, all synced.
var writesSetup = []string{
	fmt.Sprintf(`INSERT INTO events (event_id, organisation_id, title, description, type, slug, is_published)
		VALUES ('%s', '%s', 'Burst night', 'Edited a lot.', 'social', 'burst-night', true),
		       ('%s', '%s', 'Ticketed night', 'Has a ticket.', 'social', 'ticketed-night', true)`,
		burstEvent, orgID, ticketEvent, orgID),
	fmt.Sprintf(`INSERT INTO event_tickets (id, event_id, name, price, eligibility_criteria, total_capacity)
		VALUES ('%s', '%s', 'Mason', 85.00, '{"rank": "any"}', 120)`, ticket, ticketEvent),
}

func writesChanges() []change {
	burst := make([][]string, 100)
	for i := range burst {
		burst[i] = []string{fmt.Sprintf(`UPDATE events SET title = 'Burst night, take %d' WHERE event_id = '%s'`, i+1, burstEvent)}
	}
	newTickets := []string{fmt.Sprintf(`INSERT INTO events (event_id, organisation_id, title, description, type, slug, is_published)
		VALUES ('%s', '%s', 'New night', 'Five tickets.', 'social', 'new-night', true)`, newEvent, orgID)}
	for i := 1; i <= 5; i++ {
		newTickets = append(newTickets, fmt.Sprintf(`INSERT INTO event_tickets (id, event_id, name, price, total_capacity)
			VALUES ('07000000-0000-4000-8000-00000000c00%d', '%s', 'Tier %d', %d.50, 50)`, i, newEvent, i, 20*i))
	}
	return []change{
		{name: "5a writes: burst of 100 updates to one event", target: 1, txs: burst},
		{name: "5b writes: unchanged update (1 event, 1 ticket)", target: 0, txs: [][]string{
			{fmt.Sprintf(`UPDATE events SET title = title, description = description WHERE event_id = '%s'`, ticketEvent)},
			{fmt.Sprintf(`UPDATE event_tickets SET name = name, price = price WHERE id = '%s'`, ticket)},
		}},
		{name: "5c writes: price change", target: 2, txs: [][]string{
			{fmt.Sprintf(`UPDATE event_tickets SET price = price + 10 WHERE id = '%s'`, ticket)},
		}},
		{name: "5d writes: ticket name change", target: 1, txs: [][]string{
			{fmt.Sprintf(`UPDATE event_tickets SET name = 'Master Mason' WHERE id = '%s'`, ticket)},
		}},
		{name: "5e writes: new event with 5 tickets", target: 6, txs: [][]string{newTickets}},
	}
}

func applyTxs(ctx context.Context, pool *pgxpool.Pool, txs [][]string) error {
	for _, stmts := range txs {
		err := pgx.BeginFunc(ctx, pool, func(tx pgx.Tx) error {
			for _, s := range stmts {
				if _, err := tx.Exec(ctx, s); err != nil {
					return fmt.Errorf("%s: %w", s, err)
				}
			}
			return nil
		})
		if err != nil {
			return err
		}
	}
	return nil
}

// oursWrites applies the changes to a fresh database with the project's
// triggers. Each change is made while no worker runs (its job waits, as
// behind a backlog), then a worker drains the queue; the emulator counts the
// writes.
func (b *runner) oursWrites(ctx context.Context, changes []change) (counts, requests []int, err error) {
	counts, requests = make([]int, len(changes)), make([]int, len(changes))
	err = b.withDB(ctx, "writes_ours", poolConfig{app: "bench writes", maxConns: 15}, func(db *database) error {
		stripe, err := newStripeServer(nil)
		if err != nil {
			return err
		}
		defer stripe.Close()
		work := func() error {
			client, err := jobs.NewClient(&jobs.Deps{Pool: db.Pool, Stripe: stripe.client}, jobs.Options{
				FetchCooldown: fetchCooldown, FetchPollInterval: fetchPollInterval,
			})
			if err != nil {
				return err
			}
			if err := client.Start(ctx); err != nil {
				return err
			}
			defer stopClient(ctx, client)
			return waitIdle(ctx, db.Pool, time.Minute)
		}
		if err := createOrg(ctx, db.Pool); err != nil {
			return err
		}
		if err := applyTxs(ctx, db.Pool, [][]string{writesSetup}); err != nil {
			return err
		}
		if err := work(); err != nil {
			return err
		}
		for i, c := range changes {
			stripe.emu.ResetRequests()
			if err := applyTxs(ctx, db.Pool, c.txs); err != nil {
				return err
			}
			if err := work(); err != nil {
				return fmt.Errorf("%s: %w", c.name, err)
			}
			counts[i], requests[i] = stripe.emu.WriteCount(), len(stripe.emu.Requests())
		}
		return nil
	})
	return counts, requests, err
}

// seedWrites applies the same changes to a fresh database with the seed's
// triggers instead of ours, and runs the seed's algorithm (seedSync) on
// every notification they send, against a fresh emulator.
func (b *runner) seedWrites(ctx context.Context, changes []change) (counts, requests []int, err error) {
	counts, requests = make([]int, len(changes)), make([]int, len(changes))
	err = b.withDB(ctx, "writes_seed", poolConfig{app: "bench writes seed", maxConns: 5}, func(db *database) error {
		if err := installSeedTriggers(ctx, db.Pool); err != nil {
			return err
		}
		stripe, err := newStripeServer(nil)
		if err != nil {
			return err
		}
		defer stripe.Close()
		listener, err := pgx.Connect(ctx, db.URL)
		if err != nil {
			return err
		}
		defer listener.Close(context.WithoutCancel(ctx))
		if _, err := listener.Exec(ctx, `LISTEN stripe_sync`); err != nil {
			return err
		}
		seed := &seedSync{pool: db.Pool, stripe: stripe.client, now: time.Now}
		apply := func(txs [][]string) error {
			if err := applyTxs(ctx, db.Pool, txs); err != nil {
				return err
			}
			return drainNotifications(ctx, db.Pool, listener, seed)
		}
		if err := createOrg(ctx, db.Pool); err != nil {
			return err
		}
		if err := apply([][]string{writesSetup}); err != nil {
			return err
		}
		for i, c := range changes {
			stripe.emu.ResetRequests()
			if err := apply(c.txs); err != nil {
				return fmt.Errorf("%s: %w", c.name, err)
			}
			counts[i], requests[i] = stripe.emu.WriteCount(), len(stripe.emu.Requests())
		}
		return nil
	})
	return counts, requests, err
}

// seedSentinel marks the end of a change's notifications: sent after the
// change committed, it arrives after every notification the change sent.
const seedSentinel = `{"type":"sentinel"}`

// drainNotifications hands every notification up to the sentinel to the
// seed's algorithm, in order.
func drainNotifications(ctx context.Context, pool *pgxpool.Pool, listener *pgx.Conn, seed *seedSync) error {
	if _, err := pool.Exec(ctx, `SELECT pg_notify('stripe_sync', $1)`, seedSentinel); err != nil {
		return err
	}
	for {
		waitCtx, cancel := context.WithTimeout(ctx, 30*time.Second)
		n, err := listener.WaitForNotification(waitCtx)
		cancel()
		if err != nil {
			return fmt.Errorf("wait for the seed's notification: %w", err)
		}
		if n.Payload == seedSentinel {
			return nil
		}
		if err := seed.dispatch(ctx, n.Payload); err != nil {
			return err
		}
	}
}

// figureWrites is figure 5. The counts do not vary between repetitions
// unless something is wrong, but each repetition is a fresh pair of
// databases and emulators all the same.
func (b *runner) figureWrites(ctx context.Context) error {
	changes := writesChanges()
	ours := make([][]float64, len(changes))
	seed := make([][]float64, len(changes))
	oursReqs := make([][]float64, len(changes))
	seedReqs := make([][]float64, len(changes))
	for rep := 1; rep <= b.cfg.Repetitions; rep++ {
		o, oReqs, err := b.oursWrites(ctx, changes)
		if err != nil {
			return err
		}
		s, sReqs, err := b.seedWrites(ctx, changes)
		if err != nil {
			return err
		}
		for i := range changes {
			ours[i] = append(ours[i], float64(o[i]))
			seed[i] = append(seed[i], float64(s[i]))
			oursReqs[i] = append(oursReqs[i], float64(oReqs[i]))
			seedReqs[i] = append(seedReqs[i], float64(sReqs[i]))
		}
		b.logf("writes rep %d: ours %v (requests %v), seed %v (requests %v)", rep, o, oReqs, s, sReqs)
	}
	for i, c := range changes {
		note := ""
		if i == 0 {
			note = "Stripe writes (POSTs) counted by the emulator. Ours: the change is committed while no worker runs (its job " +
				"waits, as behind a backlog), then a worker drains the queue. Seed: its triggers instead of ours, its " +
				"syncEvent/syncTicketType re-implemented call for call, one notification at a time; its write-backs of " +
				"stripe_product_id/stripe_price_id are made with triggers off, because through its own triggers they would " +
				"notify again (+1 update per new Product; an endless archive-and-create loop per ticket), so its counts are a lower bound."
		}
		b.report.Rows = append(b.report.Rows, newRow(c.name, "writes", "the seed's algorithm, same changes",
			ours[i], seed[i], &Goal{On: "value", Op: "==", Bound: float64(c.target)}, note))
	}
	// Every request the rate limit pays for should carry a change: requests
	// per change beside writes per change, the same target (reads count).
	for i, c := range changes {
		note := ""
		if i == 0 {
			note = "Every Stripe request (reads too) counted by the emulator for the same changes: the shared rate limit pays for reads."
		}
		b.report.Rows = append(b.report.Rows, newRow(strings.Replace(c.name, " writes:", " requests:", 1), "requests",
			"the seed's algorithm, same changes", oursReqs[i], seedReqs[i], &Goal{On: "value", Op: "==", Bound: float64(c.target)}, note))
	}
	return nil
}
