package main

import (
	"fmt"
	"iter"
	"os"

	"github.com/openeo-batch/worker/driver"
	"github.com/openeo-batch/worker/driver/csvfile"
)

// table is a job table read from a file, ready for Store.Init.
type table struct {
	columns []string
	rows    [][]any
}

func (t *table) seq() iter.Seq2[[]any, error] {
	return func(yield func([]any, error) bool) {
		for _, r := range t.rows {
			if !yield(r, nil) {
				return
			}
		}
	}
}

// readCSV reads a CSV job table (a header line, then one row per line;
// quoted cells may hold commas, quotes and line breaks, kept exactly as
// written). The user's columns
// get a type per column: integer when every cell is a whole number without
// leading zeros, real when every cell is a number, text otherwise; empty
// cells are null. Manager columns stay text and are checked by the store.
func readCSV(path string) (*table, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	recs, err := csvfile.Records(data)
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
	t := &table{columns: header, rows: make([][]any, len(cells))}
	for i := range t.rows {
		t.rows[i] = make([]any, len(header))
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
			vals = csvfile.Infer(column)
		}
		for i := range cells {
			t.rows[i][c] = vals[i]
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
