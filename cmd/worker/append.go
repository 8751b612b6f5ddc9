package main

import (
	"context"
	"fmt"
	"io"
	"slices"
	"strconv"
	"strings"

	"github.com/openeo-batch/worker/driver"
	"github.com/openeo-batch/worker/query"
	"github.com/openeo-batch/worker/tableconv"
)

// appendUsage is the part of worker init's help about --append.
const appendUsage = `
With --append, the rows of FILE are added to the existing TABLE instead, so
a campaign can grow without a new table: --key names the columns that
identify a row (one, or a comma list), and rows of FILE whose key is
already in TABLE, or twice in FILE, are refused, with the table untouched;
so is a cell that does not fit the type of TABLE's column (text or a
fraction in a column of whole numbers, text in a column of numbers).
Columns of FILE that TABLE lacks are added (empty in the old rows); columns
of TABLE that FILE lacks are empty in the new rows. The table is rewritten
in one atomic step, so --append refuses while a run holds it.
`

// appendTable adds the rows of the file from to the table at location,
// refusing rows whose key columns hold values the table (or an earlier row
// of from) already has.
func appendTable(ctx context.Context, from, location, keySpec string, stdout io.Writer) error {
	var key []string
	for k := range strings.SplitSeq(keySpec, ",") {
		if k = strings.TrimSpace(k); k != "" {
			key = append(key, k)
		}
	}
	if len(key) == 0 {
		return usagef("init --append: --key is required: the columns that identify a row, such as --key tile,year")
	}
	if err := mustExist(location); err != nil {
		return err
	}
	t, err := readInput(ctx, from)
	if err != nil {
		return err
	}
	if len(t.Rows) == 0 {
		return badInput(fmt.Errorf("%s: no rows to add", from))
	}
	var newCols []string
	err = rewriteTable(ctx, location, "init --append", func(user []string, rows []driver.Job) (*tableconv.Table, error) {
		pos := map[string]int{}
		for i, c := range t.Columns {
			pos[c] = i
		}
		for _, k := range key {
			if _, ok := pos[k]; !ok {
				return nil, badInput(fmt.Errorf("%s: no key column %q (it has %s)", from, k, strings.Join(t.Columns, ", ")))
			}
			if !slices.Contains(user, k) {
				if _, mgr := driver.ManagerColumn(k); !mgr {
					return nil, badInput(fmt.Errorf("%s: no key column %q (it has %s)", location, k, strings.Join(user, ", ")))
				}
			}
		}
		keyOf := func(get func(col string) any) string {
			var parts []string
			for _, k := range key {
				parts = append(parts, k+"="+query.Cell(get(k)))
			}
			return strings.Join(parts, ", ")
		}
		have := map[string]int64{}
		for _, j := range rows {
			have[keyOf(func(c string) any { return columnValue(j, c) })] = j.Key
		}
		var refused []string
		seen := map[string]int{}
		for i, r := range t.Rows {
			k := keyOf(func(c string) any { return r[pos[c]] })
			if row, ok := have[k]; ok {
				refused = append(refused, fmt.Sprintf("row %d (%s): already in %s as row %d", i+1, k, location, row))
			} else if first, ok := seen[k]; ok {
				refused = append(refused, fmt.Sprintf("row %d (%s): the same key as row %d", i+1, k, first))
			}
			seen[k] = i + 1
		}
		if len(refused) > 0 {
			total := len(refused)
			refused, more := firstTen(refused)
			rows := fmt.Sprintf("%d rows have keys", total)
			if total == 1 {
				rows = "1 row has a key"
			}
			return nil, badInput(fmt.Errorf("%s: %s already in the table or in an earlier row; nothing was added to %s:\n  %s%s",
				from, rows, location, strings.Join(refused, "\n  "), more))
		}
		if err := checkKinds(from, location, t, user, rows); err != nil {
			return nil, err
		}
		for _, c := range t.Columns {
			if _, mgr := driver.ManagerColumn(c); !mgr && !slices.Contains(user, c) {
				newCols = append(newCols, c)
			}
		}
		out := tableconv.FromJobs(user, newCols, rows)
		for _, r := range t.Rows {
			cells := make([]any, len(out.Columns))
			for i, c := range out.Columns {
				if p, ok := pos[c]; ok {
					cells[i] = r[p]
				}
			}
			out.Rows = append(out.Rows, cells)
		}
		return out, nil
	})
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "added %d rows from %s to %s", len(t.Rows), from, location)
	if len(newCols) > 0 {
		fmt.Fprintf(stdout, ", with the new columns %s", strings.Join(newCols, ", "))
	}
	fmt.Fprintln(stdout)
	return nil
}

// checkKinds refuses the rows of t (read from the file from) with a cell
// that does not fit the type of the table's column of that name, as the
// values of the table's rows show it: whole numbers take whole numbers,
// numbers take numbers, booleans booleans. A typed store would refuse or
// convert such a cell (Parquet turned the whole column into text), and a
// SQLite column would hold two types, which worker query cannot read.
// The error names the file, row and column, and the table's column type,
// before anything is written. Text columns and columns with no value yet
// take anything.
func checkKinds(from, location string, t *tableconv.Table, user []string, rows []driver.Job) error {
	kinds := map[string]string{}
	for _, c := range user {
		kind := ""
		for _, j := range rows {
			k := valueKind(j.Data[c])
			switch {
			case k == "":
				continue
			case kind == "" || kind == k:
				kind = k
			case kind == "whole number" && k == "number" || kind == "number" && k == "whole number":
				kind = "number"
			default:
				kind = "other"
			}
			if kind == "other" {
				break
			}
		}
		if kind == "whole number" || kind == "number" || kind == "boolean" {
			kinds[c] = kind
		}
	}
	var bad []string
	for i, r := range t.Rows {
		for p, c := range t.Columns {
			want, ok := kinds[c]
			k := valueKind(r[p])
			if !ok || k == "" || k == want || want == "number" && k == "whole number" {
				continue
			}
			bad = append(bad, fmt.Sprintf("row %d, column %q: %s is not a %s, as the table's values of %s are",
				i+1, c, quoteCell(r[p]), want, c))
		}
	}
	if len(bad) == 0 {
		return nil
	}
	total := len(bad)
	bad, more := firstTen(bad)
	cells := fmt.Sprintf("%d cells do not fit their column's type", total)
	if total == 1 {
		cells = "1 cell does not fit its column's type"
	}
	return badInput(fmt.Errorf("%s: %s in the table; nothing was added to %s:\n  %s%s",
		from, cells, location, strings.Join(bad, "\n  "), more))
}

// valueKind is the kind of a cell, for checkKinds: "" for nil, "whole
// number", "number", "boolean", "text", or "other".
func valueKind(v any) string {
	switch v.(type) {
	case nil:
		return ""
	case int64, int32, int16, int8, int, uint8, uint16, uint32, uint64:
		return "whole number"
	case float64, float32:
		return "number"
	case bool:
		return "boolean"
	case string:
		return "text"
	}
	return "other"
}

// quoteCell shows a cell in a message: text quoted, else as query shows it.
func quoteCell(v any) string {
	if s, ok := v.(string); ok {
		return strconv.Quote(s)
	}
	return query.Cell(v)
}

// firstTen is the first ten lines of a list of refused rows or cells, and
// the line that counts the others ("" when there are none).
func firstTen(lines []string) ([]string, string) {
	if len(lines) <= 10 {
		return lines, ""
	}
	return lines[:10], fmt.Sprintf("\n  and %d more", len(lines)-10)
}
