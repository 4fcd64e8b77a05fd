package status

import (
	"encoding/json"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

func TestStatus_unreachableAccounts(t *testing.T) {
	t.Parallel()
	b := setup(t)
	b.Exec(t, `INSERT INTO organisations (organisation_id, name, stripe_onbehalfof) VALUES ('0a000000-0000-4000-8000-000000000001', 'Org', 'acct_1Gone')`)
	b.Exec(t, `INSERT INTO stripe_sync_unreachable_account (account, reason, since) VALUES ('acct_1Gone', 'the account deauthorised the platform (Stripe event evt_1, account.application.deauthorized)', $1)`,
		b.ago(time.Hour))

	out, errOut := b.run(t, true)
	require.Contains(t, errOut, "syncctl: warning: 1 connected accounts refuse the platform; their jobs are skipped until the organisation's account changes or `syncctl enqueue org ID` runs\n")
	require.Contains(t, out, "Unreachable accounts:  1: acct_1Gone (organisations 0a000000-0000-4000-8000-000000000001) since 1h0m ago: the account deauthorised the platform (Stripe event evt_1, account....\n")

	out, _ = b.run(t, false, "--json")
	var doc struct {
		Unreachable []map[string]any `json:"unreachable_accounts"`
	}
	require.NoError(t, json.Unmarshal([]byte(out), &doc))
	require.Len(t, doc.Unreachable, 1)
	require.Equal(t, "acct_1Gone", doc.Unreachable[0]["account"])
	require.Equal(t, []any{"0a000000-0000-4000-8000-000000000001"}, doc.Unreachable[0]["organisations"])
	require.ElementsMatch(t, []string{"account", "reason", "since", "organisations"}, keys(doc.Unreachable[0]))
}

func keys(m map[string]any) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	return out
}
