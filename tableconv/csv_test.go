package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// A CSV input keeps its cells exactly: a \r\n line break inside a quoted
// cell, bytes that are not UTF-8.
func TestReadCSVExact(t *testing.T) {
	path := filepath.Join(t.TempDir(), "in.csv")
	os.WriteFile(path, []byte("title,note\r\n\"two\r\nlines\",caf\xe9\r\n"), 0o644)
	tab, err := readCSV(path)
	if err != nil {
		t.Fatal(err)
	}
	if got := tab.rows[0]; got[0] != "two\r\nlines" || got[1] != "caf\xe9" {
		t.Errorf("read %q", got)
	}
}

// A plain CSV given as --db: status counts its rows without changing it or
// leaving anything beside it; a bad one is refused by run with the file,
// row and column, exit 1, and nothing left behind.
func TestPlainCSVAsTable(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "t.csv")
	const plain = "year,title\n2000,a\n"
	os.WriteFile(path, []byte(plain), 0o644)
	var stdout, stderr bytes.Buffer
	if code := run(t.Context(), []string{"status", "--db", path}, &stdout, &stderr); code != 0 {
		t.Fatalf("status: exit %d\n%s", code, stderr.String())
	}
	if !strings.Contains(stdout.String(), "not_started") {
		t.Errorf("status printed %q", stdout.String())
	}
	onlyFile(t, path, plain)

	const bad = "year,status\n2000,\n2001,done\n"
	os.WriteFile(path, []byte(bad), 0o644)
	os.WriteFile(filepath.Join(dir, "p.json"), []byte(`{"id": "p", "process_graph": {"n": {"process_id": "add", "arguments": {"x": 1, "y": 2}, "result": true}}}`), 0o644)
	stderr.Reset()
	code := run(t.Context(), []string{"run", "--db", path, "--backend", "x=http://127.0.0.1:1", "--process", filepath.Join(dir, "p.json")}, &stdout, &stderr)
	if code != 1 {
		t.Errorf("run: exit %d, want 1\n%s", code, stderr.String())
	}
	for _, want := range []string{"t.csv", "row 2", "status", "done"} {
		if !strings.Contains(stderr.String(), want) {
			t.Errorf("message %q lacks %q", stderr.String(), want)
		}
	}
	os.Remove(filepath.Join(dir, "p.json"))
	onlyFile(t, path, bad)
}

// onlyFile checks that path holds content and is alone in its folder.
func onlyFile(t *testing.T, path, content string) {
	t.Helper()
	if b, _ := os.ReadFile(path); string(b) != content {
		t.Errorf("%s changed:\n%s", path, b)
	}
	entries, _ := os.ReadDir(filepath.Dir(path))
	for _, e := range entries {
		if e.Name() != filepath.Base(path) {
			t.Errorf("left behind: %s", e.Name())
		}
	}
}
