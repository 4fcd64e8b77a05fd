package root

import (
	"regexp"
	"strings"
	"testing"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
	"github.com/stretchr/testify/require"

	"github.com/lodgetix/stripe-sync/cmd/syncctl/internal/cmdtest"
	"github.com/lodgetix/stripe-sync/cmd/syncctl/internal/cmdutil"
)

// envValues are, by pflag type, a value each flag of the type must take from
// its variable, how the flag then prints it, a value it must refuse ("" when
// the type takes any string), and a command-line value that must win over the
// variable, as the flag prints it.
var envValues = map[string]struct{ set, want, bad, argv string }{
	"bool":        {set: "true", want: "true", bad: "maybe", argv: "false"},
	"int":         {set: "7", want: "7", bad: "seven", argv: "3"},
	"float64":     {set: "2.5", want: "2.5", bad: "fast", argv: "1.5"},
	"duration":    {set: "90s", want: "1m30s", bad: "soon", argv: "1s"},
	"string":      {set: "from-env", want: "from-env", argv: "from-argv"},
	"stringSlice": {set: "a,b", want: "[a,b]", argv: "[c]"},
}

// legacyEnv are the variables operators already set, which keep their names.
var legacyEnv = map[string]string{
	"database-url": "DATABASE_URL", "schema": "STRIPE_SYNC_SCHEMA", "stripe-api-base": "STRIPE_API_BASE",
}

// commandFlag is one flag of one runnable command, by the command's path.
type commandFlag struct {
	path []string
	flag string
}

// everyFlag walks the command tree: every flag a runnable command takes,
// its own and inherited.
func everyFlag(t *testing.T) []commandFlag {
	t.Helper()
	f, _, _ := cmdtest.NewFactory(t, false)
	var out []commandFlag
	var walk func(c *cobra.Command, path []string)
	walk = func(c *cobra.Command, path []string) {
		if c.Runnable() {
			for _, fs := range []*pflag.FlagSet{c.LocalFlags(), c.InheritedFlags()} {
				fs.VisitAll(func(fl *pflag.Flag) {
					if fl.Name != "help" {
						out = append(out, commandFlag{path: path, flag: fl.Name})
					}
				})
			}
		}
		for _, sub := range c.Commands() {
			walk(sub, append(append([]string{}, path...), sub.Name()))
		}
	}
	walk(NewCmdRoot(f), nil)
	return out
}

// find returns, in a fresh tree over getenv, the command at path with its
// command line parsed from args.
func find(t *testing.T, path []string, getenv func(string) string, args ...string) *cobra.Command {
	t.Helper()
	f, _, _ := cmdtest.NewFactory(t, false)
	f.Getenv = getenv
	cmd, _, err := NewCmdRoot(f).Find(path)
	require.NoError(t, err)
	require.NoError(t, cmd.ParseFlags(args))
	return cmd
}

func TestApplyEnv_everyFlag(t *testing.T) {
	t.Parallel()
	flags := everyFlag(t)
	require.Greater(t, len(flags), 40, "the walk found the commands' flags")
	nameRE := regexp.MustCompile(`^SYNCCTL_[A-Z0-9_]+$`)

	for _, cf := range flags {
		t.Run(strings.Join(append(cf.path, cf.flag), "/"), func(t *testing.T) {
			t.Parallel()
			probe := find(t, cf.path, cmdtest.NoEnv)
			fl := probe.Flags().Lookup(cf.flag)
			name := cmdutil.EnvName(fl)
			if legacy, ok := legacyEnv[cf.flag]; ok {
				require.Equal(t, legacy, name)
			} else {
				require.Regexp(t, nameRE, name)
				require.Equal(t, "SYNCCTL_"+strings.ToUpper(strings.ReplaceAll(cf.flag, "-", "_")), name)
			}
			require.Contains(t, fl.Usage, "(env "+name+")", "help shows the variable")
			v, ok := envValues[fl.Value.Type()]
			require.True(t, ok, "no test value for flag type %s", fl.Value.Type())
			env := func(value string) func(string) string {
				return func(n string) string {
					if n == name {
						return value
					}
					return ""
				}
			}

			cmd := find(t, cf.path, env(v.set))
			require.NoError(t, cmdutil.ApplyEnv(cmd, env(v.set)))
			require.Equal(t, v.want, cmd.Flags().Lookup(cf.flag).Value.String(), "the variable sets the flag")

			// The command line wins over the environment.
			cmd = find(t, cf.path, env(v.set), "--"+cf.flag+"="+strings.Trim(v.argv, "[]"))
			require.NoError(t, cmdutil.ApplyEnv(cmd, env(v.set)))
			require.Equal(t, v.argv, cmd.Flags().Lookup(cf.flag).Value.String())

			if v.bad != "" {
				cmd = find(t, cf.path, env(v.bad))
				err := cmdutil.ApplyEnv(cmd, env(v.bad))
				require.ErrorContains(t, err, name+": invalid value \""+v.bad+"\" for --"+cf.flag)
				require.Equal(t, 2, cmdutil.ExitCode(err))
			}
		})
	}
}

func TestMain_env(t *testing.T) {
	t.Parallel()

	for _, tt := range []struct {
		name string
		args []string
		env  map[string]string
		want string
	}{
		{name: "BadValueNamesTheVariable", args: []string{"worker"}, env: map[string]string{"SYNCCTL_CONCURRENCY": "lots"},
			want: `syncctl: SYNCCTL_CONCURRENCY: invalid value "lots" for --concurrency: strconv.ParseInt: parsing "lots": invalid syntax` + "\n"},
		{name: "ValueReachesValidation", args: []string{"worker"}, env: map[string]string{"SYNCCTL_CONCURRENCY": "0"},
			want: "syncctl: --concurrency must be at least 1\n"},
		{name: "CommandLineWins", args: []string{"worker", "--concurrency", "0"}, env: map[string]string{"SYNCCTL_CONCURRENCY": "lots"},
			want: "syncctl: --concurrency must be at least 1\n"},
		{name: "LegacyName", args: []string{"status"}, env: map[string]string{"DATABASE_URL": "postgres://%zz"},
			want: "syncctl: DATABASE_URL is not a valid PostgreSQL connection string\n"},
		{name: "SchemaFromEnvironment", args: []string{"status"}, env: map[string]string{"DATABASE_URL": "postgres://localhost/x", "STRIPE_SYNC_SCHEMA": "Bad-Name"},
			want: `syncctl: schema "Bad-Name": must be 1-50 lower-case letters, digits or underscores, not starting with a digit` + "\n"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			streams, out, errOut := cmdutil.Test(false)
			require.Equal(t, 2, Main(tt.args, streams, func(n string) string { return tt.env[n] }))
			require.Empty(t, out.String())
			require.Equal(t, tt.want, errOut.String())
		})
	}
}
