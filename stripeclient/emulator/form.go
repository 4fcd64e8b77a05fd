package emulator

import (
	"net/url"
	"sort"
	"strconv"
	"strings"
)

// form is a request's parameters in Stripe's bracket encoding: a top-level
// name is either a scalar (name=v) or carries sub-keys (name[k]=v, name[0]=v,
// name[]=v). Whether sub-keys are a hash or a list is up to the endpoint.
type form struct {
	params map[string]*formParam
	// bad holds keys nested deeper than one level, which no modelled
	// endpoint accepts.
	bad []string
}

type formParam struct {
	scalar *string
	subs   []formSub
}

type formSub struct {
	key   string
	value string
}

func parseForm(values url.Values) *form {
	f := &form{params: map[string]*formParam{}}
	keys := make([]string, 0, len(values))
	for k := range values {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		vals := values[k]
		base, sub, hasSub, ok := splitFormKey(k)
		if !ok {
			f.bad = append(f.bad, k)
			continue
		}
		p := f.params[base]
		if p == nil {
			p = &formParam{}
			f.params[base] = p
		}
		if !hasSub {
			v := vals[len(vals)-1]
			p.scalar = &v
			continue
		}
		for _, v := range vals {
			p.subs = append(p.subs, formSub{key: sub, value: v})
		}
	}
	return f
}

// splitFormKey splits "name[sub]" into its parts; ok is false for deeper
// nesting or a malformed key.
func splitFormKey(k string) (base, sub string, hasSub, ok bool) {
	i := strings.IndexByte(k, '[')
	if i < 0 {
		return k, "", false, !strings.ContainsRune(k, ']') && k != ""
	}
	base, rest := k[:i], k[i+1:]
	if base == "" || !strings.HasSuffix(rest, "]") {
		return "", "", false, false
	}
	sub = rest[:len(rest)-1]
	if strings.ContainsAny(sub, "[]") {
		return "", "", false, false
	}
	return base, sub, true, true
}

// check rejects any parameter not in allowed, in sorted order so the answer
// is deterministic.
func (f *form) check(allowed ...string) *apiError {
	if len(f.bad) > 0 {
		return errUnknownParam(f.bad[0])
	}
	names := make([]string, 0, len(f.params))
	for n := range f.params {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		found := false
		for _, a := range allowed {
			if n == a {
				found = true
				break
			}
		}
		if !found {
			return errUnknownParam(n)
		}
	}
	return nil
}

func (f *form) has(name string) bool {
	_, ok := f.params[name]
	return ok
}

// str returns a scalar parameter.
func (f *form) str(name string) (string, bool, *apiError) {
	p, ok := f.params[name]
	if !ok {
		return "", false, nil
	}
	if p.scalar == nil || len(p.subs) > 0 {
		return "", true, errInvalid("parameter_invalid_string", name, "Invalid string: %s must be a string", name)
	}
	return *p.scalar, true, nil
}

func (f *form) boolean(name string) (bool, bool, *apiError) {
	s, ok, err := f.str(name)
	if !ok || err != nil {
		return false, ok, err
	}
	switch s {
	case "true":
		return true, true, nil
	case "false":
		return false, true, nil
	}
	return false, true, errInvalid("", name, "Invalid boolean: %s", s)
}

func (f *form) integer(name string) (int64, bool, *apiError) {
	s, ok, err := f.str(name)
	if !ok || err != nil {
		return 0, ok, err
	}
	n, perr := strconv.ParseInt(s, 10, 64)
	if perr != nil {
		return 0, true, errInvalid("parameter_invalid_integer", name, "Invalid integer: %s", s)
	}
	return n, true, nil
}

// list returns an array parameter given as name[0]=..., name[]=... in index
// order. cleared is true when it was sent as the empty string (name=), which
// is how Stripe clients empty an array.
func (f *form) list(name string) (vals []string, present, cleared bool, err *apiError) {
	p, present, cleared, err := f.compound(name, "array")
	if p == nil {
		return nil, present, cleared, err
	}
	type item struct {
		idx   int
		order int
		value string
	}
	items := make([]item, 0, len(p.subs))
	for i, s := range p.subs {
		idx := int(^uint(0) >> 1)
		if s.key != "" {
			n, perr := strconv.Atoi(s.key)
			if perr != nil || n < 0 {
				return nil, true, false, errInvalid("parameter_invalid_array", name, "Invalid array")
			}
			idx = n
		}
		items = append(items, item{idx: idx, order: i, value: s.value})
	}
	sort.SliceStable(items, func(i, j int) bool {
		if items[i].idx != items[j].idx {
			return items[i].idx < items[j].idx
		}
		return items[i].order < items[j].order
	})
	for _, it := range items {
		vals = append(vals, it.value)
	}
	return vals, true, false, nil
}

// hash returns a hash parameter given as name[key]=value. cleared is true
// when it was sent as the empty string (name=), which unsets every key.
func (f *form) hash(name string) (vals map[string]string, present, cleared bool, err *apiError) {
	p, present, cleared, err := f.compound(name, "hash")
	if p == nil {
		return nil, present, cleared, err
	}
	vals = make(map[string]string, len(p.subs))
	for _, s := range p.subs {
		vals[s.key] = s.value
	}
	return vals, true, false, nil
}

// compound returns a parameter of sub-keys (kind "array" or "hash"), or nil
// when it is absent, was sent as the empty string (cleared), or is a
// scalar (an error).
func (f *form) compound(name, kind string) (p *formParam, present, cleared bool, err *apiError) {
	p, ok := f.params[name]
	switch {
	case !ok:
		return nil, false, false, nil
	case p.scalar == nil:
		return p, true, false, nil
	case *p.scalar == "" && len(p.subs) == 0:
		return nil, true, true, nil
	}
	return nil, true, false, errInvalid("parameter_invalid_"+kind, name, "Invalid %s", kind)
}
