package image

import (
	"archive/tar"
	"context"
	"debug/buildinfo"
	"errors"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"runtime/debug"
	"slices"
	"sync"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	"github.com/stretchr/testify/require"
)

// built is the image cmd/build-image would write, built once per test run
// (the static build is the slow part) into a directory of its own.
var built = sync.OnceValues(func() (string, error) {
	dir, err := os.MkdirTemp("", "stripesync-image-")
	if err != nil {
		return "", err
	}
	bin, err := BuildBinary(context.Background(), dir, runtime.GOARCH)
	if err != nil {
		return "", err
	}
	img, err := Build(Options{Binary: bin})
	if err != nil {
		return "", err
	}
	if err := WriteLayout(img, filepath.Join(dir, "oci"), DefaultTag); err != nil {
		return "", err
	}
	return dir, WriteTarball(img, filepath.Join(dir, "syncctl.tar"), DefaultTag)
})

func TestMain(m *testing.M) {
	code := m.Run()
	if dir, err := built(); err == nil {
		_ = os.RemoveAll(dir)
	}
	os.Exit(code)
}

type testBundle struct {
	dir string
	// img is the image read back from the OCI layout on disk.
	img v1.Image
}

func setup(t *testing.T) *testBundle {
	t.Helper()
	dir, err := built()
	require.NoError(t, err)
	p, err := layout.FromPath(filepath.Join(dir, "oci"))
	require.NoError(t, err)
	index, err := p.ImageIndex()
	require.NoError(t, err)
	manifest, err := index.IndexManifest()
	require.NoError(t, err)
	require.Len(t, manifest.Manifests, 1)
	require.Equal(t, DefaultTag, manifest.Manifests[0].Annotations["org.opencontainers.image.ref.name"])
	img, err := index.Image(manifest.Manifests[0].Digest)
	require.NoError(t, err)
	return &testBundle{dir: dir, img: img}
}

func TestImage(t *testing.T) {
	t.Parallel()
	b := setup(t)

	t.Run("Config", func(t *testing.T) {
		t.Parallel()
		cfg, err := b.img.ConfigFile()
		require.NoError(t, err)
		require.Equal(t, "linux", cfg.OS)
		require.Equal(t, runtime.GOARCH, cfg.Architecture)
		require.Equal(t, "65532:65532", cfg.Config.User, "never root")
		require.Equal(t, []string{"/syncctl"}, cfg.Config.Entrypoint)
		require.Equal(t, []string{"worker"}, cfg.Config.Cmd)
		require.Contains(t, cfg.Config.Env, "SYNCCTL_METRICS_ADDR=0.0.0.0:9464", "metrics reachable from outside the container")
		require.NotEmpty(t, cfg.Config.Labels["org.opencontainers.image.version"])
	})

	t.Run("BinaryRunsVersion", func(t *testing.T) {
		t.Parallel()
		bin := extract(t, b.img, "syncctl")
		for _, args := range [][]string{{"version"}, {"--version"}} {
			out, err := exec.Command(bin, args...).CombinedOutput()
			require.NoError(t, err, "%s", out)
			require.Regexp(t, regexp.MustCompile(`^syncctl \S+ \(revision \S+.*go1\.\d+.*\)\n$`), string(out))
		}

		info, err := buildinfo.ReadFile(bin)
		require.NoError(t, err)
		settings := map[string]string{}
		for _, s := range info.Settings {
			settings[s.Key] = s.Value
		}
		require.Equal(t, "0", settings["CGO_ENABLED"], "static: the base has no C library")
		require.True(t, slices.ContainsFunc(info.Deps, func(m *debug.Module) bool { return m.Path == "golang.org/x/crypto/x509roots/fallback" }),
			"root certificates are in the binary: the base has none")
	})

	t.Run("TarballForDockerLoad", func(t *testing.T) {
		t.Parallel()
		tag, err := name.NewTag(DefaultTag)
		require.NoError(t, err)
		loaded, err := tarball.ImageFromPath(filepath.Join(b.dir, "syncctl.tar"), &tag)
		require.NoError(t, err)
		want, err := b.img.ConfigName()
		require.NoError(t, err)
		got, err := loaded.ConfigName()
		require.NoError(t, err)
		require.Equal(t, want, got, "the tarball holds the same image as the layout")
	})

	t.Run("Reproducible", func(t *testing.T) {
		t.Parallel()
		again, err := Build(Options{Binary: filepath.Join(b.dir, "syncctl")})
		require.NoError(t, err)
		want, err := b.img.Digest()
		require.NoError(t, err)
		got, err := again.Digest()
		require.NoError(t, err)
		require.Equal(t, want, got, "one binary, one digest")
	})
}

// extract writes the file at path in img's filesystem to a temporary file
// and returns its name. The file must be a root-owned executable nobody may
// write.
func extract(t *testing.T, img v1.Image, path string) string {
	t.Helper()
	rc := mutate.Extract(img)
	defer rc.Close()
	tr := tar.NewReader(rc)
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			t.Fatalf("no %s in the image", path)
		}
		require.NoError(t, err)
		if h.Name != path {
			continue
		}
		require.Equal(t, int64(0o555), h.Mode, "executable, not writable")
		require.Zero(t, h.Uid)
		out := filepath.Join(t.TempDir(), filepath.Base(path))
		f, err := os.OpenFile(out, os.O_CREATE|os.O_WRONLY, 0o755)
		require.NoError(t, err)
		_, err = io.Copy(f, tr)
		require.NoError(t, err)
		require.NoError(t, f.Close())
		return out
	}
}
