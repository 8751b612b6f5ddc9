package worker_test

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/openeo-batch/worker/worker"
)

func TestLockOwnerLiveness(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "jobs.db.workers")
	a, err := worker.NewLockOwner(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	b, err := worker.NewLockOwner(dir)
	if err != nil {
		t.Fatal(err)
	}
	if a.ID() == b.ID() {
		t.Fatalf("two owners share the id %s", a.ID())
	}
	if !a.Alive(a.ID()) || !a.Alive(b.ID()) || !b.Alive(a.ID()) {
		t.Error("a live owner is reported dead")
	}
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}
	if a.Alive(b.ID()) {
		t.Error("a closed owner is reported alive")
	}
	for _, id := range []string{"", "0123456789abcdef", "../escape"} {
		if a.Alive(id) {
			t.Errorf("Alive(%q) = true", id)
		}
	}
	left, _ := filepath.Glob(filepath.Join(dir, "*.lock"))
	if len(left) != 1 || filepath.Base(left[0]) != a.ID()+".lock" {
		t.Errorf("lock files %v, want only %s.lock (Alive must not create files)", left, a.ID())
	}

	// A lock file whose process is gone (no lock held) is dead, and tidied up.
	stale := filepath.Join(dir, "feedfacefeedface.lock")
	if err := os.WriteFile(stale, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if a.Alive("feedfacefeedface") {
		t.Error("an unlocked lock file is reported alive")
	}
	if _, err := os.Stat(stale); !os.IsNotExist(err) {
		t.Errorf("stale lock file kept: %v", err)
	}

	// A new owner sweeps the files that killed processes left.
	for _, id := range []string{"0000000000000001", "0000000000000002"} {
		if err := os.WriteFile(filepath.Join(dir, id+".lock"), nil, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	c, err := worker.NewLockOwner(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	left, _ = filepath.Glob(filepath.Join(dir, "*.lock"))
	if len(left) != 2 {
		t.Errorf("lock files %v, want only those of the two live owners", left)
	}
}
