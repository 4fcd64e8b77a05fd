// Package version is `syncctl version`: which build is this.
package version

import (
	"context"
	"fmt"
	"runtime/debug"

	"github.com/spf13/cobra"

	"github.com/lodgetix/stripe-sync/cmd/syncctl/internal/cmdutil"
)

// Options are version's dependencies.
type Options struct {
	Factory *cmdutil.Factory
	// BuildInfo reads the binary's build information. Defaults to
	// debug.ReadBuildInfo.
	BuildInfo func() (*debug.BuildInfo, bool)
}

// NewCmdVersion returns the command; runF replaces the run in tests.
func NewCmdVersion(f *cmdutil.Factory, runF func(context.Context, *Options) error) *cobra.Command {
	opts := &Options{Factory: f, BuildInfo: debug.ReadBuildInfo}
	cmd := &cobra.Command{
		Use:   "version",
		Short: "Print the module version and the VCS revision syncctl was built from",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if runF != nil {
				return runF(cmd.Context(), opts)
			}
			return versionRun(opts)
		},
	}
	return cmd
}

func versionRun(opts *Options) error {
	info, ok := opts.BuildInfo()
	if !ok {
		info = nil
	}
	_, err := fmt.Fprintln(opts.Factory.IO.Out, String(info))
	return err
}

// String describes the build info: "syncctl <module version> (revision
// <vcs revision>[, modified], <commit time>, <go version>)". go build
// records the revision when it builds inside a checkout (-buildvcs, on by
// default); an unknown part reads "unknown". A nil info is a binary without
// build information.
func String(info *debug.BuildInfo) string {
	if info == nil {
		return "syncctl unknown (no build information)"
	}
	version := info.Main.Version
	if version == "" {
		version = "unknown"
	}
	revision, at, modified := "unknown", "", false
	for _, s := range info.Settings {
		switch s.Key {
		case "vcs.revision":
			revision = s.Value
		case "vcs.time":
			at = s.Value
		case "vcs.modified":
			modified = s.Value == "true"
		}
	}
	out := fmt.Sprintf("syncctl %s (revision %s", version, revision)
	if modified {
		out += ", modified"
	}
	if at != "" {
		out += ", " + at
	}
	return out + ", " + info.GoVersion + ")"
}
