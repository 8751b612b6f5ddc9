package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/openeo-batch/worker/worker"
)

// runCLI runs the worker command line in this process and returns its exit
// code, stdout and stderr.
func runCLI(t *testing.T, args ...string) (int, string, string) {
	t.Helper()
	var out, errOut bytes.Buffer
	code := run(t.Context(), args, &out, &errOut)
	return code, out.String(), errOut.String()
}

// writeFile writes content to dir/name and returns its path.
func writeFile(t *testing.T, dir, name, content string) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

// finishedTable writes dir/jobs.db with two finished rows, jobs j-1 and
// j-2, as a Python client's table would have them.
func finishedTable(t *testing.T, dir string) string {
	t.Helper()
	in := filepath.Join(dir, "in.csv")
	os.WriteFile(in, []byte("title,status,id,start_time,geometry\n"+
		"A,finished,j-1,2024-05-01T10:00:00Z,\"POLYGON ((5 51, 6 51, 6 52, 5 52, 5 51))\"\n"+
		"B,finished,j-2,2024-05-01T10:00:00Z,\"POLYGON ((6 51, 7 51, 7 52, 6 52, 6 51))\"\n"), 0o644)
	db := filepath.Join(dir, "jobs.db")
	if code, out, errOut := runCLI(t, "init", "--from", in, "--db", db); code != 0 {
		t.Fatalf("init: %d %s %s", code, out, errOut)
	}
	return db
}

// writeJobFolder puts a job's metadata and one result file under root.
func writeJobFolder(t *testing.T, root, id string) {
	t.Helper()
	if err := os.MkdirAll(worker.JobDir(root, id), 0o755); err != nil {
		t.Fatal(err)
	}
	os.WriteFile(worker.MetadataPath(root, id), []byte(`{"id": "`+id+`", "status": "finished"}`), 0o644)
	os.WriteFile(filepath.Join(worker.JobDir(root, id), "result.tif"), []byte("tif"), 0o644)
}

// TestExportSTACRootDir: export --stac with a --root-dir that is not there,
// or that holds none of the job folders (the default, the current folder,
// when the results are elsewhere), says so and leaves no folder; rows
// whose results are missing are listed one line each, nothing is written
// (so the same command works once the results are there), and
// --allow-incomplete writes the catalogue anyway.
func TestExportSTACRootDir(t *testing.T) {
	dir := t.TempDir()
	db := finishedTable(t, dir)
	stacDir := filepath.Join(dir, "out", "stac")
	gone := func(what string) {
		t.Helper()
		for _, p := range []string{stacDir, filepath.Dir(stacDir)} {
			if _, err := os.Stat(p); !os.IsNotExist(err) {
				t.Errorf("%s: %s left behind (%v)", what, p, err)
			}
		}
	}

	code, _, errOut := runCLI(t, "export", "--db", db, "--to", stacDir, "--stac", "--root-dir", filepath.Join(dir, "nope"))
	if code != exitUsage || !strings.Contains(errOut, "--root-dir "+filepath.Join(dir, "nope")+" does not exist") {
		t.Errorf("a --root-dir not there: exit %d, %q; want 2 naming it", code, errOut)
	}
	gone("--root-dir not there")

	// The default --root-dir is the current folder, as for worker run;
	// the results are in dir/results.
	t.Chdir(dir)
	code, _, errOut = runCLI(t, "export", "--db", db, "--to", stacDir, "--stac")
	if code != exitError || !strings.Contains(errOut, "none of the 2 finished row(s)") || !strings.Contains(errOut, "--root-dir .") ||
		strings.Contains(errOut, "not (completely) downloaded") {
		t.Errorf("results elsewhere: exit %d, %q; want 1 asking about --root-dir", code, errOut)
	}
	gone("results elsewhere")

	root := filepath.Join(dir, "results")
	writeJobFolder(t, root, "j-1")
	code, _, errOut = runCLI(t, "export", "--db", db, "--to", stacDir, "--stac", "--root-dir", root)
	lines := strings.Split(strings.TrimRight(errOut, "\n"), "\n")
	if code != exitError || len(lines) != 2 || !strings.HasPrefix(lines[0], "  row 2 (job j-2): ") || !strings.Contains(lines[0], "job_j-2") ||
		!strings.Contains(lines[1], "nothing was written") || !strings.Contains(lines[1], "--allow-incomplete") {
		t.Errorf("one row's results missing: exit %d, stderr:\n%s\nwant 1, one line for row 2 and the error", code, errOut)
	}
	gone("one row's results missing")

	code, out, errOut := runCLI(t, "export", "--db", db, "--to", stacDir, "--stac", "--root-dir", root, "--allow-incomplete")
	if code != exitOK || !strings.Contains(out, "2 items") || !strings.Contains(errOut, "row 2 (job j-2)") {
		t.Errorf("--allow-incomplete: exit %d, %q, %q; want 0, 2 items and row 2 listed", code, out, errOut)
	}
	if _, err := os.Stat(filepath.Join(stacDir, "collection.json")); err != nil {
		t.Errorf("--allow-incomplete wrote no catalogue: %v", err)
	}

	writeJobFolder(t, root, "j-2")
	code, out, errOut = runCLI(t, "export", "--db", db, "--to", filepath.Join(dir, "stac2"), "--stac", "--root-dir", root)
	if code != exitOK || !strings.Contains(out, "2 items") || errOut != "" {
		t.Errorf("complete results: exit %d, %q, %q", code, out, errOut)
	}
}

