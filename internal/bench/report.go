package bench

import (
	"encoding/json"
	"fmt"
	"io"
	"math"
	"slices"
	"strings"
	"text/tabwriter"
	"time"
)

// Stats summarises one quantity over the repetitions of a run.
type Stats struct {
	Median  float64   `json:"median"`
	Min     float64   `json:"min"`
	Max     float64   `json:"max"`
	Samples []float64 `json:"samples"`
}

// MarshalJSON writes NaN and infinities, which JSON lacks, as null.
func (s Stats) MarshalJSON() ([]byte, error) {
	samples := make([]*float64, len(s.Samples))
	for i := range s.Samples {
		samples[i] = finite(s.Samples[i])
	}
	return json.Marshal(struct {
		Median  *float64   `json:"median"`
		Min     *float64   `json:"min"`
		Max     *float64   `json:"max"`
		Samples []*float64 `json:"samples"`
	}{finite(s.Median), finite(s.Min), finite(s.Max), samples})
}

func finite(x float64) *float64 {
	if math.IsNaN(x) || math.IsInf(x, 0) {
		return nil
	}
	return &x
}

// NewStats returns the median, min and max of samples (all NaN when there
// are none). The median of an even count is the mean of the middle two.
func NewStats(samples []float64) Stats {
	s := Stats{Samples: append([]float64{}, samples...), Median: math.NaN(), Min: math.NaN(), Max: math.NaN()}
	if len(samples) == 0 {
		return s
	}
	sorted := slices.Clone(samples)
	slices.Sort(sorted)
	n := len(sorted)
	s.Min, s.Max = sorted[0], sorted[n-1]
	if n%2 == 1 {
		s.Median = sorted[n/2]
	} else {
		s.Median = (sorted[n/2-1] + sorted[n/2]) / 2
	}
	return s
}

// Percentile returns the p-th percentile (0 < p <= 100) of samples by the
// nearest-rank method: the smallest sample with at least p% of the samples at
// or below it. Returns NaN for no samples.
func Percentile(samples []float64, p float64) float64 {
	if len(samples) == 0 {
		return math.NaN()
	}
	sorted := slices.Clone(samples)
	slices.Sort(sorted)
	rank := int(math.Ceil(p / 100 * float64(len(sorted))))
	return sorted[min(max(rank, 1), len(sorted))-1]
}

// Goal is a figure's target.
type Goal struct {
	// On is "ratio" or "value": which column the target applies to.
	On string `json:"on"`
	// Op is one of ">=", "<=", "<", "==".
	Op string `json:"op"`
	// Bound is the number Op compares with.
	Bound float64 `json:"bound"`
}

// String renders the goal as the table's target column shows it.
func (g *Goal) String() string {
	if g == nil {
		return "-"
	}
	prefix := ""
	if g.On == "value" {
		prefix = "value "
	}
	return fmt.Sprintf("%s%s %s", prefix, g.Op, trimFloat(g.Bound))
}

// met reports whether x satisfies the goal.
func (g *Goal) met(x float64) bool {
	switch g.Op {
	case ">=":
		return x >= g.Bound
	case "<=":
		return x <= g.Bound
	case "<":
		return x < g.Bound
	case "==":
		return x == g.Bound
	}
	return false
}

// Row is one line of the table: a measured value, the baseline measured in
// the same repetition on the same database server, and their ratio.
type Row struct {
	// Figure numbers the figure and names the measurement.
	Figure string `json:"figure"`
	// Unit of Value and Baseline, for example "updates/s" or "ms".
	Unit string `json:"unit"`
	// BaselineName says what the baseline is.
	BaselineName string `json:"baseline_name"`
	Value        Stats  `json:"value"`
	Baseline     Stats  `json:"baseline"`
	// Ratio is value / baseline, per repetition; its median is not
	// necessarily the ratio of the medians.
	Ratio Stats `json:"ratio"`
	Goal  *Goal `json:"target,omitempty"`
	// Met is whether the median satisfies Goal; absent without a goal.
	Met *bool `json:"met,omitempty"`
	// Note carries anything a reader needs to interpret the row.
	Note string `json:"note,omitempty"`
}

