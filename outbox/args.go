package outbox

import (
	"fmt"

	"github.com/riverqueue/river"
	"github.com/riverqueue/river/rivertype"
)

// Queue is the River queue every sync job runs on, so the worker can share a
// database (and a River installation) with other River users.
const Queue = "stripe_sync"

// DefaultSchema is the schema River's tables live in unless the operator
// names another (migrations' DefaultSchema mirrors it; a test pins the two).
// River clients take it as river.Config.Schema, and a raw insert notifies
// River's channel "<schema>.river_insert".
const DefaultSchema = "stripe_sync"

// MaxAttempts is how many times a job runs before it is discarded. With the
// backoff capped by package jobs, 25 attempts cover a Stripe outage of hours.
// The SQL enqueue function writes the same number.
const MaxAttempts = 25

// Lanes. River works the lowest priority number first, so a job in the live
// lane is fetched before every job waiting in the bulk lane, however long
// that lane's backlog.
const (
	// PriorityLive is the live lane: changes made by the host (the
	// triggers) and by `syncctl enqueue`. The triggers write it.
	PriorityLive = 1
	// PriorityBulk is the bulk lane: backfill, reconcile --fix, an
	// organisation's account move fanning out, the resync job. Live work
	// for an entity whose bulk job still waits lifts that job to
	// PriorityLive (see Enqueue and the SQL function
	// stripe_sync_enqueue_many); it stays one job.
	PriorityBulk = 3
)

// Priority is the priority a job's args ask for when the caller names no
// lane: the live lane, River's default.
const Priority = PriorityLive

// Lane is the name of the lane a job's priority puts it in: "live" for
// PriorityLive or higher, "bulk" for anything lower.
func Lane(priority int) string {
	if priority <= PriorityLive {
		return "live"
	}
	return "bulk"
}

// UniqueStates are the job states a new job is deduplicated against: River's
// required four plus retryable, so an entity has at most one waiting job.
// Never completed: with it, every change in the day after a sync would be
// dropped as a duplicate.
var UniqueStates = []rivertype.JobState{
	rivertype.JobStateAvailable,
	rivertype.JobStatePending,
	rivertype.JobStateRetryable,
	rivertype.JobStateRunning,
	rivertype.JobStateScheduled,
}

// Kind is an entity type the sync knows.
type Kind string

const (
	KindEvent  Kind = "event"
	KindTicket Kind = "ticket"
	KindOrg    Kind = "org"
)

// Kinds lists every Kind, in the order commands print them.
var Kinds = []Kind{KindEvent, KindTicket, KindOrg}

// ParseKind accepts a Kind's name or its job kind ("event" or
// "stripe_sync_event"). Returns an error naming the valid kinds otherwise.
func ParseKind(s string) (Kind, error) {
	for _, k := range Kinds {
		if s == string(k) || s == k.JobKind() {
			return k, nil
		}
	}
	return "", fmt.Errorf("unknown kind %q (want event, ticket or org)", s)
}

// JobKind is the River job kind that syncs entities of this Kind.
func (k Kind) JobKind() string { return "stripe_sync_" + string(k) }

// Args returns the job args naming one entity of this Kind.
func (k Kind) Args(id string) river.JobArgs {
	switch k {
	case KindEvent:
		return EventArgs{EventID: id}
	case KindTicket:
		return TicketArgs{TicketID: id}
	case KindOrg:
		return OrgArgs{OrganisationID: id}
	}
	panic(fmt.Sprintf("outbox: unknown kind %q", string(k)))
}

func insertOpts() river.InsertOpts {
	return river.InsertOpts{
		MaxAttempts: MaxAttempts,
		Priority:    Priority,
		Queue:       Queue,
		UniqueOpts:  river.UniqueOpts{ByArgs: true, ByState: UniqueStates},
	}
}

// EventArgs names an event whose Product must match its row. Only the id
// travels: the worker reads the current row.
type EventArgs struct {
	EventID string `json:"event_id"`
}

func (EventArgs) Kind() string                 { return KindEvent.JobKind() }
func (EventArgs) InsertOpts() river.InsertOpts { return insertOpts() }

// TicketArgs names a ticket type whose Price must match its row.
type TicketArgs struct {
	TicketID string `json:"ticket_id"`
}

func (TicketArgs) Kind() string                 { return KindTicket.JobKind() }
func (TicketArgs) InsertOpts() river.InsertOpts { return insertOpts() }

// OrgArgs names an organisation whose catalogue must be on its current
// connected account.
type OrgArgs struct {
	OrganisationID string `json:"organisation_id"`
}

func (OrgArgs) Kind() string                 { return KindOrg.JobKind() }
func (OrgArgs) InsertOpts() river.InsertOpts { return insertOpts() }
