// Command syncctl runs and operates stripe-sync: migrations, the worker,
// hand enqueues and the Stripe emulator.
package main

import (
	"os"

	// Root certificates for TLS to Stripe where the system has none, as in
	// the container image, which is the binary alone on an empty base.
	_ "golang.org/x/crypto/x509roots/fallback"

	"github.com/lodgetix/stripe-sync/cmd/syncctl/internal/cmdutil"
	"github.com/lodgetix/stripe-sync/cmd/syncctl/internal/root"
)

func main() {
	os.Exit(root.Main(os.Args[1:], cmdutil.System(), os.Getenv))
}
