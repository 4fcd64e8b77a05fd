package status

import (
	"context"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/lodgetix/stripe-sync/cmd/syncctl/internal/cmdutil"
	"github.com/lodgetix/stripe-sync/jobs"
)

func unreachable(ctx context.Context, pool *pgxpool.Pool, out *[]jobs.UnreachableAccount) error {
	accounts, err := jobs.UnreachableAccounts(ctx, pool)
	if accounts != nil {
		*out = accounts
	}
	return err
}

// writeUnreachable writes the key-value line for the accounts marked
// unreachable.
func writeUnreachable(kv io.Writer, out *cmdutil.IOStreams, accounts []jobs.UnreachableAccount, now time.Time) {
	if len(accounts) == 0 {
		fmt.Fprintf(kv, "Unreachable accounts:\tnone\n")
		return
	}
	parts := make([]string, len(accounts))
	for i, a := range accounts {
		parts[i] = fmt.Sprintf("%s (organisations %s) since %s: %s", a.Account, strings.Join(a.Organisations, ", "),
			out.When(&a.Since, now), out.Cell(a.Reason, errorWidth))
	}
	fmt.Fprintf(kv, "Unreachable accounts:\t%d: %s\n", len(accounts), strings.Join(parts, "; "))
}

func warnUnreachable(w io.Writer, accounts []jobs.UnreachableAccount) {
	if len(accounts) > 0 {
		fmt.Fprintf(w, "syncctl: warning: %d connected accounts refuse the platform; their jobs are skipped until the organisation's account changes or `syncctl enqueue org ID` runs\n",
			len(accounts))
	}
}
