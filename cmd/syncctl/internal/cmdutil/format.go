package cmdutil

import (
	"fmt"
	"strings"
	"time"
)

// Age formats d for people, to the second and in at most two units:
// "45s", "3m12s", "2h5m", "3d4h". A negative d formats as its magnitude.
func Age(d time.Duration) string {
	if d < 0 {
		d = -d
	}
	s := int64(d.Round(time.Second) / time.Second)
	days, hours, mins, secs := s/86400, s/3600%24, s/60%60, s%60
	switch {
	case days > 0:
		return fmt.Sprintf("%dd%dh", days, hours)
	case hours > 0:
		return fmt.Sprintf("%dh%dm", hours, mins)
	case mins > 0:
		return fmt.Sprintf("%dm%ds", mins, secs)
	default:
		return fmt.Sprintf("%ds", secs)
	}
}

// When formats t for a table cell: on a terminal, relative to now ("3m12s
// ago", "in 40s"); otherwise as an RFC 3339 UTC time, which does not change
// with the moment a script runs. A nil t is "-".
func (io *IOStreams) When(t *time.Time, now time.Time) string {
	switch {
	case t == nil:
		return "-"
	case !io.IsTerminal:
		return t.UTC().Format(time.RFC3339)
	case t.After(now):
		return "in " + Age(t.Sub(now))
	default:
		return Age(now.Sub(*t)) + " ago"
	}
}

// Cell formats free text (an error message) for a table cell: its first
// line, cut to width runes with "..." on a terminal; "-" when empty, so
// plain output keeps its columns.
func (io *IOStreams) Cell(s string, width int) string {
	s, _, _ = strings.Cut(strings.TrimSpace(s), "\n")
	s = strings.TrimSpace(strings.ReplaceAll(s, "\t", " "))
	if s == "" {
		return "-"
	}
	if io.IsTerminal {
		if r := []rune(s); len(r) > width {
			return string(r[:width-3]) + "..."
		}
	}
	return s
}
