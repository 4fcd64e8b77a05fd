package jobs_test

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/lodgetix/stripe-sync/internal/synctesting"
	"github.com/lodgetix/stripe-sync/jobs"
	"github.com/lodgetix/stripe-sync/outbox"
	"github.com/lodgetix/stripe-sync/stripeclient"
)

func reconcile(t *testing.T, b *synctesting.Bundle, org string) *jobs.ReconcileReport {
	t.Helper()
	r := &jobs.Reconciler{Pool: b.Pool, Stripe: b.Stripe}
	report, err := r.Reconcile(context.Background(), org)
	require.NoError(t, err)
	return report
}

func fix(t *testing.T, b *synctesting.Bundle, findings []jobs.Finding) jobs.FixResult {
	t.Helper()
	r := &jobs.Reconciler{Pool: b.Pool, Stripe: b.Stripe}
	res, err := r.Fix(context.Background(), b.River, findings)
	require.NoError(t, err)
	return res
}

func TestReconciler_renamedProductAndArchivedPrice(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	b := setup(t, synctesting.Options{})
	ev, tk1, tk2 := eventID(30), ticketID(31), ticketID(32)
	insertEvent(t, b, ev, orgID, "Banquet")
	insertTicket(t, b, tk1, ev, "Mason", "95.00")
	insertTicket(t, b, tk2, ev, "Guest", "80.00")
	b.WaitIdle(t, 10*time.Second)

	report := reconcile(t, b, "")
	require.Empty(t, report.Findings)
	require.Equal(t, []jobs.AccountSummary{{Account: account, Events: 1, Tickets: 2, Products: 1, Prices: 2}}, report.Accounts)

	// Edited in Stripe directly, behind the sync's back.
	call := stripeclient.Call{Account: account}
	p := product(t, b, account, jobs.ProductID(ev))
	_, err := b.Stripe.UpdateProduct(ctx, call, p.ID, stripeclient.ProductParams{
		Name: "Renamed", Description: p.Description, Images: p.Images, Active: p.Active, Metadata: p.Metadata,
	})
	require.NoError(t, err)
	archived := activePrice(t, b, account, tk1)
	_, err = b.Stripe.ArchivePrice(ctx, call, archived.ID)
	require.NoError(t, err)

	report = reconcile(t, b, "")
	require.Equal(t, []jobs.Finding{
		{Kind: outbox.KindEvent, EntityID: ev, Account: account, ObjectID: p.ID, Problem: jobs.ProblemDrift,
			Detail: `name "Renamed", want "Banquet"`, Fields: []string{"name"}},
		{Kind: outbox.KindTicket, EntityID: tk1, Account: account, ObjectID: archived.ID, Problem: jobs.ProblemDrift,
			Detail: "active false, want true", Fields: []string{"active"}},
	}, report.Findings)

	// A sync job alone would change nothing: the fingerprints still match
	// what was pushed. Fix forgets them first.
	require.Equal(t, jobs.FixResult{Enqueued: 2}, fix(t, b, report.Findings))
	b.WaitIdle(t, 10*time.Second)

	require.Equal(t, "Banquet", product(t, b, account, p.ID).Name)
	repaired := activePrice(t, b, account, tk1)
	require.NotEqual(t, archived.ID, repaired.ID, "an archived Price cannot be reactivated by the sync: a new one takes its lookup key")
	require.Equal(t, jobs.LookupKey(tk1), repaired.LookupKey)
	require.Empty(t, reconcile(t, b, "").Findings, "a second reconcile finds no drift")
}

