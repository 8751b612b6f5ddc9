package remote

import (
	"errors"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"testing"
)

// Two downloads of one file never share its part: the second is refused
// with ErrBusy while the first holds it, and gets it once it is let go.
func TestPartLockedWhileDownloading(t *testing.T) {
	dst := filepath.Join(t.TempDir(), "x.tif")
	first, err := openPart(dst)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := openPart(dst); !errors.Is(err, ErrBusy) {
		t.Errorf("second open of a held part: err = %v, want ErrBusy", err)
	}
	c, _ := New("http://127.0.0.1:1", nil)
	if _, err := c.Download(t.Context(), "http://127.0.0.1:1/x.tif", dst); !errors.Is(err, ErrBusy) {
		t.Errorf("download beside a held part: err = %v, want ErrBusy", err)
	}
	// A held part is not removed as stale.
	if removed, err := RemoveParts(filepath.Dir(dst), nil); err != nil || len(removed) > 0 {
		t.Errorf("RemoveParts removed %v (err %v) while a download holds it", removed, err)
	}
	first.close()
	second, err := openPart(dst)
	if err != nil {
		t.Fatalf("after the first let go: %v", err)
	}
	second.close()
}

// A part renamed into place by the download that held it is not taken by
// a download that opened it in between: that one gets a fresh part.
func TestPartRenamedUnderWaiter(t *testing.T) {
	dir := t.TempDir()
	dst := filepath.Join(dir, "x.tif")
	p, err := openPart(dst)
	if err != nil {
		t.Fatal(err)
	}
	p.f.WriteString("whole file")
	if err := p.commit(dst); err != nil {
		t.Fatal(err)
	}
	q, err := openPart(dst)
	if err != nil {
		t.Fatal(err)
	}
	defer q.close()
	if got, _ := os.ReadFile(dst); string(got) != "whole file" || q.size != 0 {
		t.Errorf("dst = %q, new part size %d", got, q.size)
	}
}

func TestRemoveParts(t *testing.T) {
	dir := t.TempDir()
	for _, name := range []string{"a.tif", "a.tif.part", "a.tif.part.meta", "b.tif.part", "c.tif.part.meta",
		"old.tif.x3Yz9.part", "kept.part"} {
		os.WriteFile(filepath.Join(dir, name), []byte("x"), 0o644)
	}
	removed, err := RemoveParts(dir, map[string]bool{"kept.part": true})
	if err != nil {
		t.Fatal(err)
	}
	slices.Sort(removed)
	want := []string{"a.tif.part", "b.tif.part", "c.tif.part.meta", "old.tif.x3Yz9.part"}
	if !slices.Equal(removed, want) {
		t.Errorf("removed %v, want %v", removed, want)
	}
	entries, _ := os.ReadDir(dir)
	var left []string
	for _, e := range entries {
		left = append(left, e.Name())
	}
	if !slices.Equal(left, []string{"a.tif", "kept.part"}) {
		t.Errorf("left %v", left)
	}
	if removed, err := RemoveParts(filepath.Join(dir, "missing"), nil); err != nil || removed != nil {
		t.Errorf("missing folder: %v %v", removed, err)
	}
}

func TestSameOrigin(t *testing.T) {
	root, _ := url.Parse("https://openeo.example.org/openeo/1.2/")
	for raw, want := range map[string]bool{
		"https://openeo.example.org/jobs":        true,
		"https://OPENEO.example.org:443/x":       true,
		"http://openeo.example.org/x":            false, // another scheme
		"https://openeo.example.org:8443/x":      false, // another port
		"https://assets.openeo.example.org/x":    false, // a subdomain is another origin
		"https://openeo.example.org.evil.com/x":  false,
		"https://user@openeo.example.org/jobs/1": true,
	} {
		u, _ := url.Parse(raw)
		if got := sameOrigin(u, root); got != want {
			t.Errorf("sameOrigin(%s) = %v, want %v", raw, got, want)
		}
	}
}

// Partial downloads in sub-folders (assets with folder keys) are removed
// too, and keep names files by their path relative to the folder.
func TestRemovePartsInFolders(t *testing.T) {
	dir := t.TempDir()
	for _, name := range []string{"data/b03.tif", "data/b03.tif.part", "data/b03.tif.part.meta", "data/qa/m.tif.part",
		"data/kept.part", "top.part"} {
		p := filepath.Join(dir, filepath.FromSlash(name))
		os.MkdirAll(filepath.Dir(p), 0o755)
		os.WriteFile(p, []byte("x"), 0o644)
	}
	removed, err := RemoveParts(dir, map[string]bool{"data/kept.part": true})
	if err != nil {
		t.Fatal(err)
	}
	slices.Sort(removed)
	if want := []string{"data/b03.tif.part", "data/qa/m.tif.part", "top.part"}; !slices.Equal(removed, want) {
		t.Errorf("removed %v, want %v", removed, want)
	}
	for _, name := range []string{"data/b03.tif", "data/kept.part"} {
		if _, err := os.Stat(filepath.Join(dir, filepath.FromSlash(name))); err != nil {
			t.Errorf("%s: %v", name, err)
		}
	}
	if _, err := os.Stat(filepath.Join(dir, "data", "b03.tif.part.meta")); !os.IsNotExist(err) {
		t.Errorf("validator of a removed part left: %v", err)
	}
}
