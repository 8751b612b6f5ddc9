package main

import (
	"os"
	"path/filepath"
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
