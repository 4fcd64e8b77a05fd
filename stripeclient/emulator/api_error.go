package emulator

import (
	"encoding/json"
	"fmt"
	"maps"
	"net/http"
	"strings"
)

// apiError is an error answer in Stripe's shape.
type apiError struct {
	status  int
	typ     string
	code    string
	message string
	param   string
	// stored is true for an error the endpoint raised once it had started
	// executing: Stripe stores it under the request's Idempotency-Key and
	// replays it. Validation failures, rate limits and lock timeouts are not
	// stored (https://docs.stripe.com/api/idempotent_requests).
	stored bool
	// header holds headers the answer carries besides the usual ones, for
	// example Retry-After.
	header http.Header
}

func (e *apiError) body() []byte {
	type inner struct {
		Code    string `json:"code,omitempty"`
		DocURL  string `json:"doc_url,omitempty"`
		Message string `json:"message"`
		Param   string `json:"param,omitempty"`
		Type    string `json:"type"`
	}
	in := inner{Code: e.code, Message: e.message, Param: e.param, Type: e.typ}
	if e.code != "" {
		in.DocURL = "https://stripe.com/docs/error-codes/" + strings.ReplaceAll(e.code, "_", "-")
	}
	return jsonBody(struct {
		Error inner `json:"error"`
	}{in})
}

func jsonBody(v any) []byte {
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		// Only the emulator's own types are marshalled; they always encode.
		panic(fmt.Sprintf("stripe emulator: marshal response: %v", err))
	}
	return append(b, '\n')
}

func copyMetadata(m map[string]string) map[string]string {
	out := make(map[string]string, len(m))
	maps.Copy(out, m)
	return out
}

// errInvalid is a 400 invalid_request_error that validation raises, before
// the endpoint executes.
func errInvalid(code, param, format string, args ...any) *apiError {
	return &apiError{
		status:  http.StatusBadRequest,
		typ:     "invalid_request_error",
		code:    code,
		message: fmt.Sprintf(format, args...),
		param:   param,
	}
}

func errMissing(param string) *apiError {
	return errInvalid("parameter_missing", param, "Missing required param: %s.", param)
}

func errUnknownParam(param string) *apiError {
	return errInvalid("parameter_unknown", param, "Received unknown parameter: %s", param)
}

func errEmptyString(param string) *apiError {
	return errInvalid("parameter_invalid_empty", param,
		"You passed an empty string for '%[1]s'. We assume empty values are an attempt to unset a parameter; "+
			"however '%[1]s' cannot be unset. You should remove '%[1]s' from your request or supply a non-empty value.", param)
}

// errNoSuch is resource_missing: 404 for the object of the path, 400 for
// one named by a parameter. The endpoint raised it, so it is stored.
func errNoSuch(object, param, id string) *apiError {
	e := errInvalid("resource_missing", param, "No such %s: '%s'", object, id)
	if param == "id" {
		e.status = http.StatusNotFound
	}
	e.stored = true
	return e
}

// errAlreadyExists is resource_already_exists, raised by the endpoint.
func errAlreadyExists(param, message string) *apiError {
	e := errInvalid("resource_already_exists", param, "%s", message)
	e.stored = true
	return e
}

func errUnrecognizedURL(method, path string) *apiError {
	return &apiError{
		status: http.StatusNotFound,
		typ:    "invalid_request_error",
		message: fmt.Sprintf("Unrecognized request URL (%s: %s). Please see https://stripe.com/docs "+
			"or we can help at https://support.stripe.com/.", method, path),
	}
}

// err500 is Stripe's answer to an error of its own. stored says whether the
// endpoint had started executing.
func err500(stored bool) *apiError {
	return &apiError{
		status:  http.StatusInternalServerError,
		typ:     "api_error",
		message: "An unknown error occurred (injected by the Stripe emulator).",
		stored:  stored,
	}
}