// newRow builds a row from per-repetition values and baselines (same
// length, same order), computing the per-repetition ratios. A row without
// baselines has no ratio.
func newRow(figure, unit, baselineName string, values, baselines []float64, goal *Goal, note string) Row {
	ratios := make([]float64, 0, len(values))
	for i, v := range values {
		if i < len(baselines) {
			ratios = append(ratios, ratio(v, baselines[i]))
		}
	}
	r := Row{
		Figure: figure, Unit: unit, BaselineName: baselineName,
		Value: NewStats(values), Baseline: NewStats(baselines), Ratio: NewStats(ratios),
		Goal: goal, Note: note,
	}
	if goal != nil {
		x := r.Ratio.Median
		if goal.On == "value" {
			x = r.Value.Median
		}
		met := goal.met(x)
		r.Met = &met
	}
	return r
}

// ratio is v / b, with 0/0 = 1 (the same nothing) and x/0 = +Inf.
func ratio(v, b float64) float64 {
	if b == 0 {
		if v == 0 {
			return 1
		}
		return math.Inf(1)
	}
	return v / b
}

// Report is everything one run measured.
type Report struct {
	// StartedAt is when the run began (UTC, whole seconds).
	StartedAt time.Time `json:"started_at"`
	// Duration is the whole run's wall time, set when it finished.
	Duration string `json:"duration"`
	// Repetitions is how many times every figure ran.
	Repetitions int `json:"repetitions"`
	// Server is the PostgreSQL server's version string.
	Server string `json:"server"`
	// Machine describes where it ran (CPUs, Go version).
	Machine string `json:"machine"`
	Rows    []Row  `json:"rows"`
	// Notes are facts about the run as a whole (settings, profile paths).
	Notes []string `json:"notes,omitempty"`
}

// WriteJSON writes the report as one indented JSON document.
func (r *Report) WriteJSON(w io.Writer) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(r)
}

// WriteTable writes the report as one aligned table, followed by each row's
// note.
func (r *Report) WriteTable(w io.Writer) error {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight|tabwriter.Debug)
	fmt.Fprintln(tw, "figure\tvalue\tbaseline\tratio\tmin\tmax\ttarget\tmet\t")
	for _, row := range r.Rows {
		met := "-"
		if row.Met != nil {
			met = map[bool]string{true: "yes", false: "NO"}[*row.Met]
		}
		fmt.Fprintf(tw, "%s\t%s %s\t%s\t%s\t%s\t%s\t%s\t%s\t\n",
			row.Figure, num(row.Value.Median), row.Unit, num(row.Baseline.Median),
			num(row.Ratio.Median), num(row.Ratio.Min), num(row.Ratio.Max), row.Goal, met)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	fmt.Fprintln(w)
	for _, row := range r.Rows {
		fmt.Fprintf(w, "%s: baseline = %s; value %s..%s over %d repetitions.", row.Figure, row.BaselineName,
			num(row.Value.Min), num(row.Value.Max), len(row.Value.Samples))
		if row.Note != "" {
			fmt.Fprintf(w, " %s", row.Note)
		}
		fmt.Fprintln(w)
	}
	for _, n := range r.Notes {
		fmt.Fprintln(w, n)
	}
	return nil
}

// num formats a figure with three significant digits (integers as they
// are).
func num(x float64) string {
	switch {
	case math.IsNaN(x):
		return "-"
	case math.IsInf(x, 0):
		return "inf"
	case x == math.Trunc(x) && math.Abs(x) < 1e9:
		return fmt.Sprintf("%.0f", x)
	case math.Abs(x) >= 100:
		return fmt.Sprintf("%.0f", x)
	case math.Abs(x) >= 10:
		return fmt.Sprintf("%.1f", x)
	default:
		return fmt.Sprintf("%.2f", x)
	}
}

func trimFloat(x float64) string {
	return strings.TrimRight(strings.TrimRight(fmt.Sprintf("%.2f", x), "0"), ".")
}
