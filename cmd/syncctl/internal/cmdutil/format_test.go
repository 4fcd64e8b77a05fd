package cmdutil

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

func TestAge(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct {
		d    time.Duration
		want string
	}{
		{0, "0s"},
		{400 * time.Millisecond, "0s"},
		{600 * time.Millisecond, "1s"},
		{45 * time.Second, "45s"},
		{3*time.Minute + 12*time.Second, "3m12s"},
		{time.Hour, "1h0m"},
		{2*time.Hour + 5*time.Minute + 59*time.Second, "2h5m"},
		{27 * time.Hour, "1d3h"},
		{-90 * time.Second, "1m30s"},
	} {
		require.Equal(t, tt.want, Age(tt.d), tt.d.String())
	}
}

func TestIOStreams_When(t *testing.T) {
	t.Parallel()
	now := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	past := now.Add(-3 * time.Minute)
	future := now.Add(40 * time.Second)
	sydney := past.In(time.FixedZone("AEDT", 11*3600))

	tty, _, _ := Test(true)
	plain, _, _ := Test(false)
	require.Equal(t, "3m0s ago", tty.When(&past, now))
	require.Equal(t, "in 40s", tty.When(&future, now))
	require.Equal(t, "-", tty.When(nil, now))
	require.Equal(t, "2026-03-01T11:57:00Z", plain.When(&sydney, now), "plain output is UTC")
	require.Equal(t, "2026-03-01T12:00:40Z", plain.When(&future, now))
	require.Equal(t, "-", plain.When(nil, now))
}

func TestIOStreams_Cell(t *testing.T) {
	t.Parallel()
	tty, _, _ := Test(true)
	plain, _, _ := Test(false)
	msg := "stripe create_price: 500: an error\twith a tab\nand a second line"

	require.Equal(t, "stripe create_price: 500: an error with a tab", plain.Cell(msg, 10), "plain output keeps the whole first line")
	require.Equal(t, "stripe ...", tty.Cell(msg, 10))
	require.Equal(t, "short", tty.Cell("short", 10))
	require.Equal(t, "ééééééé...", tty.Cell("éééééééééééé", 10), "cut by runes, not bytes")
	require.Equal(t, "-", tty.Cell("  \n", 10))
	require.Equal(t, "-", plain.Cell("", 10))
}
