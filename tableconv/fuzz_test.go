package tableconv

import (
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/paulmach/orb/encoding/wkt"
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
		tab, err := ReadCSV(path)
		if err != nil {
			return
		}
		for i, row := range tab.Rows {
			if len(row) != len(tab.Columns) {
				t.Fatalf("row %d has %d values for %d columns", i, len(row), len(tab.Columns))
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

// FuzzReadGeoJSON: any document either fails with an error naming the
// file, or gives rows as wide as the columns, the geometry column last,
// each geometry WKT that reads back.
func FuzzReadGeoJSON(f *testing.F) {
	f.Add([]byte(`{"type":"FeatureCollection","features":[{"type":"Feature","properties":{"a":1,"b":{"c":[1]}},"geometry":{"type":"Point","coordinates":[1,2]}}]}`))
	f.Add([]byte(`{"type":"FeatureCollection","features":[{"type":"Feature","properties":null,"geometry":null}]}`))
	f.Add([]byte(`{"type":"FeatureCollection","features":[{"type":"Feature","properties":{"x":1e400},"geometry":{"type":"LineString","coordinates":[[1,2]]}}]}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		path := filepath.Join(t.TempDir(), "in.geojson")
		if err := os.WriteFile(path, data, 0o644); err != nil {
			t.Fatal(err)
		}
		tab, err := ReadGeoJSON(path)
		if err != nil {
			if !strings.Contains(err.Error(), path) {
				t.Fatalf("error without the file name: %v", err)
			}
			return
		}
		if !utf8.Valid(data) {
			t.Fatalf("text that is not UTF-8 read without an error")
		}
		if len(tab.Columns) == 0 || tab.Columns[len(tab.Columns)-1] != GeometryColumn {
			t.Fatalf("columns %q", tab.Columns)
		}
		for i, row := range tab.Rows {
			if len(row) != len(tab.Columns) {
				t.Fatalf("row %d has %d values for %d columns", i, len(row), len(tab.Columns))
			}
			if g := row[len(row)-1]; g != nil {
				if _, err := wkt.Unmarshal(g.(string)); err != nil {
					t.Fatalf("row %d: geometry %q does not read back: %v", i, g, err)
				}
			}
		}
	})
}
