package pglimiter

import (
	"math"
	"slices"
	"time"

	"github.com/lodgetix/stripe-sync/stripeclient"
)

// GlobalBucket is the stripe_sync_rate_limit bucket every request takes a
// token from.
const GlobalBucket = "global"

// AccountBucket returns the bucket of one connected account's requests.
func AccountBucket(account string) string { return "acct:" + account }

// EndpointBucket returns the bucket of one endpoint's requests (method and
// route template, for example "POST /v1/prices/{id}"), across accounts.
func EndpointBucket(endpoint string) string { return "endpoint:" + endpoint }

// burst is how many requests a bucket lets go at once after a quiet spell:
// 1, at any rate. Stripe counts requests in a sliding one-second window, so a
// burst after a quiet spell only moves requests into a window that the
// requests paced after it fill anyway, and those past the rate are refused
// (429).
const burst = 1

// jitterMargin is how much further apart the limiter spaces requests than the
// rate alone asks: each run of perSecond requests spans 1 s plus this, so a
// bucket admits at perSecond / 1.03, 97% of it. It is a deliberate margin for
// the jitter between our admission time and the time Stripe sees the request
// (timer wake-up, scheduling, connection set-up, network): Stripe counts
// requests in a sliding window, so at exactly the rate a request that reaches
// Stripe a few milliseconds late puts perSecond + 1 requests in the window
// that ends one second after it, and the last is refused. `make bench`
// (figure 4, a strict sliding window on a loaded 2-core machine) measured
// 20 ms too little: such delays reach 20-30 ms there.
const jitterMargin = 30 * time.Millisecond

// paced returns the rate a bucket limited to perSecond admits at.
func paced(perSecond float64) float64 {
	return perSecond / (1 + jitterMargin.Seconds())
}

// limited reports whether perSecond is a limit at all.
func limited(perSecond float64) bool { return perSecond > 0 && !math.IsInf(perSecond, 1) }

// minLead is the least a narrower bucket (an account's, an endpoint's) may
// be booked ahead and still reserve: enough to absorb the time a waiter
// takes to wake and ask.
const minLead = 10 * time.Millisecond

// takeArgs are stripe_sync_rate_take's per-bucket arguments.
type takeArgs struct {
	names     []string
	perSecond []float64
	burst     []int32
	maxLead   []float64
}

func (a *takeArgs) add(name string, perSecond, maxLead float64) {
	a.names = append(a.names, name)
	a.perSecond = append(a.perSecond, paced(perSecond))
	a.burst = append(a.burst, burst)
	a.maxLead = append(a.maxLead, maxLead)
}

// buckets lists the buckets req takes from: "global" first, then the
// endpoint's and the account's in name order. stripe_sync_rate_take locks
// them in this order, the same for every caller, so two takes never
// deadlock.
//
// Only the global bucket reserves a slot however far ahead: a slot reserved
// in every bucket moves each bucket's next slot to it, so a backlogged
// endpoint or account reserving far ahead would hold the global bucket there
// and slow every other one. The narrower buckets therefore reserve only
// within the global bucket's tolerance, and their waiters ask again when
// their slot comes near.
func (l *Limiter) buckets(req stripeclient.Request) takeArgs {
	var a takeArgs
	narrowLead := math.Inf(1)
	if limited(l.opts.Rate) {
		a.add(GlobalBucket, l.opts.Rate, math.Inf(1))
		narrowLead = max(float64(burst-1)/paced(l.opts.Rate), minLead.Seconds())
	}
	var narrow takeArgs
	if req.Endpoint != "" && limited(l.opts.EndpointRate) {
		narrow.add(EndpointBucket(req.Endpoint), l.opts.EndpointRate, narrowLead)
	}
	if req.Account != "" && limited(l.opts.AccountRate) {
		narrow.add(AccountBucket(req.Account), l.opts.AccountRate, narrowLead)
	}
	if len(narrow.names) == 2 && narrow.names[0] > narrow.names[1] {
		slices.Reverse(narrow.names)
		slices.Reverse(narrow.perSecond)
		slices.Reverse(narrow.burst)
		slices.Reverse(narrow.maxLead)
	}
	a.names = append(a.names, narrow.names...)
	a.perSecond = append(a.perSecond, narrow.perSecond...)
	a.burst = append(a.burst, narrow.burst...)
	a.maxLead = append(a.maxLead, narrow.maxLead...)
	return a
}
