package pglimiter

import (
	"sync"
	"time"
)

// dbClock maps the database's clock onto this process's, so a waiter sleeps
// until its slot however long the reply reserving it took to arrive: a reply
// held up by a stall would otherwise wake its waiter that much late. It keeps
// the reading that pins the database's clock closest: the database's clock
// read serverAt at a local instant in the width before localAt. It is safe
// for concurrent use.
type dbClock struct {
	mu       sync.Mutex
	set      bool
	serverAt time.Time
	localAt  time.Time
	width    time.Duration
}

// maxClockDrift is how fast two machines' clocks may drift apart, NTP's
// bound with room to spare: the older a reading, the less closely it pins
// the database's clock.
const maxClockDrift = 500e-6

// observe learns from one reading of the database's clock, server, taken at
// a local instant between earliest and latest.
func (c *dbClock) observe(server, earliest, latest time.Time) {
	if earliest.After(latest) {
		earliest = latest
	}
	width := latest.Sub(earliest)
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.set {
		drift := c.drift(latest)
		predicted := c.localAt.Add(server.Sub(c.serverAt))
		// A reading the kept one cannot account for means the database's
		// clock was stepped: start again from this one.
		consistent := !predicted.Add(drift).Before(earliest) && !predicted.Add(-c.width-drift).After(latest)
		if consistent && width >= c.width+drift {
			return
		}
	}
	c.serverAt, c.localAt, c.width, c.set = server, latest, width, true
}

// local returns the local instant of the database's instant server, at the
// latest: a waiter that sleeps until it is never early.
func (c *dbClock) local(server time.Time) time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	now := time.Now()
	return c.localAt.Add(server.Sub(c.serverAt) + c.drift(now))
}

// drift is how far the clocks may have drifted since the kept reading. The
// caller holds c.mu.
func (c *dbClock) drift(now time.Time) time.Duration {
	return time.Duration(float64(now.Sub(c.localAt)) * maxClockDrift)
}
