package worker_test

import (
	"fmt"
	"os"
	"path/filepath"
	"sync"
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

// The last owner to close removes the folder, which is left while other
// owners are in it; a new owner makes it again.
func TestLockOwnerRemovesEmptyFolder(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "jobs.csv.workers")
	a, err := worker.NewLockOwner(dir)
	if err != nil {
		t.Fatal(err)
	}
	b, err := worker.NewLockOwner(dir)
	if err != nil {
		t.Fatal(err)
	}
	if err := a.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(dir, b.ID()+".lock")); err != nil {
		t.Fatalf("closing one owner touched another's file: %v", err)
	}
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(dir); !os.IsNotExist(err) {
		t.Fatalf("empty folder left after the last owner closed: %v", err)
	}
	c, err := worker.NewLockOwner(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if !c.Alive(c.ID()) {
		t.Error("new owner not alive")
	}
	if _, err := os.Stat(filepath.Join(dir, c.ID()+".lock")); err != nil {
		t.Errorf("new owner's lock file: %v", err)
	}
}

// Owners opening while others close never fail: a folder removed between
// an owner's mkdir and its lock file is made again.
func TestLockOwnerOpenCloseRace(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "jobs.csv.workers")
	var wg sync.WaitGroup
	errs := make(chan error, 8)
	for range 8 {
		wg.Go(func() {
			for range 50 {
				o, err := worker.NewLockOwner(dir)
				if err != nil {
					errs <- err
					return
				}
				if !o.Alive(o.ID()) {
					errs <- fmt.Errorf("owner %s not alive", o.ID())
				}
				o.Close()
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if _, err := os.Stat(dir); !os.IsNotExist(err) {
		t.Errorf("folder left after every owner closed: %v", err)
	}
}
