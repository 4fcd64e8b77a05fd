package jobs

import (
	"context"
	"fmt"

	"github.com/jackc/pgx/v5"

	"github.com/lodgetix/stripe-sync/outbox"
)

// markInDoubtSQL sets stripe_sync_state.in_doubt for one entity. It runs on
// its own (autocommit), so the mark is durable before the Stripe write it
// announces: a lost answer, a kill -9 or a failed commit afterwards leaves
// the entity marked, and its next round asks Stripe instead of trusting
// what was last recorded. It locks a single row for one statement, so it
// cannot take part in a lock cycle.
const markInDoubtSQL = `
	INSERT INTO stripe_sync_state AS s (entity_type, entity_id, in_doubt) VALUES ($1, $2, true)
	ON CONFLICT (entity_type, entity_id) DO UPDATE SET in_doubt = true WHERE NOT s.in_doubt`

// doubter marks entities in doubt before a round's first Stripe write for
// each, once per entity and round.
type doubter struct {
	conn   *pgx.Conn
	marked map[string]bool
}

func newDoubter(conn *pgx.Conn) *doubter { return &doubter{conn: conn, marked: map[string]bool{}} }

// mark records that a write for the entity is about to be sent. already
// says the state row is marked (read under the entity's lock), which saves
// the round trip. Returns the database's error; the round must then not
// write.
func (d *doubter) mark(ctx context.Context, kind outbox.Kind, id string, already bool) error {
	key := lockKey(kind, id)
	if already || d.marked[key] {
		return nil
	}
	if _, err := d.conn.Exec(ctx, markInDoubtSQL, string(kind), id); err != nil {
		return fmt.Errorf("mark %s %s in doubt: %w", kind, id, err)
	}
	d.marked[key] = true
	return nil
}
