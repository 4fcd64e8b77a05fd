package emulator

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
)

// serveControl answers the /_emulator/ routes, which need no API key:
//
//	GET    /_emulator/state       objects by account, in Stripe's JSON shape
//	GET    /_emulator/requests    recorded requests
//	GET    /_emulator/stats       write_count, request_count, faults_injected, overlaps
//	POST   /_emulator/faults      add a Fault (JSON, snake_case)
//	DELETE /_emulator/faults      remove every fault
func (e *Emulator) serveControl(w http.ResponseWriter, r *http.Request) {
	route := r.Method + " " + strings.TrimSuffix(r.URL.Path, "/")
	switch route {
	case "GET /_emulator/state":
		writeControlJSON(w, http.StatusOK, e.stateWire())
	case "GET /_emulator/requests":
		writeControlJSON(w, http.StatusOK, e.Requests())
	case "GET /_emulator/stats":
		writeControlJSON(w, http.StatusOK, e.Stats())
	case "POST /_emulator/faults":
		var f Fault
		if err := decodeControlBody(r, &f); err != nil {
			writeControlError(w, http.StatusBadRequest, err.Error())
			return
		}
		e.AddFault(f)
		w.WriteHeader(http.StatusNoContent)
	case "DELETE /_emulator/faults":
		e.ClearFaults()
		w.WriteHeader(http.StatusNoContent)
	default:
		if e.serveWebhookControl(w, r, route) {
			return
		}
		writeControlError(w, http.StatusNotFound, "no control route "+route)
	}
}

func decodeControlBody(r *http.Request, v any) error {
	dec := json.NewDecoder(io.LimitReader(r.Body, maxBody))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return fmt.Errorf("invalid JSON body: %w", err)
	}
	return nil
}

func writeControlJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_, _ = w.Write(jsonBody(v))
}

func writeControlError(w http.ResponseWriter, status int, msg string) {
	writeControlJSON(w, status, map[string]any{"error": map[string]string{"message": msg}})
}
