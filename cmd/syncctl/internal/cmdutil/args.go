package cmdutil

import (
	"strconv"
	"strings"
	"time"
)

// ParseSince turns a --since value into the earliest time it admits: a
// duration back from now (Go syntax like "90m" or "24h", or whole days like
// "7d"), or an RFC 3339 time ("2026-03-01T09:00:00+11:00"). Returns a
// *UsageError for anything else, or for a negative duration.
func ParseSince(s string, now time.Time) (time.Time, error) {
	s = strings.TrimSpace(s)
	if t, err := time.Parse(time.RFC3339, s); err == nil {
		return t, nil
	}
	d, err := parseDuration(s)
	if err != nil || d < 0 {
		return time.Time{}, Usagef("invalid --since %q: want a duration like 24h or 7d, or an RFC 3339 time like 2026-03-01T09:00:00Z", s)
	}
	return now.Add(-d), nil
}

// parseDuration is time.ParseDuration plus whole days, which operators
// reach for and Go's syntax lacks.
func parseDuration(s string) (time.Duration, error) {
	if days, ok := strings.CutSuffix(s, "d"); ok {
		n, err := strconv.ParseUint(days, 10, 16)
		if err != nil {
			return 0, err
		}
		return time.Duration(n) * 24 * time.Hour, nil
	}
	return time.ParseDuration(s)
}

// MaxLimit is the largest --limit a listing accepts, River's own cap on one
// page of jobs.
const MaxLimit = 10_000

// CheckLimit returns a *UsageError unless n is a --limit between 1 and
// MaxLimit.
func CheckLimit(n int) error {
	if n < 1 || n > MaxLimit {
		return Usagef("invalid --limit %d: want 1 to %d", n, MaxLimit)
	}
	return nil
}

// ParseJobID parses a River job id. Returns a *UsageError unless s is a
// positive integer.
func ParseJobID(s string) (int64, error) {
	id, err := strconv.ParseInt(strings.TrimSpace(s), 10, 64)
	if err != nil || id < 1 {
		return 0, Usagef("malformed job id %q: want a positive integer", s)
	}
	return id, nil
}
