// Command build-image builds syncctl's OCI image (see package image) under
// -out: the static binary, an OCI image layout (oci/) and a tarball
// (syncctl.tar) for `docker load` or `podman load`. `make image` runs it.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"runtime"

	"github.com/lodgetix/stripe-sync/internal/image"
)

func main() {
	out := flag.String("out", ".tmp/image", "directory for the binary, the OCI layout and the tarball")
	arch := flag.String("arch", runtime.GOARCH, "GOARCH of the image")
	tag := flag.String("tag", image.DefaultTag, "name the tarball gives the image")
	flag.Parse()
	if err := run(*out, *arch, *tag); err != nil {
		fmt.Fprintln(os.Stderr, "build-image:", err)
		os.Exit(1)
	}
}

func run(out, arch, tag string) error {
	if err := os.MkdirAll(out, 0o755); err != nil {
		return err
	}
	bin, err := image.BuildBinary(context.Background(), out, arch)
	if err != nil {
		return err
	}
	img, err := image.Build(image.Options{Binary: bin, Arch: arch})
	if err != nil {
		return err
	}
	if err := image.WriteLayout(img, filepath.Join(out, "oci"), tag); err != nil {
		return err
	}
	tarPath := filepath.Join(out, "syncctl.tar")
	if err := image.WriteTarball(img, tarPath, tag); err != nil {
		return err
	}
	digest, err := img.Digest()
	if err != nil {
		return err
	}
	fmt.Printf("%s %s\n  OCI layout: %s\n  tarball:    %s (docker load -i / podman load -i)\n", tag, digest, filepath.Join(out, "oci"), tarPath)
	return nil
}
