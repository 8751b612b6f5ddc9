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

// worker download handles assets one by one, as run does: a key with
// folders lands in the same folders, a refused name and a failing asset
// cost neither the others nor job_<id>.json, the row stays pending with
// the missing assets in last_error, and the next download fetches the
// failed asset; the refused one is given up, its name kept in last_error.
// (Before: nothing of the job was written and the rows said nothing.)
func TestDownloadAssetsOneByOne(t *testing.T) {
	t.Parallel()
	srv := remotetest.NewServer(remotetest.Options{AssetNames: []string{"data/b03.tif", "b.tif", "../escape.tif"},
		Faults: remotetest.Faults{FailingAssets: []string{"b.tif"}, FailingAssetStatus: 404}})
	defer srv.Close()
	dir := newTable(t, 2)
	backend := "fake=" + srv.URL
	mustWork(t, dir, fakeEnv, "run", "--db", "jobs.db", "--backend", backend, "--process", "p.json",
		"--root-dir", "res", "--poll", "20ms", "--no-download")
	download := []string{"download", "--db", "jobs.db", "--backend", backend, "--root-dir", "res"}
	check := func(pending bool, files ...string) {
		t.Helper()
		for _, r := range readRows(t, filepath.Join(dir, "jobs.db")) {
			if r.DownloadPending != pending || !strings.Contains(r.LastError, `"../escape.tif"`) ||
				strings.Contains(r.LastError, `"b.tif"`) == !pending {
				t.Errorf("row %d: pending=%v last_error=%q", r.Key, r.DownloadPending, r.LastError)
			}
			jobDir := worker.JobDir(filepath.Join(dir, "res"), r.ID)
			for _, f := range append(files, "job_"+r.ID+".json", worker.ResultsFile) {
				if _, err := os.Stat(filepath.Join(jobDir, filepath.FromSlash(f))); err != nil {
					t.Errorf("row %d: %v", r.Key, err)
				}
			}
		}
		if _, err := os.Stat(filepath.Join(dir, "res", "escape.tif")); err == nil {
			t.Error("an asset escaped its job folder")
		}
	}
	if out, errOut, code := work(t, dir, fakeEnv, download...); code != 1 {
		t.Fatalf("download: exit %d, want 1\n%s\n%s", code, out, errOut)
	}
	check(true, "data/b03.tif")

	srv.SetFaults(remotetest.Faults{})
	if out, errOut, code := work(t, dir, fakeEnv, download...); code != 1 {
		t.Fatalf("download after the fix: exit %d, want 1 (the refused asset)\n%s\n%s", code, out, errOut)
	}
	check(false, "data/b03.tif", "b.tif")
}
