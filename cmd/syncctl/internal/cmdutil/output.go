package cmdutil

import (
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
)

// WriteJSON writes v as one indented JSON document.
func WriteJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

// Table writes aligned columns. The header row is printed only on a
// terminal, so scripts reading plain output get data rows alone.
type Table struct {
	tw       *tabwriter.Writer
	terminal bool
}

// NewTable starts a table on io.Out with the given header.
func NewTable(io *IOStreams, header ...string) *Table {
	t := &Table{tw: tabwriter.NewWriter(io.Out, 0, 4, 2, ' ', 0), terminal: io.IsTerminal}
	if t.terminal {
		t.Row(header...)
	}
	return t
}

// Row adds one row.
func (t *Table) Row(cells ...string) {
	fmt.Fprintln(t.tw, strings.Join(cells, "\t"))
}

// Flush writes the table out.
func (t *Table) Flush() error { return t.tw.Flush() }
