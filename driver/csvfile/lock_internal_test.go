package csvfile

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/openeo-batch/worker/driver/drivertest"
)

// A writer's Close removes the lock file; a reader never makes one; a
// second writer opened meanwhile stays read-only, and one opened after
// the close takes the lock.
func TestLockFileGoesOnClose(t *testing.T) {
	path := filepath.Join(t.TempDir(), "t.csv")
	w, err := Open(t.Context(), path)
	if err != nil {
		t.Fatal(err)
	}
	if err := w.Init(t.Context(), []string{"a"}, drivertest.Rows([][]any{{int64(1)}})); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(path + ".lock"); err != nil {
		t.Fatalf("no lock file while the writer is open: %v", err)
	}
	other, err := Open(t.Context(), path)
	if err != nil {
		t.Fatal(err)
	}
	if other.Writable() == nil {
		t.Error("a second writer got the lock")
	}
	other.Close()
	if _, err := os.Stat(path + ".lock"); err != nil {
		t.Errorf("a read-only store's Close removed the writer's lock file: %v", err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(path + ".lock"); !os.IsNotExist(err) {
		t.Errorf("lock file after a clean close: %v", err)
	}
	r, err := OpenReader(t.Context(), path)
	if err != nil {
		t.Fatal(err)
	}
	r.Close()
	if _, err := os.Stat(path + ".lock"); !os.IsNotExist(err) {
		t.Errorf("a reader made a lock file: %v", err)
	}
	again, err := Open(t.Context(), path)
	if err != nil {
		t.Fatal(err)
	}
	defer again.Close()
	if err := again.Writable(); err != nil {
		t.Errorf("a writer after the close is read-only: %v", err)
	}
}

// A lock taken on a lock file that lost its name meanwhile (a writer
// closing removed it, another process made it anew) does not count:
// tryLock tries the name again and ends up holding the lock on the file
// the name leads to, so that no two processes both think they write.
func TestTryLockChecksTheName(t *testing.T) {
	name := filepath.Join(t.TempDir(), "t.csv.lock")
	calls := 0
	lockTaken = func() {
		calls++
		if calls == 1 { // the name now leads to another file
			os.Remove(name)
			os.WriteFile(name, nil, 0o644)
		}
	}
	defer func() { lockTaken = func() {} }()
	lf, created := tryLock(name)
	if lf == nil {
		t.Fatal("no lock")
	}
	defer lf.Close()
	if calls != 2 || created {
		t.Errorf("%d tries, created %v; want 2 tries on the file made meanwhile", calls, created)
	}
	locked, _ := lf.Stat()
	named, _ := os.Stat(name)
	if !os.SameFile(locked, named) {
		t.Error("the lock is not on the file the name leads to")
	}
	if second, _ := tryLock(name); second != nil {
		second.Close()
		t.Error("a second tryLock got the lock too")
	}
}
