package main

import (
	"encoding/csv"
	"errors"
	"fmt"
	"io"
	"iter"
	"os"
	"regexp"
	"strconv"

	"github.com/openeo-batch/worker/driver"
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

var (
	intRE   = regexp.MustCompile(`^[-+]?(0|[1-9][0-9]*)$`)
	floatRE = regexp.MustCompile(`^[-+]?([0-9]+\.?[0-9]*|\.[0-9]+)([eE][-+]?[0-9]+)?$|^[-+]?(inf|nan)$`)
)

// readCSV reads a CSV job table (a header line, then one row per line;
// quoted cells may hold commas, quotes and line breaks). The user's columns
// get a type per column: integer when every cell is a whole number without
// leading zeros, real when every cell is a number, text otherwise; empty
// cells are null. Manager columns stay text and are checked by the store.
func readCSV(path string) (*table, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	r := csv.NewReader(f)
	header, err := r.Read()
	if errors.Is(err, io.EOF) {
		return nil, fmt.Errorf("%s: empty file: want a header line with column names", path)
	}
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	if len(header) > 0 {
		header[0] = trimBOM(header[0])
	}
	var cells [][]string
	for {
		rec, err := r.Read()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, fmt.Errorf("%s: %w", path, err)
		}
		cells = append(cells, rec)
	}
	t := &table{columns: header, rows: make([][]any, len(cells))}
	for i := range t.rows {
		t.rows[i] = make([]any, len(header))
	}
	for c, name := range header {
		_, manager := driver.ManagerColumn(name)
		kind := inferKind(cells, c)
		if manager {
			kind = driver.Text
		}
		for i, rec := range cells {
			t.rows[i][c] = convertCell(rec[c], kind)
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

func inferKind(cells [][]string, c int) driver.Kind {
	kind, seen := driver.Integer, false
	for _, rec := range cells {
		v := rec[c]
		if v == "" {
			continue
		}
		seen = true
		switch {
		case intRE.MatchString(v):
		case floatRE.MatchString(v):
			kind = driver.Real
		default:
			return driver.Text
		}
	}
	if !seen {
		return driver.Text
	}
	return kind
}

func convertCell(v string, kind driver.Kind) any {
	if v == "" {
		return nil
	}
	switch kind {
	case driver.Integer:
		if n, err := strconv.ParseInt(v, 10, 64); err == nil {
			return n
		}
		if f, err := strconv.ParseFloat(v, 64); err == nil {
			return f // beyond int64
		}
	case driver.Real:
		if f, err := strconv.ParseFloat(v, 64); err == nil {
			return f
		}
	}
	return v
}
