package outbox_test

import (
	"encoding/json"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/lodgetix/stripe-sync/outbox"
)

// TestKind_IDField pins IDField and JobKinds to what River stores for each
// kind's args, so SQL built from them matches the jobs Enqueue inserts.
func TestKind_IDField(t *testing.T) {
	t.Parallel()
	const id = "5e5e5e5e-0000-4000-8000-00000000abcd"
	jobKinds, fields := outbox.JobKinds(outbox.Kinds...), outbox.IDFields(outbox.Kinds...)
	require.Equal(t, []string{"event_id", "ticket_id", "organisation_id"}, fields)
	for i, k := range outbox.Kinds {
		args := k.Args(id)
		require.Equal(t, args.Kind(), jobKinds[i])
		encoded, err := json.Marshal(args)
		require.NoError(t, err)
		var m map[string]any
		require.NoError(t, json.Unmarshal(encoded, &m))
		require.Equal(t, map[string]any{fields[i]: id}, m, "the args hold the id under IDField and nothing else")
	}
}
