package cmdutil

import (
	"strings"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
)

// EnvPrefix starts the environment variable of every flag that has no name
// of its own: --metrics-addr is SYNCCTL_METRICS_ADDR.
const EnvPrefix = "SYNCCTL_"

// envAnnotation names a flag's variable when it is not EnvPrefix + the flag
// (DATABASE_URL for --database-url, names operators already use).
const envAnnotation = "syncctl_env"

// SetEnvName gives the flag named flag in fs the variable name instead of
// EnvPrefix + its name.
func SetEnvName(fs *pflag.FlagSet, flag, name string) {
	if err := fs.SetAnnotation(flag, envAnnotation, []string{name}); err != nil {
		panic(err) // a programming error: no such flag
	}
}

// EnvName returns the environment variable of f: its own name if it has one
// (SetEnvName), else EnvPrefix + its name in upper snake case. Returns "" for
// --help and --version, which configure nothing.
func EnvName(f *pflag.Flag) string {
	if f.Name == "help" || f.Name == "version" {
		return ""
	}
	if name := f.Annotations[envAnnotation]; len(name) == 1 {
		return name[0]
	}
	return EnvPrefix + strings.ToUpper(strings.ReplaceAll(f.Name, "-", "_"))
}

// DescribeEnv appends its variable to the usage of every flag in the tree
// under root, so help shows how a container or a systemd unit sets it. Call
// it once, after every command and flag is defined.
func DescribeEnv(root *cobra.Command) {
	seen := map[*pflag.Flag]bool{}
	var walk func(*cobra.Command)
	walk = func(c *cobra.Command) {
		for _, fs := range []*pflag.FlagSet{c.LocalNonPersistentFlags(), c.PersistentFlags()} {
			fs.VisitAll(func(f *pflag.Flag) {
				if name := EnvName(f); name != "" && !seen[f] {
					seen[f] = true
					f.Usage += " (env " + name + ")"
				}
			})
		}
		for _, sub := range c.Commands() {
			walk(sub)
		}
	}
	walk(root)
}

// ApplyEnv sets every flag of cmd, its own and those it inherits, that the
// command line left unset and whose variable getenv returns non-empty, as if
// the flag had been given that value: the command line wins over the
// environment, the environment over the defaults. Run it once the command
// line is parsed and before the command validates its options (the root's
// PersistentPreRunE). Returns a *UsageError naming the variable for a value
// the flag refuses.
func ApplyEnv(cmd *cobra.Command, getenv func(string) string) error {
	var err error
	cmd.Flags().VisitAll(func(f *pflag.Flag) {
		name := EnvName(f)
		if err != nil || f.Changed || name == "" {
			return
		}
		v := getenv(name)
		if v == "" {
			return
		}
		if setErr := cmd.Flags().Set(f.Name, v); setErr != nil {
			err = Usagef("%s: invalid value %q for --%s: %v", name, v, f.Name, unwrapFlagErr(setErr))
		}
	})
	return err
}

// unwrapFlagErr drops pflag's own prefix, which repeats the value and the
// flag.
func unwrapFlagErr(err error) string {
	msg := err.Error()
	if _, after, ok := strings.Cut(msg, " flag: "); ok {
		return after
	}
	return msg
}
