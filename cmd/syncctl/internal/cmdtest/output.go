package cmdtest

import (
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

// Keys returns m's keys in no particular order, for pinning the field names
// of a --json document with require.ElementsMatch.
func Keys(m map[string]any) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	return out
}

// FirstColumn returns the first field of each non-blank line of a table,
// one a line: enough to tell which rows a filter kept.
func FirstColumn(table string) string {
	var b strings.Builder
	for _, line := range strings.Split(table, "\n") {
		if fields := strings.Fields(line); len(fields) > 0 {
			b.WriteString(fields[0] + "\n")
		}
	}
	return b.String()
}

// RowsCase is one filter case of a listing: run with Args, the command must
// print the rows whose first fields, one a line, are Want.
type RowsCase struct {
	// Name names the subtest; Args follow the command's name on the command
	// line.
	Name string
	Args []string
	// Want is the first field of each row printed, one a line.
	Want string
}

// RowsCases runs each case as a parallel subtest named after it, the
// command printing off a terminal (no header row).
func (c Command[O]) RowsCases(t *testing.T, cases []RowsCase) {
	t.Helper()
	for _, tc := range cases {
		t.Run(tc.Name, func(t *testing.T) {
			t.Parallel()
			out, _ := c.MustRun(t, false, tc.Args...)
			require.Equal(t, tc.Want, FirstColumn(out))
		})
	}
}
