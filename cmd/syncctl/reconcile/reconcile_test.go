package reconcile

import (
	"context"
	"encoding/json"
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/lodgetix/stripe-sync/cmd/syncctl/internal/cmdtest"
	"github.com/lodgetix/stripe-sync/cmd/syncctl/internal/cmdutil"
	"github.com/lodgetix/stripe-sync/internal/synctesting"
	"github.com/lodgetix/stripe-sync/jobs"
	"github.com/lodgetix/stripe-sync/stripeclient"
)

const (
	orgID   = "0a000000-0000-4000-8000-000000000001"
	eventID = "0e000000-0000-4000-8000-000000000001"
	ticket  = "07000000-0000-4000-8000-000000000001"
	account = "acct_1Reconcile"
)

func TestNewCmdReconcile(t *testing.T) {
	t.Parallel()

	cmdtest.Command[Options]{NewCmd: NewCmdReconcile}.ParseCases(t, []cmdtest.ParseCase[Options]{
		{Name: "Defaults", Args: nil, Want: &Options{Currency: "aud"}},
		{Name: "OrgNormalised", Args: []string{"--org", "{0A000000-0000-4000-8000-000000000001}"}, Want: &Options{Org: orgID, Currency: "aud"}},
		{Name: "FixJSONCurrency", Args: []string{"--fix", "--json", "--currency", "nzd"}, Want: &Options{Fix: true, JSON: true, Currency: "nzd"}},
		{Name: "MalformedOrg", Args: []string{"--org", "org-1"}, WantUsage: `--org: malformed id "org-1"`},
		{Name: "Argument", Args: []string{"now"}, WantCobraErr: `unknown command "now"`},
	})
}

func TestReconcileRun(t *testing.T) {
	t.Parallel()
	ctx := context.Background()

	b := synctesting.Start(t, synctesting.Options{})
	b.Exec(t, `INSERT INTO organisations (organisation_id, name, stripe_onbehalfof) VALUES
		($1, 'Org', $2), ('0a000000-0000-4000-8000-000000000002', 'No account', NULL)`, orgID, account)
	b.Exec(t, `INSERT INTO events (event_id, organisation_id, title, is_published) VALUES ($1, $2, 'Banquet', true)`, eventID, orgID)
	b.Exec(t, `INSERT INTO event_tickets (id, event_id, name, price) VALUES ($1, $2, 'Mason', 95)`, ticket, eventID)
	b.WaitIdle(t, 10*time.Second)

	cmd := cmdtest.Command[Options]{
		NewCmd:        NewCmdReconcile,
		DatabaseURL:   b.Pool.Config().ConnString(),
		StripeAPIBase: b.APIBase,
		Env:           map[string]string{"STRIPE_SECRET_KEY": synctesting.SecretKey},
	}

	// The subtests share one emulator and run in order.
	t.Run("InStep", func(t *testing.T) {
		out, errOut := cmd.MustRun(t, false)
		require.Empty(t, out)
		require.Equal(t, "compared 1 account (1 event, 1 ticket; 1 product, 1 price): no drift\n", errOut)
	})

	call := stripeclient.Call{Account: account}
	productID := jobs.ProductID(eventID)
	var priceID string
	for _, p := range b.Emulator.Prices(account) {
		priceID = p.ID
	}
	p, err := b.Stripe.GetProduct(ctx, call, productID)
	require.NoError(t, err)
	_, err = b.Stripe.UpdateProduct(ctx, call, productID, stripeclient.ProductParams{
		Name: "Renamed in the dashboard", Description: p.Description, Images: p.Images, Active: p.Active, Metadata: p.Metadata,
	})
	require.NoError(t, err)
	_, err = b.Stripe.ArchivePrice(ctx, call, priceID)
	require.NoError(t, err)

	t.Run("TableOnATerminal", func(t *testing.T) {
		out, errOut := cmd.MustRun(t, true)
		w := max(len(productID), len(priceID))
		require.Equal(t, fmt.Sprintf(""+
			"KIND    ENTITY                                ACCOUNT          %-*s  PROBLEM  DETAIL\n"+
			"event   %s  acct_1Reconcile  %-*s  drift    name \"Renamed in the dashboard\", want \"Banquet\"\n"+
			"ticket  %s  acct_1Reconcile  %-*s  drift    active false, want true\n",
			w, "OBJECT", eventID, w, productID, ticket, w, priceID), out)
		require.Equal(t, "compared 1 account (1 event, 1 ticket; 1 product, 1 price): 2 findings\n", errOut)
	})

	t.Run("FixJSON", func(t *testing.T) {
		out, errOut := cmd.MustRun(t, false, "--fix", "--json", "--org", orgID)
		var doc struct {
			Findings []map[string]any `json:"findings"`
			Fix      map[string]any   `json:"fix"`
		}
		require.NoError(t, json.Unmarshal([]byte(out), &doc))
		require.Len(t, doc.Findings, 2)
		for _, f := range doc.Findings {
			require.ElementsMatch(t, []string{"kind", "entity_id", "account", "object_id", "problem", "detail", "fields"}, cmdtest.Keys(f))
		}
		require.Equal(t, map[string]any{
			"kind": "event", "entity_id": eventID, "account": account, "object_id": productID, "problem": "drift",
			"detail": `name "Renamed in the dashboard", want "Banquet"`, "fields": []any{"name"},
		}, doc.Findings[0])
		require.Equal(t, map[string]any{"enqueued": float64(2), "deduplicated": float64(0), "archived": float64(0), "skipped": float64(0)}, doc.Fix)
		require.Equal(t, ""+
			"compared 1 account (1 event, 1 ticket; 1 product, 1 price): 2 findings\n"+
			"fix: 2 jobs enqueued (0 deduplicated), 0 objects archived, 0 left alone (invalid rows); a worker applies the jobs\n", errOut)
	})

	t.Run("NoDriftAfterTheFix", func(t *testing.T) {
		b.WaitIdle(t, 10*time.Second)
		out, errOut := cmd.MustRun(t, false)
		require.Empty(t, out)
		require.Equal(t, "compared 1 account (1 event, 1 ticket; 1 product, 2 prices): no drift\n", errOut,
			"the archived Price stays on the account; a new one replaced it")
		out, _ = cmd.MustRun(t, false, "--json")
		require.JSONEq(t, `{"findings": []}`, out)
	})

	t.Run("OrgWithoutAccount", func(t *testing.T) {
		out, errOut := cmd.MustRun(t, false, "--org", "0a000000-0000-4000-8000-000000000002")
		require.Empty(t, out)
		require.Equal(t, "organisation 0a000000-0000-4000-8000-000000000002 has no connected Stripe account: nothing to compare\n", errOut)
	})

	t.Run("UnknownOrgIsBadInput", func(t *testing.T) {
		_, _, err := cmd.Run(t, false, "--org", "0a000000-0000-4000-8000-000000000009")
		require.EqualError(t, err, "--org: organisation 0a000000-0000-4000-8000-000000000009 not found")
		require.Equal(t, 2, cmdutil.ExitCode(err))
	})
}
