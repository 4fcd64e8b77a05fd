package dbconn_test

import (
	"context"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/lodgetix/stripe-sync/internal/dbconn"
	"github.com/lodgetix/stripe-sync/internal/testdb"
)

func TestCheckSessionPinned(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	direct := testdb.URL(t)

	for _, tc := range []struct {
		name string
		url  string
		want error
	}{
		{"Direct", direct, nil},
		{"SessionPooler", testdb.ThroughPgBouncer(t, direct, "session"), nil},
		{"TransactionPooler", testdb.ThroughPgBouncer(t, direct, "transaction"), dbconn.ErrTransactionPooler},
	} {
		t.Run(tc.name, func(t *testing.T) {
			// Repeated, because the check must not depend on which idle
			// server the pooler happened to pick.
			for range 5 {
				pool, err := dbconn.Open(ctx, tc.url, dbconn.Options{ApplicationName: "pooler test", MaxConns: 4})
				require.NoError(t, err)
				require.Equal(t, tc.want, dbconn.CheckSessionPinned(ctx, pool))
				pool.Close()
			}
		})
	}
}
