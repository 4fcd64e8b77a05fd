package emulator

import (
	"maps"
	"slices"
	"unicode/utf8"
)

const (
	metadataMaxKeys     = 50
	metadataMaxKeyLen   = 40
	metadataMaxValueLen = 500
)

// sharedFields are the parameters Products and Prices take alike: active
// and metadata.
type sharedFields struct {
	active      *bool
	metadata    map[string]string
	metaCleared bool
}

func parseSharedFields(f *form) (sharedFields, *apiError) {
	var sf sharedFields
	if active, ok, err := f.boolean("active"); err != nil {
		return sf, err
	} else if ok {
		sf.active = &active
	}
	meta, _, cleared, err := f.hash("metadata")
	if err != nil {
		return sf, err
	}
	sf.metadata, sf.metaCleared = meta, cleared
	return sf, nil
}

// activeOr returns the active parameter, or current when it was not sent.
func (sf sharedFields) activeOr(current bool) bool {
	if sf.active == nil {
		return current
	}
	return *sf.active
}

// mergedMetadata applies the metadata parameter to existing (nil on create):
// an empty value deletes its key, "metadata=" deletes every key, other keys
// merge. Lengths are counted in characters (runes), as Stripe does.
func (sf sharedFields) mergedMetadata(existing map[string]string) (map[string]string, *apiError) {
	out := map[string]string{}
	if !sf.metaCleared {
		maps.Copy(out, existing)
	}
	for _, k := range slices.Sorted(maps.Keys(sf.metadata)) {
		v := sf.metadata[k]
		if k == "" {
			return nil, errInvalid("", "metadata", "Invalid metadata: metadata keys must not be empty.")
		}
		if n := utf8.RuneCountInString(k); n > metadataMaxKeyLen {
			return nil, errInvalid("", "metadata",
				"Invalid metadata: metadata keys can be a maximum of %d characters, but '%s' is %d characters.",
				metadataMaxKeyLen, k, n)
		}
		if n := utf8.RuneCountInString(v); n > metadataMaxValueLen {
			return nil, errInvalid("", "metadata",
				"Invalid metadata: metadata values can be a maximum of %d characters, but the value for '%s' is %d characters.",
				metadataMaxValueLen, k, n)
		}
		if v == "" {
			delete(out, k)
			continue
		}
		out[k] = v
	}
	if len(out) > metadataMaxKeys {
		return nil, errInvalid("", "metadata",
			"Invalid metadata: metadata can have up to %d keys, but this object would have %d keys.",
			metadataMaxKeys, len(out))
	}
	return out, nil
}

// optionalText reads a string parameter that may be left out: on create an
// empty value is refused, on update it unsets the field.
func optionalText(f *form, name string, create bool) (value *string, unset bool, err *apiError) {
	s, ok, err := f.str(name)
	switch {
	case err != nil || !ok:
		return nil, false, err
	case s == "" && create:
		return nil, false, errEmptyString(name)
	case s == "":
		return nil, true, nil
	}
	return &s, false, nil
}

// setText applies what optionalText read to field.
func setText(field **string, value *string, unset bool) {
	switch {
	case unset:
		*field = nil
	case value != nil:
		*field = value
	}
}

func copyStringPtr(s *string) *string {
	if s == nil {
		return nil
	}
	v := *s
	return &v
}
