package test

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/openeo-batch/worker/driver"
	"github.com/openeo-batch/worker/remote/remotetest"
	"github.com/openeo-batch/worker/worker"
)

// A --root-dir that cannot be written: the run ends with exit status 3 and
// lists the rows whose results are missing, the rows stay download_pending
// with the cause, and a run after the folder is mended fetches them.
// (Before: exit 0, rows not pending, and a rerun downloaded nothing.)
func TestUnwritableRootDir(t *testing.T) {
	t.Parallel()
	const rows = 3
	srv := remotetest.NewServer(remotetest.Options{})
	defer srv.Close()
	dir := newTable(t, rows)
	// A file where the results folder should be: mkdir fails, even as root.
	os.WriteFile(filepath.Join(dir, "res"), []byte("not a folder"), 0o644)
	env := []string{"OPENEO_FAKE_USERNAME=user", "OPENEO_FAKE_PASSWORD=password"}
	args := []string{"run", "--db", "jobs.db", "--backend", "fake=" + srv.URL,
		"--process", "p.json", "--root-dir", "res/out", "--poll", "20ms"}

	var stdout, stderr bytes.Buffer
	c := cmd(t.Context(), dir, env, args...)
	c.Stdout, c.Stderr = &stdout, &stderr
	err := c.Run()
	if code := exitCode(err); code != 3 {
		t.Fatalf("exit %d, want 3 (results missing)\nstdout:\n%s\nstderr:\n%s", code, stdout.String(), stderr.String())
	}
	if !strings.Contains(stdout.String(), "Results missing for 3 row(s)") || !strings.Contains(stdout.String(), "not a directory") {
		t.Errorf("summary lacks the missing rows and their cause:\n%s", stdout.String())
	}
	if !strings.Contains(stderr.String(), "run again") {
		t.Errorf("stderr does not say to run again:\n%s", stderr.String())
	}
	for _, r := range readRows(t, filepath.Join(dir, "jobs.db")) {
		if r.Status != driver.Finished || !r.DownloadPending || !strings.Contains(r.LastError, "not a directory") {
			t.Errorf("row %v: %q pending=%v last_error=%q", r.Data["title"], r.Status, r.DownloadPending, r.LastError)
		}
	}

	os.Remove(filepath.Join(dir, "res"))
	out, err := cmd(t.Context(), dir, env, args...).CombinedOutput()
	if err != nil {
		t.Fatalf("run after the fix: %v\n%s", err, out)
	}
	got := readRows(t, filepath.Join(dir, "jobs.db"))
	if len(got) != rows {
		t.Fatalf("%d rows", len(got))
	}
	for _, r := range got {
		if r.DownloadPending || r.LastError != "" {
			t.Errorf("row %v after the fix: pending=%v last_error=%q", r.Data["title"], r.DownloadPending, r.LastError)
		}
		if _, err := os.Stat(worker.MetadataPath(filepath.Join(dir, "res", "out"), r.ID)); err != nil {
			t.Errorf("row %v: %v", r.Data["title"], err)
		}
	}
	if n := srv.Requests()["POST /jobs"]; n != rows {
		t.Errorf("%d jobs created, want %d: the rerun only downloads", n, rows)
	}
}
