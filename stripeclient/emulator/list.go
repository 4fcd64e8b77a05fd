package emulator

import (
	"cmp"
	"slices"
)

const (
	defaultLimit = 10
	maxLimit     = 100
)

// record is an object the emulator stores.
type record interface {
	// sequence orders records by creation, so lists are stable even when
	// several share a Created second.
	sequence() uint64
	// createdAt is the Created time Stripe shows, in Unix seconds.
	createdAt() int64
	objectID() string
	renderAny() any
}

// listJSON is a list as Stripe renders it.
type listJSON struct {
	Object  string `json:"object"`
	Data    []any  `json:"data"`
	HasMore bool   `json:"has_more"`
	URL     string `json:"url"`
}

// getObject answers a retrieve of objects[c.id].
func getObject[R record](c *call, object string, objects map[string]R) (any, string, *apiError) {
	if err := c.form.check("expand"); err != nil {
		return nil, c.id, err
	}
	r, ok := objects[c.id]
	if !ok {
		return nil, c.id, errNoSuch(object, "id", c.id)
	}
	return r.renderAny(), r.objectID(), nil
}

// listObjects answers a list of the objects keep accepts, newest first, one
// page of limit (default 10, at most 100) after starting_after. Only the
// paging stripe-go's iterator uses is modelled: no ending_before.
func listObjects[R record](f *form, object, url string, objects map[string]R, keep func(R) bool) (any, string, *apiError) {
	limit := defaultLimit
	if n, ok, err := f.integer("limit"); err != nil {
		return nil, "", err
	} else if ok {
		if n < 1 || n > maxLimit {
			return nil, "", errInvalid("", "limit",
				"Invalid integer: limit must be between 1 and %d, but you passed %d.", maxLimit, n)
		}
		limit = int(n)
	}
	var after uint64
	if id, ok, err := f.str("starting_after"); err != nil {
		return nil, "", err
	} else if ok {
		cursor, found := objects[id]
		if !found {
			return nil, "", errNoSuch(object, "starting_after", id)
		}
		after = cursor.sequence()
	}

	var items []R
	for _, r := range objects {
		if (after == 0 || r.sequence() < after) && keep(r) {
			items = append(items, r)
		}
	}
	slices.SortFunc(items, func(a, b R) int { return cmp.Compare(b.sequence(), a.sequence()) })
	out := listJSON{Object: "list", Data: []any{}, URL: url}
	if len(items) > limit {
		items, out.HasMore = items[:limit], true
	}
	for _, r := range items {
		out.Data = append(out.Data, r.renderAny())
	}
	return out, "", nil
}
