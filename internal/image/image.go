// Package image builds syncctl's OCI image without a container daemon: the
// static binary (CGO_ENABLED=0) as the one layer on an empty base, run as an
// unprivileged user. The binary carries its own root certificates
// (golang.org/x/crypto/x509roots/fallback, imported by main), so the image
// needs no CA bundle to reach Stripe over TLS.
//
// `make image` runs cmd/build-image, which writes an OCI image layout and a
// tarball that `docker load` and `podman load` read.
package image

import (
	"archive/tar"
	"bytes"
	"context"
	"debug/buildinfo"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

const (
	// Entrypoint is where the binary sits in the image.
	Entrypoint = "/syncctl"
	// User is the image's user and group: 65532, "nonroot" in distroless
	// images, so no process in the container runs as root. The binary needs
	// no file of its own to write.
	User = "65532:65532"
	// MetricsPort is the worker's /metrics, /healthz and /readyz port.
	MetricsPort = "9464"
	// DefaultTag names the image in the tarball, for `docker load`.
	DefaultTag = "lodgetix/stripe-sync:dev"
)

// BuildBinary builds syncctl for linux on goarch into dir, statically
// (CGO_ENABLED=0, so it runs on an empty base with no C library) and with
// its VCS revision recorded when dir's source is a git checkout (a git
// worktree records none: the go command only finds a .git directory).
// Returns the binary's path.
func BuildBinary(ctx context.Context, dir, goarch string) (string, error) {
	bin := filepath.Join(dir, "syncctl")
	cmd := exec.CommandContext(ctx, "go", "build", "-trimpath", "-buildvcs=auto", "-ldflags=-s -w", "-o", bin,
		"github.com/lodgetix/stripe-sync/cmd/syncctl")
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOOS=linux", "GOARCH="+goarch, "GOFLAGS=")
	if out, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("build syncctl: %w\n%s", err, out)
	}
	return bin, nil
}

// Options describe the image Build makes.
type Options struct {
	// Binary is the path of a static linux syncctl binary (BuildBinary).
	// Required.
	Binary string
	// Arch is the binary's GOARCH. Defaults to runtime.GOARCH.
	Arch string
	// Created is the image's creation time, and every file's: a fixed time
	// makes the same binary give the same image digest. Defaults to the
	// binary's VCS commit time, else the Unix epoch.
	Created time.Time
}

// Build returns the image: opts.Binary at Entrypoint in one layer on an empty
// base, run as User, with the worker's metrics listening on all interfaces
// (SYNCCTL_METRICS_ADDR, which `docker run -e` overrides) and labelled with
// the binary's module version and VCS revision.
func Build(opts Options) (v1.Image, error) {
	if opts.Arch == "" {
		opts.Arch = runtime.GOARCH
	}
	info, err := buildinfo.ReadFile(opts.Binary)
	if err != nil {
		return nil, fmt.Errorf("read build info of %s: %w", opts.Binary, err)
	}
	labels := map[string]string{
		"org.opencontainers.image.title":   "syncctl",
		"org.opencontainers.image.source":  "https://github.com/lodgetix/stripe-sync",
		"org.opencontainers.image.version": info.Main.Version,
	}
	for _, s := range info.Settings {
		switch s.Key {
		case "vcs.revision":
			labels["org.opencontainers.image.revision"] = s.Value
		case "vcs.time":
			if t, err := time.Parse(time.RFC3339, s.Value); err == nil && opts.Created.IsZero() {
				opts.Created = t
			}
		}
	}
	if opts.Created.IsZero() {
		opts.Created = time.Unix(0, 0)
	}
	opts.Created = opts.Created.UTC()

	bin, err := os.ReadFile(opts.Binary)
	if err != nil {
		return nil, err
	}
	layer, err := tarball.LayerFromOpener(func() (io.ReadCloser, error) {
		return io.NopCloser(bytes.NewReader(binaryTar(bin, opts.Created))), nil
	}, tarball.WithMediaType(types.OCILayer), tarball.WithCompressedCaching)
	if err != nil {
		return nil, fmt.Errorf("layer: %w", err)
	}
	img, err := mutate.Append(mutate.MediaType(empty.Image, types.OCIManifestSchema1), mutate.Addendum{
		Layer:     layer,
		MediaType: types.OCILayer,
		History:   v1.History{Created: v1.Time{Time: opts.Created}, CreatedBy: "stripe-sync internal/image: " + Entrypoint},
	})
	if err != nil {
		return nil, fmt.Errorf("image: %w", err)
	}
	img = mutate.ConfigMediaType(img, types.OCIConfigJSON)
	cfg, err := img.ConfigFile()
	if err != nil {
		return nil, err
	}
	cfg = cfg.DeepCopy()
	cfg.OS, cfg.Architecture, cfg.Created = "linux", opts.Arch, v1.Time{Time: opts.Created}
	cfg.Config = v1.Config{
		Entrypoint:   []string{Entrypoint},
		Cmd:          []string{"worker"},
		User:         User,
		WorkingDir:   "/",
		Env:          []string{"SYNCCTL_METRICS_ADDR=0.0.0.0:" + MetricsPort},
		ExposedPorts: map[string]struct{}{MetricsPort + "/tcp": {}},
		Labels:       labels,
	}
	return mutate.ConfigFile(img, cfg)
}

// binaryTar is the layer: the binary at Entrypoint, root-owned and not
// writable, so the unprivileged user can run it and not replace it.
func binaryTar(bin []byte, mtime time.Time) []byte {
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	must(tw.WriteHeader(&tar.Header{Typeflag: tar.TypeReg, Name: Entrypoint[1:], Mode: 0o555, Size: int64(len(bin)), ModTime: mtime, Format: tar.FormatPAX}))
	_, err := tw.Write(bin)
	must(err)
	must(tw.Close())
	return buf.Bytes()
}

func must(err error) {
	if err != nil {
		panic(err) // writing to a bytes.Buffer does not fail
	}
}

// WriteLayout writes img as an OCI image layout in dir (replacing any
// there), tagged with tag in its index.
func WriteLayout(img v1.Image, dir, tag string) error {
	if err := os.RemoveAll(dir); err != nil {
		return err
	}
	p, err := layout.Write(dir, empty.Index)
	if err != nil {
		return fmt.Errorf("write layout: %w", err)
	}
	return p.AppendImage(img, layout.WithAnnotations(map[string]string{"org.opencontainers.image.ref.name": tag}))
}

// WriteTarball writes img as a tarball named tag to path, the format
// `docker load` and `podman load` read.
func WriteTarball(img v1.Image, path, tag string) error {
	ref, err := name.NewTag(tag)
	if err != nil {
		return err
	}
	return tarball.WriteToFile(path, ref, img)
}
