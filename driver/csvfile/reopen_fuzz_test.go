package csvfile

import (
	"bytes"
	"encoding/csv"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// FuzzReopen: whatever file the store accepts, it reads every cell as
// written (as encoding/csv reads it, but for the \r\n line breaks that
// encoding/csv turns into \n), and a rewrite then a reopen gives the same
// header and the same cells, byte for byte.
func FuzzReopen(f *testing.F) {
	f.Add([]byte("year,title\n2000,a\n"))
	f.Add([]byte("a,b\r\n1,\"x\r\ny\"\r\n2,\"\"\"q\"\"\"\r\n"))
	f.Add([]byte("\xef\xbb\xbfname,v\n\xff\xfe,\"caf\xe9\"\n\n,nan\n"))
	f.Add([]byte("id,status,costs\nj-1,finished,4.5\n,,\n"))
	f.Add([]byte("a,b\n1,x\"y\n"))
	f.Add([]byte("a,b\n1,\"x\"y\n"))
	f.Add([]byte("a\n\"\r\n\r\n\"\n\"\r\"\nb\r"))
	f.Add([]byte("a,,b\n1,2,3\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		path := filepath.Join(t.TempDir(), "t.csv")
		if err := os.WriteFile(path, data, 0o644); err != nil {
			t.Fatal(err)
		}
		r, err := OpenReader(t.Context(), path)
		if err != nil {
			return // refused with an error: nothing to keep
		}
		header, cells := r.header, rowCells(r)
		r.Close()
		if b, _ := os.ReadFile(path); !bytes.Equal(b, data) {
			t.Fatal("a reader changed the file")
		}
		if header == nil {
			return // an empty file: no table
		}
		if recs, err := csv.NewReader(bytes.NewReader(data)).ReadAll(); err == nil {
			status := slices.Index(header, "status")
			for i, rec := range recs[1:] {
				for j, v := range rec {
					if got := strings.ReplaceAll(cells[i][j], "\r\n", "\n"); j != status && got != v {
						t.Fatalf("row %d column %d: read %q, encoding/csv reads %q", i+1, j+1, cells[i][j], v)
					}
				}
			}
		}

		w, err := OpenWith(t.Context(), path, Options{AfterFunc: never})
		if err != nil {
			t.Fatalf("the writer refuses what the reader read: %v", err)
		}
		w.mu.Lock()
		w.dirty = true
		w.mu.Unlock()
		if err := w.Close(); err != nil {
			t.Fatal(err)
		}
		r2, err := OpenReader(t.Context(), path)
		if err != nil {
			t.Fatalf("reopen the rewritten file: %v", err)
		}
		defer r2.Close()
		if !slices.Equal(r2.header, header) {
			t.Fatalf("header %q became %q", header, r2.header)
		}
		if got := rowCells(r2); !slices.EqualFunc(got, cells, slices.Equal) {
			t.Fatalf("cells %q became %q", cells, got)
		}
	})
}

func rowCells(s *Store) [][]string {
	out := make([][]string, len(s.rows))
	for i, r := range s.rows {
		out[i] = slices.Clone(r.cells)
	}
	return out
}