// TestInitInputErrors: what is wrong with the input of init and init
// --append (its content, a key it lacks or repeats, a file that is not
// there) is invalid input, exit 2, and the table is left as it was.
func TestInitInputErrors(t *testing.T) {
	dir := t.TempDir()
	write := func(name, content string) string { return writeFile(t, dir, name, content) }
	db := filepath.Join(dir, "jobs.db")
	if code, out, errOut := runCLI(t, "init", "--from", write("in.csv", "a,b\n1,2\n3,4\n"), "--db", db); code != 0 {
		t.Fatalf("init: %d %s %s", code, out, errOut)
	}
	before, _ := os.ReadFile(db)
	dup := write("dup.csv", "a,b\n1,5\n")
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"--append", "--from", dup, "--db", db, "--key", "a"}, "1 row has a key already in the table or in an earlier row"},
		{[]string{"--append", "--from", dup, "--db", db, "--key", "a"}, "row 1 (a=1): already in"},
		{[]string{"--append", "--from", write("twice.csv", "a,b\n7,1\n7,2\n8,1\n8,2\n"), "--db", db, "--key", "a"}, "2 rows have keys already in the table or in an earlier row"},
		{[]string{"--append", "--from", dup, "--db", db, "--key", "nope"}, `no key column "nope"`},
		{[]string{"--append", "--from", write("empty.csv", "a,b\n"), "--db", db, "--key", "a"}, "no rows to add"},
		{[]string{"--from", write("wkt.csv", "a,geometry\n1,\"POLYGON ((0 0\"\n"), "--db", filepath.Join(dir, "n1.db")}, `row 1, column "geometry": not WKT`},
		{[]string{"--from", write("status.csv", "a,status\n1,done\n"), "--db", filepath.Join(dir, "n2.db")}, `row 1, column "status": unknown status "done"`},
		{[]string{"--from", write("ragged.csv", "a,b\n1\n"), "--db", filepath.Join(dir, "n3.db")}, "ragged.csv"},
		{[]string{"--from", filepath.Join(dir, "nowhere.csv"), "--db", filepath.Join(dir, "n4.db")}, "nowhere.csv"},
		{[]string{"--from", dup, "--db", filepath.Join(dir, "nowhere", "n5.db")}, "the folder " + filepath.Join(dir, "nowhere") + " does not exist"},
	} {
		code, _, errOut := runCLI(t, append([]string{"init"}, c.args...)...)
		if code != exitUsage || !strings.Contains(errOut, c.want) {
			t.Errorf("init %v: exit %d, %q; want 2 and %q", c.args, code, errOut, c.want)
		}
	}
	if after, _ := os.ReadFile(db); !bytes.Equal(before, after) {
		t.Error("a refused init --append changed the table")
	}
	if left, _ := filepath.Glob(filepath.Join(dir, "n*.db")); len(left) > 0 {
		t.Errorf("refused inits left %v", left)
	}
}

