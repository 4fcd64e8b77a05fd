package jobs

import (
	"testing"

	"github.com/stretchr/testify/require"
)

func TestUnitAmount(t *testing.T) {
	t.Parallel()

	for _, tt := range []struct {
		numeric, currency string
		want              int64
	}{
		{"19.99", "aud", 1999},
		{"0.10", "aud", 10},
		{"1234567.89", "aud", 123456789},
		{"0", "aud", 0},
		{"0.00", "aud", 0},
		{"95", "aud", 9500},
		{"75.5", "usd", 7550},
		// 0.29 * 100 is 28.999999999999996 in float64: truncating it gives 28.
		{"0.29", "aud", 29},
		{"4.35", "aud", 435}, // float64: 434.99999999999994
		{"1500", "jpy", 1500},
		{"1500.00", "JPY", 1500},
		{"12000", "krw", 12000},
		{"5.125", "kwd", 5125},
		{"5.12", "bhd", 5120},
	} {
		got, err := UnitAmount(tt.numeric, tt.currency)
		require.NoError(t, err, tt.numeric)
		require.Equal(t, tt.want, got, "%s %s", tt.numeric, tt.currency)
	}

	for _, bad := range []struct{ numeric, currency, msg string }{
		{"", "aud", "null"},
		{"-1.00", "aud", "negative"},
		{"19.5", "jpy", "decimal places"},
		{"1.005", "aud", "decimal places"},
		{"abc", "aud", "not a number"},
	} {
		_, err := UnitAmount(bad.numeric, bad.currency)
		var dataErr *DataError
		require.ErrorAs(t, err, &dataErr, bad.numeric)
		require.Contains(t, err.Error(), bad.msg)
	}
}
