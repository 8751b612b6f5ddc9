package driver_test

import (
	"context"
	"os"
	"path/filepath"
	"testing"

	"github.com/openeo-batch/worker/driver"
)

func TestRemove(t *testing.T) {
	var removed []string
	open := func(ctx context.Context, path string) (driver.Store, error) { return nil, os.ErrInvalid }
	driver.Register(driver.Driver{Name: "removetest", Extensions: []string{".removetest"}, Open: open,
		Remove: func(path string) error { removed = append(removed, path); return nil }})
	driver.Register(driver.Driver{Name: "plaintest", Extensions: []string{".plaintest"}, Open: open})

	if err := driver.Remove("removetest:///x/jobs"); err != nil || len(removed) != 1 || removed[0] != "/x/jobs" {
		t.Errorf("Remove through the driver's hook: %v, removed %v", err, removed)
	}
	dir := t.TempDir()
	path := filepath.Join(dir, "jobs.plaintest")
	os.WriteFile(path, nil, 0o644)
	os.WriteFile(path+".keep", nil, 0o644)
	if err := driver.Remove(path); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(path); !os.IsNotExist(err) {
		t.Error("the table file is still there")
	}
	if _, err := os.Stat(path + ".keep"); err != nil {
		t.Error("Remove without a hook removed another file")
	}
	if err := driver.Remove(path); err != nil {
		t.Errorf("Remove of a table that is gone: %v", err)
	}
}
