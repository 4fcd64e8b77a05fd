package cmdtest

import (
	"context"
	"reflect"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/lodgetix/stripe-sync/cmd/syncctl/internal/cmdutil"
)

// Parse executes the command with args but, in place of its run, captures
// the options it was given. Returns them with their Factory field cleared,
// so a test can compare them with a literal (nil if Execute failed before
// the run), and Execute's error.
func (c Command[O]) Parse(t testing.TB, args ...string) (*O, error) {
	t.Helper()
	f, _, _ := c.Factory(t, false)
	var got *O
	cmd := c.build(f, func(_ context.Context, o *O) error {
		got = o
		return nil
	})
	cmd.SetArgs(args)
	cmd.SetOut(f.IO.Out)
	cmd.SetErr(f.IO.ErrOut)
	err := cmd.Execute()
	if got != nil {
		if v := reflect.ValueOf(got).Elem(); v.Kind() == reflect.Struct {
			if field := v.FieldByName("Factory"); field.IsValid() && field.CanSet() {
				field.SetZero()
			}
		}
	}
	return got, err
}

// ParseCase is one argv -> options case: given Args, the command must
// parse them into Want, or fail with WantUsage or WantCobraErr.
type ParseCase[O any] struct {
	// Name names the subtest; Args follow the command's name on the command
	// line.
	Name string
	Args []string
	// Env, when set, replaces the Command's Env.
	Env map[string]string
	// Want is the options the run must receive, Factory aside.
	Want *O
	// WantUsage is part of the usage error (exit 2) the command must return.
	WantUsage string
	// WantCobraErr is part of the error cobra itself must return (an unknown
	// flag or command, a wrong number of arguments). root.Main maps those to
	// exit 2, so only the text is checked.
	WantCobraErr string
}

// ParseCases runs each case as a parallel subtest named after it. Fields of
// type time.Time are compared as instants (time.Time.Equal), as a parsed
// time carries a *time.Location of its own.
func (c Command[O]) ParseCases(t *testing.T, cases []ParseCase[O]) {
	t.Helper()
	for _, tc := range cases {
		t.Run(tc.Name, func(t *testing.T) {
			t.Parallel()
			cc := c
			if tc.Env != nil {
				cc.Env = tc.Env
			}
			got, err := cc.Parse(t, tc.Args...)
			switch {
			case tc.WantUsage != "":
				require.ErrorContains(t, err, tc.WantUsage)
				require.Equal(t, 2, cmdutil.ExitCode(err))
			case tc.WantCobraErr != "":
				require.ErrorContains(t, err, tc.WantCobraErr)
			default:
				require.NoError(t, err)
				require.NotNil(t, got, "the command never reached its run")
				sameInstants(t, tc.Want, got)
				require.Equal(t, tc.Want, got)
			}
		})
	}
}

var timeType = reflect.TypeFor[time.Time]()

// sameInstants requires each time.Time field of got to be the instant of
// want's, then copies want's over, so that require.Equal compares the rest.
func sameInstants[O any](t testing.TB, want, got *O) {
	t.Helper()
	w, g := reflect.ValueOf(want).Elem(), reflect.ValueOf(got).Elem()
	if w.Kind() != reflect.Struct {
		return
	}
	for i := range w.NumField() {
		field := w.Type().Field(i)
		if field.Type != timeType || !field.IsExported() {
			continue
		}
		wt, gt := w.Field(i).Interface().(time.Time), g.Field(i).Interface().(time.Time)
		require.True(t, wt.Equal(gt), "%s: want %s, got %s", field.Name, wt, gt)
		g.Field(i).Set(w.Field(i))
	}
}
