package fingerprint

import (
	"os"
	"path/filepath"
	"testing"
)

func TestFile(t *testing.T) {
	dir := t.TempDir()
	a, b := filepath.Join(dir, "a"), filepath.Join(dir, "b")
	os.WriteFile(a, []byte("id,status\n1,running\n"), 0o644)
	os.WriteFile(b, []byte("id,status\n1,finished\n"), 0o644)
	fa, err := File(a)
	if err != nil || fa == "" {
		t.Fatalf("File(a) = %q, %v", fa, err)
	}
	h := New()
	h.Write([]byte("id,status\n"))
	h.Write([]byte("1,running\n"))
	if h.String() != fa {
		t.Errorf("streamed %q, file %q", h.String(), fa)
	}
	if fb, _ := File(b); fb == fa {
		t.Error("two contents, one fingerprint")
	}
	if f, err := File(filepath.Join(dir, "none")); f != "" || err != nil {
		t.Errorf("missing file: %q, %v", f, err)
	}
}
