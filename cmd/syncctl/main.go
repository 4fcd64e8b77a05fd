// Command syncctl runs and operates stripe-sync: migrations, the worker,
// hand enqueues and the Stripe emulator.
package main

import (
	"os"

	"github.com/lodgetix/stripe-sync/cmd/syncctl/internal/cmdutil"
	"github.com/lodgetix/stripe-sync/cmd/syncctl/internal/root"
)

func main() {
	os.Exit(root.Main(os.Args[1:], cmdutil.System(), os.Getenv))
}
