package tableconv

import (
	"fmt"
	"iter"
	"os"

	"github.com/openeo-batch/worker/driver"
	"github.com/openeo-batch/worker/internal/csvtext"
)

// Table is a job table in memory: column names and rows of values, each
// row as long as Columns. A value is nil (an empty cell), int64, float64,
// bool or string (text, kept byte for byte, also when it is not UTF-8);
// geometries are WKT text in the column GeometryColumn. It is what
// driver.Store.Init takes (see All) and what ReadStore gives back.
type Table struct {
	Columns []string
	Rows    [][]any
	// EPSG is the CRS of GeometryColumn's coordinates as an EPSG code when
	// the source names one (a GeoJSON file's "crs" member, a GeoParquet
	// column's "crs", the grid of worker split); 0 when it names none (see
	// GeometryEPSG for the epsg column).
	EPSG int
}

// All yields the rows in order, in the shape driver.Store.Init takes.
func (t *Table) All() iter.Seq2[[]any, error] {
	return func(yield func([]any, error) bool) {
		for _, r := range t.Rows {
			if !yield(r, nil) {
				return
			}
		}
	}
}

// ReadCSV reads a CSV job table (RFC 4180: a header line, then one row per
// line; quoted cells may hold commas, quotes and line breaks, kept exactly
// as written; a UTF-8 byte order mark before the header is dropped). The
// user's columns get a type per column: integer (int64) when every cell is
// a whole number without leading zeros, real (float64) when every cell is a
// number, text otherwise; empty cells are nil. Manager columns (see
// driver.ManagerColumns) stay text and are checked by the store they go to.
// A file that is not CSV, or whose rows are wider or narrower than its
// header, is an error naming the file and line; an empty file is one too.
func ReadCSV(path string) (*Table, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	recs, err := csvtext.Records(data)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	if len(recs) == 0 {
		return nil, fmt.Errorf("%s: empty file: want a header line with column names", path)
	}
	header, cells := recs[0], recs[1:]
	if len(header) > 0 {
		header[0] = trimBOM(header[0])
	}
	t := &Table{Columns: header, Rows: make([][]any, len(cells))}
	for i := range t.Rows {
		t.Rows[i] = make([]any, len(header))
	}
	column := make([]string, len(cells))
	for c, name := range header {
		for i, rec := range cells {
			column[i] = rec[c]
		}
		var vals []any
		if _, manager := driver.ManagerColumn(name); manager {
			vals = make([]any, len(cells)) // manager columns stay text: the store checks them
			for i, v := range column {
				if v != "" {
					vals[i] = v
				}
			}
		} else {
			vals = csvtext.Infer(column)
		}
		for i := range cells {
			t.Rows[i][c] = vals[i]
		}
	}
	return t, nil
}

func trimBOM(s string) string {
	if len(s) >= 3 && s[:3] == "\xef\xbb\xbf" {
		return s[3:]
	}
	return s
}
