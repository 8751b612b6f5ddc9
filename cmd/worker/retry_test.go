package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/openeo-batch/worker/remote"
	"github.com/openeo-batch/worker/remote/remotetest"
)

const doubleProcess = `{"id": "double",
 "parameters": [{"name": "year", "description": "a year", "schema": {"type": "integer"}}],
 "process_graph": {"m": {"process_id": "multiply", "arguments": {"x": {"from_parameter": "year"}, "y": 2}, "result": true}}}`

// jobOptionsOf returns the job_options of a job's create body at the fake
// back-end, by title.
func jobOptionsOf(t *testing.T, jobs []remotetest.JobInfo) map[string]map[string]any {
	t.Helper()
	out := map[string]map[string]any{}
	for _, j := range jobs {
		var body struct {
			JobOptions map[string]any `json:"job_options"`
		}
		if err := json.Unmarshal(j.Body, &body); err != nil {
			t.Fatal(err)
		}
		out[j.Title] = body.JobOptions
	}
	return out
}

// TestRetryJobOptions is issue 12's "retry can change what the rows run
// with": jobs fail, retry --job-options more.json merges the file over the
// rows' job_options column, and the next run creates the new jobs with the
// options of --job-options, the row's column and the file, merged.
func TestRetryJobOptions(t *testing.T) {
	dir := t.TempDir()
	writeFile(t, dir, "p.json", doubleProcess)
	writeFile(t, dir, "in.csv", "year,title,job_options\n2000,row 0,\"{\"\"driver-memory\"\": \"\"1G\"\"}\"\n2001,row 1,\n")
	writeFile(t, dir, "base.json", `{"executor-memory": "1G", "queue": "default"}`)
	writeFile(t, dir, "more.json", `{"executor-memory": "4G", "max-executors": 20}`)
	db := filepath.Join(dir, "jobs.db")
	if code, out, errOut := runCLI(t, "init", "--from", filepath.Join(dir, "in.csv"), "--db", db); code != 0 {
		t.Fatalf("init: %d %s %s", code, out, errOut)
	}
	var fail atomic.Bool
	fail.Store(true)
	srv := remotetest.NewServer(remotetest.Options{Outcome: func(*remote.JobRequest) error {
		if fail.Load() {
			return errors.New("out of memory")
		}
		return nil
	}})
	defer srv.Close()
	t.Setenv("OPENEO_FAKE_TOKEN", srv.ValidToken())
	runArgs := []string{"run", "--db", db, "--backend", "fake=" + srv.URL, "--process", filepath.Join(dir, "p.json"),
		"--job-options", filepath.Join(dir, "base.json"), "--root-dir", filepath.Join(dir, "res"), "--poll", "10ms"}
	if code, out, errOut := runCLI(t, runArgs...); code != exitUnfinished {
		t.Fatalf("first run: exit %d, want 3\n%s\n%s", code, out, errOut)
	}

	// Bad files: named, exit 2, nothing changed.
	before, _ := os.ReadFile(db)
	writeFile(t, dir, "list.json", `["executor-memory"]`)
	writeFile(t, dir, "broken.json", `{"executor-memory": `)
	for _, c := range []struct{ file, want string }{
		{"list.json", "list.json: want a JSON object, not an array"},
		{"broken.json", "broken.json: want a JSON object"},
		{"nowhere.json", "nowhere.json"},
	} {
		code, _, errOut := runCLI(t, "retry", "--db", db, "--job-options", filepath.Join(dir, c.file))
		if code != exitUsage || !strings.Contains(errOut, c.want) {
			t.Errorf("retry --job-options %s: exit %d, %q; want 2 and %q", c.file, code, errOut, c.want)
		}
	}
	if after, _ := os.ReadFile(db); !bytes.Equal(before, after) {
		t.Fatal("a refused retry changed the table")
	}

	code, out, errOut := runCLI(t, "retry", "--db", db, "--job-options", filepath.Join(dir, "more.json"), "--json")
	if code != 0 {
		t.Fatalf("retry: %d %s %s", code, out, errOut)
	}
	var res struct {
		Retried []struct {
			Row        int64          `json:"row"`
			JobOptions map[string]any `json:"job_options"`
		} `json:"retried"`
	}
	if err := json.Unmarshal([]byte(out), &res); err != nil || len(res.Retried) != 2 ||
		res.Retried[0].JobOptions["driver-memory"] != "1G" || res.Retried[0].JobOptions["executor-memory"] != "4G" {
		t.Fatalf("retry --json: %v %s", err, out)
	}
	for _, r := range readRows(t, db) {
		want := map[string]string{
			"row 0": `{"driver-memory":"1G","executor-memory":"4G","max-executors":20}`,
			"row 1": `{"executor-memory":"4G","max-executors":20}`,
		}[r.Data["title"].(string)]
		if r.Data["job_options"] != want {
			t.Errorf("%s: job_options %#v, want %s", r.Data["title"], r.Data["job_options"], want)
		}
	}

	fail.Store(false)
	first := len(srv.Jobs())
	if code, out, errOut := runCLI(t, runArgs...); code != 0 {
		t.Fatalf("run after retry: exit %d\n%s\n%s", code, out, errOut)
	}
	jobs := srv.Jobs()
	if len(jobs) != first+2 {
		t.Fatalf("%d jobs, want %d", len(jobs), first+2)
	}
	got := jobOptionsOf(t, jobs[first:])
	want := map[string]map[string]any{
		"row 0": {"driver-memory": "1G", "executor-memory": "4G", "max-executors": 20.0, "queue": "default"},
		"row 1": {"executor-memory": "4G", "max-executors": 20.0, "queue": "default"},
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("the retried rows' new jobs have job_options %v, want %v", got, want)
	}
	if old := jobOptionsOf(t, jobs[:first]); old["row 1"]["executor-memory"] != "1G" {
		t.Errorf("the first jobs' job_options: %v", old)
	}

	// A row whose job_options is no JSON object cannot take the file's:
	// named, exit 2, the table unchanged.
	writeFile(t, dir, "bad.csv", "year,title,status,id,job_options\n2000,row 0,error,j-1,lots of memory\n")
	bad := filepath.Join(dir, "bad.db")
	if code, out, errOut := runCLI(t, "init", "--from", filepath.Join(dir, "bad.csv"), "--db", bad); code != 0 {
		t.Fatalf("init: %d %s %s", code, out, errOut)
	}
	before, _ = os.ReadFile(bad)
	code, _, errOut = runCLI(t, "retry", "--db", bad, "--job-options", filepath.Join(dir, "more.json"))
	if code != exitUsage || !strings.Contains(errOut, "bad.db: row 1: column job_options") || !strings.Contains(errOut, "not a JSON object") {
		t.Errorf("a row's job_options that is no object: exit %d, %q", code, errOut)
	}
	if after, _ := os.ReadFile(bad); !bytes.Equal(before, after) {
		t.Error("a refused retry changed the table")
	}
}
