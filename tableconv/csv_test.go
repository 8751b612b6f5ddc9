package tableconv

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
	tab, err := ReadCSV(path)
	if err != nil {
		t.Fatal(err)
	}
	if got := tab.Rows[0]; got[0] != "two\r\nlines" || got[1] != "caf\xe9" {
		t.Errorf("read %q", got)
	}
}

func TestReadCSVTypesPerColumn(t *testing.T) {
	path := filepath.Join(t.TempDir(), "in.csv")
	os.WriteFile(path, []byte("year,tile,cover,id,flag\n2020,0123,0.5,17,True\n2021,31UFS,,18,False\n"), 0o644)
	tab, err := ReadCSV(path)
	if err != nil {
		t.Fatal(err)
	}
	want := [][]any{
		{int64(2020), "0123", 0.5, "17", "True"},
		{int64(2021), "31UFS", nil, "18", "False"},
	}
	for i := range want {
		for j := range want[i] {
			if tab.Rows[i][j] != want[i][j] {
				t.Errorf("row %d col %s = %#v, want %#v", i, tab.Columns[j], tab.Rows[i][j], want[i][j])
			}
		}
	}
}
