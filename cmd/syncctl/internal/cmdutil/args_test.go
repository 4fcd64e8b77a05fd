package cmdutil

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

func TestParseSince(t *testing.T) {
	t.Parallel()
	now := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

	for _, tt := range []struct {
		in        string
		want      time.Time
		wantUsage bool
	}{
		{in: "24h", want: now.Add(-24 * time.Hour)},
		{in: "90m", want: now.Add(-90 * time.Minute)},
		{in: "1h30m", want: now.Add(-90 * time.Minute)},
		{in: "7d", want: now.Add(-7 * 24 * time.Hour)},
		{in: "0s", want: now},
		{in: " 2h ", want: now.Add(-2 * time.Hour)},
		{in: "2026-02-28T09:30:00+11:00", want: time.Date(2026, 2, 27, 22, 30, 0, 0, time.UTC)},
		{in: "2026-02-28T09:30:00Z", want: time.Date(2026, 2, 28, 9, 30, 0, 0, time.UTC)},
		{in: "", wantUsage: true},
		{in: "-1h", wantUsage: true},
		{in: "yesterday", wantUsage: true},
		{in: "1.5d", wantUsage: true},
		{in: "d", wantUsage: true},
		{in: "2026-02-28", wantUsage: true},
		{in: "24", wantUsage: true},
	} {
		t.Run(tt.in, func(t *testing.T) {
			t.Parallel()
			got, err := ParseSince(tt.in, now)
			if tt.wantUsage {
				require.ErrorContains(t, err, "invalid --since")
				require.Equal(t, 2, ExitCode(err))
				return
			}
			require.NoError(t, err)
			require.True(t, tt.want.Equal(got), "want %s, got %s", tt.want, got)
		})
	}
}

func TestCheckLimit(t *testing.T) {
	t.Parallel()
	require.NoError(t, CheckLimit(1))
	require.NoError(t, CheckLimit(MaxLimit))
	for _, n := range []int{0, -1, MaxLimit + 1} {
		err := CheckLimit(n)
		require.ErrorContains(t, err, "invalid --limit")
		require.Equal(t, 2, ExitCode(err))
	}
}

func TestParseJobID(t *testing.T) {
	t.Parallel()
	id, err := ParseJobID(" 42 ")
	require.NoError(t, err)
	require.Equal(t, int64(42), id)
	for _, s := range []string{"", "0", "-3", "4.2", "42a", "99999999999999999999"} {
		_, err := ParseJobID(s)
		require.ErrorContains(t, err, "malformed job id", s)
		require.Equal(t, 2, ExitCode(err), s)
	}
}
