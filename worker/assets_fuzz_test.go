package worker_test

import (
	"errors"
	"path"
	"path/filepath"
	"strings"
	"testing"

	"github.com/openeo-batch/worker/remote"
	"github.com/openeo-batch/worker/worker"
)

// checkInside fails t unless p, accepted by AssetPath, is a clean relative
// path with forward slashes that stays inside a job folder on this system
// and on Windows.
func checkInside(t *testing.T, key, p string) {
	t.Helper()
	root := filepath.Join(string(filepath.Separator)+"results", "job_x")
	joined := filepath.Join(root, filepath.FromSlash(p))
	switch {
	case p == "" || p == "." || strings.ContainsAny(p, "\x00\\"):
		t.Fatalf("AssetPath(%q) = %q: empty, the folder itself, a NUL or a backslash", key, p)
	case path.IsAbs(p) || path.Clean(p) != p:
		t.Fatalf("AssetPath(%q) = %q: absolute or not clean", key, p)
	case driveLetter(p):
		t.Fatalf("AssetPath(%q) = %q: a drive letter", key, p)
	case !filepath.IsLocal(filepath.FromSlash(p)):
		t.Fatalf("AssetPath(%q) = %q: not local on this system", key, p)
	case !strings.HasPrefix(joined, root+string(filepath.Separator)):
		t.Fatalf("AssetPath(%q) = %q: %s leaves %s", key, p, joined, root)
	}
	for _, seg := range strings.Split(p, "/") {
		if seg == "" || seg == "." || seg == ".." {
			t.Fatalf("AssetPath(%q) = %q: segment %q", key, p, seg)
		}
	}
}

// driveLetter reports whether p starts with one character and a colon,
// which Windows takes for a drive.
func driveLetter(p string) bool {
	r := []rune(p)
	return len(r) >= 2 && r[1] == ':'
}

// FuzzAssetPath: an asset name from a back-end either becomes a path that
// stays inside the job folder (on this system and on Windows), or is
// refused with ErrAssetRefused. Names that stay inside are never refused.
func FuzzAssetPath(f *testing.F) {
	f.Add("result.tif", "")
	f.Add("data/b03.tif", "")
	f.Add("", "https://h/results/a/b.tif?sig=x")
	f.Fuzz(func(t *testing.T, key, href string) {
		p, err := worker.AssetPath(key, href)
		if err != nil {
			if !errors.Is(err, worker.ErrAssetRefused) {
				t.Fatalf("AssetPath(%q): %v does not match ErrAssetRefused", key, err)
			}
			if key != "" && !strings.ContainsRune(key, 0) {
				// Refused: it would have to leave the folder, or this
				// system would not take it as a local name.
				clean := path.Clean(strings.ReplaceAll(key, `\`, "/"))
				local := clean != "." && clean != ".." && !strings.HasPrefix(clean, "../") && !path.IsAbs(clean) &&
					!driveLetter(clean) && filepath.IsLocal(filepath.FromSlash(clean))
				if local {
					t.Fatalf("AssetPath(%q) refused a name inside the folder: %v", key, err)
				}
			}
			return
		}
		checkInside(t, key, p)
	})
}

// FuzzAssetPaths: whatever the keys of a result document (one per line of
// the input), the accepted assets get distinct files inside the job folder
// that are neither another's folder, nor another's partial download, nor
// job_<id>.json nor job-results.json; every key is either accepted or
// refused.
func FuzzAssetPaths(f *testing.F) {
	f.Add("a.tif\ndata/b.tif\ndata/c.tif")
	f.Add("data\ndata/b.tif")
	f.Add("tile\ntile.part")
	f.Add("x.tif\n./x.tif\ndata/../x.tif")
	f.Add("job_j-1.json\nok.tif")
	f.Fuzz(func(t *testing.T, keys string) {
		assets := map[string]remote.Asset{}
		for _, k := range strings.Split(keys, "\n") {
			assets[k] = remote.Asset{Href: "https://h/" + k}
		}
		paths, refused := worker.AssetPaths("j-1", assets)
		if len(paths)+len(refused) != len(assets) {
			t.Fatalf("%d accepted and %d refused of %d assets", len(paths), len(refused), len(assets))
		}
		owner := map[string]string{"job_j-1.json": "", worker.ResultsFile: ""}
		for k, p := range paths {
			if _, ok := refused[k]; ok {
				t.Fatalf("asset %q both accepted and refused", k)
			}
			checkInside(t, k, p)
			for _, name := range []string{p, p + remote.PartSuffix, p + remote.PartSuffix + ".meta"} {
				if other, ok := owner[name]; ok {
					t.Fatalf("assets %q and %q both need %q", k, other, name)
				}
				owner[name] = k
			}
		}
		for k, p := range paths {
			for i := range len(p) {
				if p[i] != '/' {
					continue
				}
				if other, ok := owner[p[:i]]; ok {
					t.Fatalf("%q is the folder of asset %q and a file of %q", p[:i], k, other)
				}
			}
		}
	})
}

func TestAssetPath(t *testing.T) {
	for _, c := range []struct{ key, href, want string }{
		{"result.tif", "", "result.tif"},
		{"data/b03.tif", "", "data/b03.tif"},
		{`data\b03.tif`, "", "data/b03.tif"},
		{"./data//b03.tif", "", "data/b03.tif"},
		{"data/../x.tif", "", "x.tif"}, // stays inside: saved where the Python client saves it
		{"", "https://h/results/a/b.tif?sig=x", "b.tif"},
		{"tile.part", "", "tile.part"},
		{"..", "", ""},
		{"../x.tif", "", ""},
		{`..\x.tif`, "", ""},
		{"a/../../x.tif", "", ""},
		{"a/..", "", ""},
		{"/etc/passwd", "", ""},
		{`\\server\share\x.tif`, "", ""},
		{"C:x.tif", "", ""},
		{`C:\x.tif`, "", ""},
		{"", "", ""},
		{"", "https://h/", ""},
		{"a\x00b", "", ""},
	} {
		got, err := worker.AssetPath(c.key, c.href)
		if got != c.want || (err != nil) != (c.want == "") {
			t.Errorf("AssetPath(%q, %q) = %q, %v; want %q", c.key, c.href, got, err, c.want)
		}
		if err != nil && !errors.Is(err, worker.ErrAssetRefused) {
			t.Errorf("AssetPath(%q): %v does not match ErrAssetRefused", c.key, err)
		}
	}
}
