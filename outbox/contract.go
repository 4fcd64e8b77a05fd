package outbox

// JobKinds returns the River job kind of each of kinds, in order: the
// values of river_job.kind a query over those kinds' jobs matches.
func JobKinds(kinds ...Kind) []string {
	out := make([]string, len(kinds))
	for i, k := range kinds {
		out[i] = k.JobKind()
	}
	return out
}

// IDField is the JSON field of k's job args that holds the entity id
// ("event_id" for KindEvent): what SQL over river_job.args matches on, for
// example `args @> jsonb_build_object(<IDField>, <id>)`, which River's GIN
// index on args serves.
func (k Kind) IDField() string { return argsIDField(k) }

// IDFields returns the IDField of each of kinds, in order: with JobKinds,
// what a query over several kinds' jobs unnests alongside the entity types,
// so that its SQL spells no kind or argument key of its own.
func IDFields(kinds ...Kind) []string {
	out := make([]string, len(kinds))
	for i, k := range kinds {
		out[i] = k.IDField()
	}
	return out
}