func TestReconciler_extrasAreArchived(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	b := setup(t, synctesting.Options{})
	ev, tk := eventID(40), ticketID(41)
	insertEvent(t, b, ev, orgID, "Banquet")
	insertTicket(t, b, tk, ev, "Mason", "95.00")
	b.WaitIdle(t, 10*time.Second)
	own := activePrice(t, b, account, tk)

	call := stripeclient.Call{Account: account}
	stray, err := b.Stripe.CreatePrice(ctx, call, stripeclient.PriceParams{
		Product: jobs.ProductID(ev), Currency: "aud", UnitAmount: 100, Active: true,
		Metadata: map[string]string{"ticket_id": tk},
	})
	require.NoError(t, err)
	orphan, err := b.Stripe.CreateProduct(ctx, call, stripeclient.ProductParams{
		ID: "prod_orphan", Name: "Gone", Active: true, Metadata: map[string]string{"event_id": eventID(49)},
	})
	require.NoError(t, err)
	_, err = b.Stripe.CreateProduct(ctx, call, stripeclient.ProductParams{
		ID: "prod_not_ours", Name: "Someone else's", Active: true,
	})
	require.NoError(t, err)

	findings := reconcile(t, b, orgID).Findings
	require.Equal(t, []jobs.Finding{
		{Kind: outbox.KindEvent, EntityID: eventID(49), Account: account, ObjectID: orphan.ID, Problem: jobs.ProblemExtra,
			Detail: "active, but event " + eventID(49) + " is gone or not on this account"},
		{Kind: outbox.KindTicket, EntityID: tk, Account: account, ObjectID: stray.ID, Problem: jobs.ProblemMultipleActive,
			Detail: "active besides the ticket's Price " + own.ID},
	}, findings, "objects without our metadata are not ours to judge")

	require.Equal(t, jobs.FixResult{Archived: 2}, fix(t, b, findings))
	require.False(t, product(t, b, account, orphan.ID).Active)
	require.Equal(t, own.ID, activePrice(t, b, account, tk).ID)
	require.True(t, product(t, b, account, "prod_not_ours").Active)
	require.Empty(t, reconcile(t, b, "").Findings)
}

func TestReconciler_firstInstall(t *testing.T) {
	t.Parallel()
	b := setup(t, synctesting.Options{NoWorker: true})
	ev, tk := eventID(50), ticketID(51)
	insertEvent(t, b, ev, orgID, "Banquet")
	insertTicket(t, b, tk, ev, "Mason", "95.00")
	insertTicket(t, b, ticketID(52), ev, "Refund", "-1.00")
	insertEvent(t, b, eventID(53), orgID, " ")
	insertEvent(t, b, eventID(54), noAcctOrg, "No account")
	// Rows from before the install: no job, no state.
	b.Exec(t, `DELETE FROM river_job; DELETE FROM stripe_sync_state`)

	findings := reconcile(t, b, "").Findings
	require.Equal(t, []jobs.Finding{
		{Kind: outbox.KindEvent, EntityID: ev, Account: account, ObjectID: jobs.ProductID(ev), Problem: jobs.ProblemMissing,
			Detail: "no Product " + jobs.ProductID(ev) + " on the account"},
		{Kind: outbox.KindEvent, EntityID: eventID(53), Account: account, ObjectID: jobs.ProductID(eventID(53)), Problem: jobs.ProblemInvalid,
			Detail: "event title is blank: a Stripe Product needs a name"},
		{Kind: outbox.KindTicket, EntityID: tk, Account: account, Problem: jobs.ProblemMissing,
			Detail: "no Price on the account recorded for the ticket or holding " + jobs.LookupKey(tk)},
		{Kind: outbox.KindTicket, EntityID: ticketID(52), Account: account, Problem: jobs.ProblemInvalid,
			Detail: "ticket price -1.00 is negative"},
	}, findings)

	require.Equal(t, jobs.FixResult{Enqueued: 2, Skipped: 2}, fix(t, b, findings))
	b.StartWorker(t)
	b.WaitIdle(t, 10*time.Second)
	findings = reconcile(t, b, "").Findings
	require.Len(t, findings, 2)
	require.Equal(t, jobs.ProblemInvalid, findings[0].Problem)
	require.Equal(t, jobs.ProblemInvalid, findings[1].Problem)
}

func TestReconciler_org(t *testing.T) {
	t.Parallel()
	b := setup(t, synctesting.Options{NoWorker: true})

	report := reconcile(t, b, noAcctOrg)
	require.Empty(t, report.Accounts, "an organisation without a connected account has nothing to compare")

	r := &jobs.Reconciler{Pool: b.Pool, Stripe: b.Stripe}
	_, err := r.Reconcile(context.Background(), "0a000000-0000-4000-8000-0000000000cc")
	var notFound *jobs.OrgNotFoundError
	require.ErrorAs(t, err, &notFound)
	_, err = r.Reconcile(context.Background(), "acme")
	var invalid *outbox.InvalidIDError
	require.ErrorAs(t, err, &invalid)
}