// TestExportSTACResultFiles: export --stac compares the files that each
// job's job-results.json lists (with their file:size) with those on disk,
// as worker download --dry-run does: a missing and a truncated file each
// make their row incomplete, nothing is written, exit 1, with the advice
// to fetch them (the table quoted for the shell); a row refused for its
// geometry gets advice of its own, not the download's.
func TestExportSTACResultFiles(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "my campaign")
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	db := finishedTable(t, dir)
	root := filepath.Join(dir, "results")
	for _, id := range []string{"j-1", "j-2"} {
		writeJobFolder(t, root, id)
		os.WriteFile(worker.ResultsPath(root, id), []byte(`{"type": "Feature", "id": "`+id+`",
 "assets": {"result.tif": {"href": "https://example.org/result.tif", "file:size": 3}, "data/b03.tif": {"href": "https://example.org/b03.tif"}}}`), 0o644)
		os.MkdirAll(filepath.Join(worker.JobDir(root, id), "data"), 0o755)
		os.WriteFile(filepath.Join(worker.JobDir(root, id), "data", "b03.tif"), []byte("band"), 0o644)
	}
	tif := func(id string) string { return filepath.Join(worker.JobDir(root, id), "result.tif") }
	export := func(to string, extra ...string) (int, string, string) {
		return runCLI(t, append([]string{"export", "--db", db, "--to", filepath.Join(dir, to), "--stac", "--root-dir", root}, extra...)...)
	}
	if code, out, errOut := export("stac0"); code != exitOK || !strings.Contains(out, "2 items") || errOut != "" {
		t.Fatalf("complete results: exit %d, %q, %q", code, out, errOut)
	}

	os.Remove(tif("j-1"))
	os.WriteFile(tif("j-2"), []byte("t"), 0o644)
	code, _, errOut := export("stac1")
	lines := strings.Split(strings.TrimRight(errOut, "\n"), "\n")
	if code != exitError || len(lines) != 3 ||
		!strings.HasPrefix(lines[0], "  row 1 (job j-1): item incomplete: ") || !strings.Contains(lines[0], "missing result.tif") ||
		!strings.HasPrefix(lines[1], "  row 2 (job j-2): item incomplete: ") || !strings.Contains(lines[1], "result.tif (1 of 3 bytes)") ||
		strings.Contains(lines[0]+lines[1], "b03") || !strings.Contains(lines[2], "nothing was written") ||
		!strings.Contains(lines[2], "2 with results missing on disk: fetch them with worker download --db '"+db+"'") ||
		strings.Contains(lines[2], "geometry") {
		t.Errorf("a missing and a truncated file: exit %d, stderr:\n%s\nwant 1, both rows named, the download advice", code, errOut)
	}
	if _, err := os.Stat(filepath.Join(dir, "stac1")); !os.IsNotExist(err) {
		t.Errorf("incomplete results: the catalogue was written (%v)", err)
	}
	code, out, errOut := export("stac2", "--allow-incomplete")
	if code != exitOK || !strings.Contains(out, "2 items") || !strings.Contains(errOut, "row 2 (job j-2)") {
		t.Errorf("--allow-incomplete: exit %d, %q, %q; want 0, 2 items, rows listed", code, out, errOut)
	}

	// Results complete again; row 2's geometry is projected.
	os.WriteFile(tif("j-1"), []byte("tif"), 0o644)
	os.WriteFile(tif("j-2"), []byte("tif"), 0o644)
	in := writeFile(t, dir, "projected.csv", "title,status,id,start_time,geometry\n"+
		"A,finished,j-1,2024-05-01T10:00:00Z,\"POLYGON ((5 51, 6 51, 6 52, 5 52, 5 51))\"\n"+
		"B,finished,j-2,2024-05-01T10:00:00Z,\"POLYGON ((500000 5600000, 520000 5600000, 520000 5620000, 500000 5600000))\"\n")
	db = filepath.Join(dir, "projected.db")
	if code, out, errOut := runCLI(t, "init", "--from", in, "--db", db); code != 0 {
		t.Fatalf("init: %d %s %s", code, out, errOut)
	}
	code, _, errOut = export("stac3")
	if code != exitError || !strings.Contains(errOut, "row 2 (job j-2): no item") || !strings.Contains(errOut, "1 left out for their geometry column") ||
		strings.Contains(errOut, "worker download") {
		t.Errorf("a projected geometry: exit %d, %q; want 1, geometry advice and no download advice", code, errOut)
	}
}

