package main

import (
	"os"
	"path/filepath"
	"strconv"
	"testing"
)

// FuzzReadCSV: any file either fails with an error naming it, or gives
// rows as wide as the header whose typed values format back to numbers
// that parse to the same value.
func FuzzReadCSV(f *testing.F) {
	f.Add([]byte("year,tile\n2020,31UFS\n2021,\n"))
	f.Add([]byte("a,b\n\"x, \"\"y\"\"\n z\",1.5\n,2e3\n"))
	f.Add([]byte("\xef\xbb\xbfid,status\nj-1,finished\n"))
	f.Add([]byte("a\n007\n1\n"))
	f.Add([]byte("a,b\n1\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		path := filepath.Join(t.TempDir(), "in.csv")
		if err := os.WriteFile(path, data, 0o644); err != nil {
			t.Fatal(err)
		}
		tab, err := readCSV(path)
		if err != nil {
			return
		}
		for i, row := range tab.rows {
			if len(row) != len(tab.columns) {
				t.Fatalf("row %d has %d values for %d columns", i, len(row), len(tab.columns))
			}
			for _, v := range row {
				switch x := v.(type) {
				case int64:
					if back, err := strconv.ParseInt(strconv.FormatInt(x, 10), 10, 64); err != nil || back != x {
						t.Fatalf("int %d does not round-trip", x)
					}
				case float64:
					s := strconv.FormatFloat(x, 'g', -1, 64)
					if back, err := strconv.ParseFloat(s, 64); err != nil || (back != x && x == x) {
						t.Fatalf("float %v does not round-trip", x)
					}
				case string, nil:
				default:
					t.Fatalf("unexpected %T", v)
				}
			}
		}
	})
}

// FuzzParseBackend: any --backend value parses or errors, never panics, and
// a parsed one has a name, a URL and no negative limit.
func FuzzParseBackend(f *testing.F) {
	for _, s := range []string{"a=http://x", "vito=https://openeo.vito.be,parallel=4,queue=10", "=x", "a=", "a=u,parallel=0", "a=u,foo=1"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, v string) {
		spec, err := parseBackend(v)
		if err != nil {
			return
		}
		if spec.name == "" || spec.url == "" || spec.parallel < 0 || spec.queue < 0 {
			t.Fatalf("parseBackend(%q) = %+v", v, spec)
		}
	})
}
