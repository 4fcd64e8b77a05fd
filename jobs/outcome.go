package jobs

import (
	"errors"

	"github.com/lodgetix/stripe-sync/outbox"
	"github.com/lodgetix/stripe-sync/stripeclient"
)

// Log statuses, as stripe_sync_log.status holds them.
const (
	StatusSuccess = "success"
	StatusFailed  = "failed"
	StatusSkipped = "skipped"
)

// Actions, as stripe_sync_log.action holds them.
const (
	ActionCreate    = "create"
	ActionUpdate    = "update"
	ActionArchive   = "archive"
	ActionDelete    = "delete"
	ActionUnchanged = "unchanged"
	ActionSync      = "sync"
)

// fingerprintArchived marks an object the sync archived because its row went
// away; any live row's fingerprint differs from it.
const fingerprintArchived = "archived"

// outcome is what one reconcile round decided and did. It becomes one
// stripe_sync_log row, an update of stripe_sync_state, and the River result.
type outcome struct {
	// version is the entity's wanted_version when its row was read: the
	// change this round acted on.
	version int64
	action  string
	status  string
	// account and objectID are what the log row names.
	account  string
	objectID string
	// pushed is set when Stripe now matches fingerprint: stripe_sync_state
	// records account, objectID and fingerprint.
	pushed      bool
	fingerprint string
	parentID    string
	// accounts, when not nil, replaces stripe_sync_state.accounts: the
	// accounts where objects may still be active after this round.
	accounts []string
	// pre are statements recorded with the outcome, run in the host's lock
	// order with the entity's own state row (see lockRank).
	pre     []stmt
	message string
	err     error
	// refused lists accounts that refused to archive a stale object (a
	// deauthorised account) although the round otherwise succeeded; they
	// stay in accounts and are marked unreachable (parkRefused); clearing the
	// mark enqueues the entity again for the clean-up. A parent's outcome
	// inside a ticket's round hands them to the ticket's own outcome.
	refused []string
}

type stmt struct {
	sql  string
	args []any
	// rank is the kind of row the statement locks; record runs statements
	// in rank order.
	rank lockRank
}

// lockRank orders the row locks a round's record takes the way the host's
// statements take theirs. A host DELETE of events locks the event rows, the
// ticket rows (the cascade), then, in its AFTER triggers, the events' state
// rows and only then the tickets' (PostgreSQL fires the triggers the cascade
// queues after the events' own). Taking ours in the same order, and the
// event's row first of all, makes the two wait for each other instead of
// deadlocking.
type lockRank int

const (
	rankHostRow lockRank = iota
	rankEventState
	rankTicketState
	// rankMarks runs after every state row is locked: statements that must
	// see what a concurrent transaction holding those rows committed (see
	// markFromRound).
	rankMarks
)

func stateRank(kind outbox.Kind) lockRank {
	if kind == outbox.KindTicket {
		return rankTicketState
	}
	return rankEventState
}

func (o *outcome) succeed(action, account, objectID, fp string) *outcome {
	o.action, o.status = action, StatusSuccess
	o.account, o.objectID = account, objectID
	o.pushed, o.fingerprint = true, fp
	return o
}

func (o *outcome) skip(action, reason string) *outcome {
	o.action, o.status, o.message = action, StatusSkipped, reason
	return o
}

func (o *outcome) fail(action string, err error) *outcome {
	o.action, o.status, o.err, o.message = action, StatusFailed, err, err.Error()
	return o
}

// permanent reports whether retrying cannot help until the row changes.
func (o *outcome) permanent() bool {
	var dataErr *DataError
	return o.err != nil && (errors.As(o.err, &dataErr) || stripeclient.IsClass(o.err, stripeclient.ClassInvalid))
}