// TestTargetUsage: a file to write that is there already or whose ending
// names no format, and an input with two columns equal but for case, are
// bad usage (exit 2) naming the flag or file, with nothing written, for
// every target format (PostgreSQL too: refused before connecting).
func TestTargetUsage(t *testing.T) {
	dir := t.TempDir()
	db := finishedTable(t, dir)
	existing := writeFile(t, dir, "t2.csv", "a\n1\n")
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"export", "--db", db, "--to", existing}, "export: --to " + existing + " exists already"},
		{[]string{"export", "--db", db, "--to", filepath.Join(dir, "out.txt")}, `export: --to: ` + filepath.Join(dir, "out.txt") + `: no store driver for files ending in ".txt"`},
		{[]string{"split", "--area", "3,50,4,51", "--tile-size", "0.5", "--projection", "4326", "--to", existing}, "split: --to " + existing + " exists already"},
	} {
		code, _, errOut := runCLI(t, c.args...)
		if code != exitUsage || !strings.Contains(errOut, c.want) {
			t.Errorf("%v: exit %d, %q; want 2 and %q", c.args, code, errOut, c.want)
		}
	}
	cols := writeFile(t, dir, "cols.csv", "Tile,year,tile\na,2020,b\n")
	id := writeFile(t, dir, "id.csv", "tile,ID\na,b\n")
	for _, to := range []string{"n.db", "n.csv", "n.parquet", "n.duckdb", "postgres://127.0.0.1:1/none?table=n"} {
		target := to
		if !strings.Contains(to, "://") {
			target = filepath.Join(dir, to)
		}
		code, _, errOut := runCLI(t, "init", "--from", cols, "--db", target)
		if code != exitUsage || !strings.Contains(errOut, cols+`: columns "Tile" and "tile" differ only in case`) {
			t.Errorf("init --from cols.csv --db %s: exit %d, %q; want 2 naming the file and both columns", to, code, errOut)
		}
		code, _, errOut = runCLI(t, "init", "--from", id, "--db", target)
		if code != exitUsage || !strings.Contains(errOut, id+`: column "ID" differs only in case from the manager's column "id"`) {
			t.Errorf("init --from id.csv --db %s: exit %d, %q; want 2 naming the file and both columns", to, code, errOut)
		}
	}
	if left, _ := filepath.Glob(filepath.Join(dir, "n.*")); len(left) > 0 {
		t.Errorf("refused inits left %v", left)
	}
}

// TestExportSTACOptions: a --license that is no SPDX identifier and a
// --collection-id unsafe in a path are bad usage naming the flag.
func TestExportSTACOptions(t *testing.T) {
	dir := t.TempDir()
	db := finishedTable(t, dir)
	for _, c := range []struct{ flag, value, want string }{
		{"--license", "notalicense!", "export: --license 'notalicense!': not an SPDX license identifier"},
		{"--collection-id", "a/b", "export: --collection-id a/b: use letters, digits"},
	} {
		code, _, errOut := runCLI(t, "export", "--db", db, "--to", filepath.Join(dir, "stac"), "--stac", "--root-dir", dir, c.flag, c.value)
		if code != exitUsage || !strings.Contains(errOut, c.want) {
			t.Errorf("%s %s: exit %d, %q; want 2 and %q", c.flag, c.value, code, errOut, c.want)
		}
	}
}
