package reconcile

import (
	"context"
	"encoding/json"
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/lodgetix/stripe-sync/cmd/syncctl/internal/cmdutil"
	"github.com/lodgetix/stripe-sync/internal/synctest"
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

	for _, tt := range []struct {
		name      string
		args      []string
		want      *Options
		wantUsage string
	}{
		{name: "Defaults", args: nil, want: &Options{Currency: "aud"}},
		{name: "OrgNormalised", args: []string{"--org", "{0A000000-0000-4000-8000-000000000001}"}, want: &Options{Org: orgID, Currency: "aud"}},
		{name: "FixJSONCurrency", args: []string{"--fix", "--json", "--currency", "nzd"}, want: &Options{Fix: true, JSON: true, Currency: "nzd"}},
		{name: "MalformedOrg", args: []string{"--org", "org-1"}, wantUsage: `--org: malformed id "org-1"`},
		{name: "Argument", args: []string{"now"}, wantUsage: `unknown command "now"`},
	} {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			io, _, _ := cmdutil.Test(false)
			var got *Options
			cmd := NewCmdReconcile(cmdutil.NewFactory(io, func(string) string { return "" }), func(_ context.Context, o *Options) error {
				got = o
				return nil
			})
			cmd.SetArgs(tt.args)
			cmd.SetOut(io.Out)
			cmd.SetErr(io.ErrOut)
			err := cmd.Execute()
			if tt.wantUsage != "" {
				require.ErrorContains(t, err, tt.wantUsage)
				if tt.name != "Argument" { // cobra's own error is mapped to 2 by root.Main
					require.Equal(t, 2, cmdutil.ExitCode(err))
				}
				return
			}
			require.NoError(t, err)
			got.Factory = nil
			require.Equal(t, tt.want, got)
		})
	}
}

func TestReconcileRun(t *testing.T) {
	t.Parallel()
	ctx := context.Background()

	b := synctest.Start(t, synctest.Options{})
	b.Exec(t, `INSERT INTO organisations (organisation_id, name, stripe_onbehalfof) VALUES
		($1, 'Org', $2), ('0a000000-0000-4000-8000-000000000002', 'No account', NULL)`, orgID, account)
	b.Exec(t, `INSERT INTO events (event_id, organisation_id, title, is_published) VALUES ($1, $2, 'Banquet', true)`, eventID, orgID)
	b.Exec(t, `INSERT INTO event_tickets (id, event_id, name, price) VALUES ($1, $2, 'Mason', 95)`, ticket, eventID)
	b.WaitIdle(t, 10*time.Second)

	run := func(t *testing.T, terminal bool, args ...string) (string, string) {
		io, out, errOut := cmdutil.Test(terminal)
		f := cmdutil.NewFactory(io, func(name string) string {
			if name == "STRIPE_SECRET_KEY" {
				return synctest.SecretKey
			}
			return ""
		})
		f.DatabaseURL = b.Pool.Config().ConnString()
		f.StripeAPIBase = b.APIBase
		t.Cleanup(f.Close)
		cmd := NewCmdReconcile(f, nil)
		cmd.SetArgs(args)
		require.NoError(t, cmd.Execute())
		return out.String(), errOut.String()
	}

	// The subtests share one emulator and run in order.
	t.Run("InStep", func(t *testing.T) {
		out, errOut := run(t, false)
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
		out, errOut := run(t, true)
		w := max(len(productID), len(priceID))
		require.Equal(t, fmt.Sprintf(""+
			"KIND    ENTITY                                ACCOUNT          %-*s  PROBLEM  DETAIL\n"+
			"event   %s  acct_1Reconcile  %-*s  drift    name \"Renamed in the dashboard\", want \"Banquet\"\n"+
			"ticket  %s  acct_1Reconcile  %-*s  drift    active false, want true\n",
			w, "OBJECT", eventID, w, productID, ticket, w, priceID), out)
		require.Equal(t, "compared 1 account (1 event, 1 ticket; 1 product, 1 price): 2 findings\n", errOut)
	})

	t.Run("FixJSON", func(t *testing.T) {
		out, errOut := run(t, false, "--fix", "--json", "--org", orgID)
		var doc struct {
			Findings []map[string]any `json:"findings"`
			Fix      map[string]any   `json:"fix"`
		}
		require.NoError(t, json.Unmarshal([]byte(out), &doc))
		require.Len(t, doc.Findings, 2)
		for _, f := range doc.Findings {
			require.ElementsMatch(t, []string{"kind", "entity_id", "account", "object_id", "problem", "detail", "fields"}, keys(f))
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
		out, errOut := run(t, false)
		require.Empty(t, out)
		require.Equal(t, "compared 1 account (1 event, 1 ticket; 1 product, 2 prices): no drift\n", errOut,
			"the archived Price stays on the account; a new one replaced it")
		out, _ = run(t, false, "--json")
		require.JSONEq(t, `{"findings": []}`, out)
	})

	t.Run("OrgWithoutAccount", func(t *testing.T) {
		out, errOut := run(t, false, "--org", "0a000000-0000-4000-8000-000000000002")
		require.Empty(t, out)
		require.Equal(t, "organisation 0a000000-0000-4000-8000-000000000002 has no connected Stripe account: nothing to compare\n", errOut)
	})

	t.Run("UnknownOrgIsBadInput", func(t *testing.T) {
		io, _, _ := cmdutil.Test(false)
		f := cmdutil.NewFactory(io, func(string) string { return synctest.SecretKey })
		f.DatabaseURL = b.Pool.Config().ConnString()
		f.StripeAPIBase = b.APIBase
		t.Cleanup(f.Close)
		cmd := NewCmdReconcile(f, nil)
		cmd.SetArgs([]string{"--org", "0a000000-0000-4000-8000-000000000009"})
		err := cmd.Execute()
		require.EqualError(t, err, "--org: organisation 0a000000-0000-4000-8000-000000000009 not found")
		require.Equal(t, 2, cmdutil.ExitCode(err))
	})
}

func keys(m map[string]any) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	return out
}
