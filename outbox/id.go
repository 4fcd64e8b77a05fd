package outbox

import (
	"fmt"
	"strings"
)

// InvalidIDError is returned for an entity id that is not a UUID.
type InvalidIDError struct {
	ID string
}

func (e *InvalidIDError) Error() string {
	return fmt.Sprintf("malformed id %q: want a UUID like 0e000000-0000-4000-8000-000000000001", e.ID)
}

// ParseID returns id in PostgreSQL's canonical uuid text form (lower case,
// hyphenated). Unique keys hash the id's text, and the triggers hash
// uuid::text, so every id must go through here before it reaches River.
// Returns an *InvalidIDError if id is not a UUID.
func ParseID(id string) (string, error) {
	s := strings.ToLower(strings.TrimSpace(id))
	s = strings.TrimSuffix(strings.TrimPrefix(s, "{"), "}")
	if len(s) == 32 {
		s = s[0:8] + "-" + s[8:12] + "-" + s[12:16] + "-" + s[16:20] + "-" + s[20:]
	}
	if len(s) != 36 {
		return "", &InvalidIDError{ID: id}
	}
	for i, c := range s {
		switch i {
		case 8, 13, 18, 23:
			if c != '-' {
				return "", &InvalidIDError{ID: id}
			}
		default:
			if !(c >= '0' && c <= '9' || c >= 'a' && c <= 'f') {
				return "", &InvalidIDError{ID: id}
			}
		}
	}
	return s, nil
}
