package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"slices"
	"strconv"
	"strings"
	"text/tabwriter"

	"github.com/openeo-batch/worker/driver"
	"github.com/openeo-batch/worker/query"
)

var jobsCmd = command{
	name: "jobs",
	usage: `
Usage: worker jobs --db TABLE [--status S[,S]] [--backend-name NAME] [--where SQL] [--columns C,C] [--json]

Lists the rows of a job table: all of them, or those with one of the
statuses given (--status may be repeated or hold a comma list), on one
back-end, and/or for which the DuckDB SQL condition --where holds (as in
worker query, on a snapshot of the table, read-only; safe during a run).
Each row shows its row number (the key other commands take), then the
columns chosen with --columns (default: your columns, then status,
backend_name, id, attempts and last_error; "all" for every column).

Example:
  worker jobs --db jobs.db --status error,start_failed
  worker jobs --db jobs.db --where "year >= 2020 and costs > 5" --columns year,id,costs --json
`,
	run: runJobs,
}

// statusFlag collects --status values: repeated, or comma lists.
type statusFlag []driver.Status

func (s *statusFlag) String() string { return fmt.Sprint(*s) }

func (s *statusFlag) Set(v string) error {
	for part := range strings.SplitSeq(v, ",") {
		st, err := driver.ParseStatus(strings.TrimSpace(part))
		if err != nil {
			return err
		}
		*s = append(*s, st)
	}
	return nil
}

// selection is the rows a command works on: by status, back-end and SQL
// condition; the zero value selects every row.
type selection struct {
	statuses statusFlag
	backend  string
	where    string
}

// flags declares the selection's flags, named alike in every command:
// --status (when statusHelp is not empty), --backend-name and --where.
// (--backend is the back-end to talk to, NAME=URL, where there is one.)
func (s *selection) flags(fs *flag.FlagSet, statusHelp string) {
	if statusHelp != "" {
		fs.Var(&s.statuses, "status", statusHelp)
	}
	fs.StringVar(&s.backend, "backend-name", "", "only rows of the back-end called `NAME` (their backend_name)")
	fs.StringVar(&s.where, "where", "", "only rows for which this DuckDB `SQL` condition holds, as in worker query")
}

// pick returns the selected rows of store, the table at location, in
// table order.
// openPicked opens the table at db for a command that changes the rows
// sel picks (cancel, download), and returns them. writable is false when
// another process (a run) is writing the table: that process then records
// what the command did.
func openPicked(ctx context.Context, db string, sel *selection) (store driver.Store, rows []driver.Job, writable bool, err error) {
	if err := mustExist(db); err != nil {
		return nil, nil, false, err
	}
	store, err = driver.Open(ctx, db)
	if err != nil {
		return nil, nil, false, err
	}
	writable = true
	if wc, ok := store.(driver.WriteChecker); ok && wc.Writable() != nil {
		writable = false
	}
	if rows, err = sel.pick(ctx, store, db); err != nil {
		store.Close()
		return nil, nil, false, err
	}
	return store, rows, writable, nil
}

func (s *selection) pick(ctx context.Context, store driver.Store, location string) ([]driver.Job, error) {
	f := driver.Filter{Statuses: s.statuses, Backend: s.backend}
	if s.where != "" {
		f = driver.Filter{} // --where needs every row, to match the snapshot's
	}
	rows, err := store.Select(ctx, f)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", location, err)
	}
	return s.filter(ctx, rows, location, s.where != "")
}

// filter returns the selected rows among rows. all says rows are every row
// of the table at location in table order, which --where needs; without
// it, rows are already chosen by status and back-end.
func (s *selection) filter(ctx context.Context, rows []driver.Job, location string, all bool) ([]driver.Job, error) {
	keep := func(j driver.Job) bool {
		return (len(s.statuses) == 0 || slices.Contains(s.statuses, j.Status)) && (s.backend == "" || j.Backend == s.backend)
	}
	if s.where != "" {
		if !all {
			return nil, fmt.Errorf("internal error: --where without every row")
		}
		idx, n, err := whereRows(ctx, location, s.where)
		if err != nil {
			return nil, err
		}
		if n != len(rows) {
			return nil, fmt.Errorf("%s: the table has %d rows, its snapshot for --where %d: try again", location, len(rows), n)
		}
		match := map[int64]bool{}
		for _, i := range idx {
			match[rows[i].Key] = true
		}
		base := keep
		keep = func(j driver.Job) bool { return match[j.Key] && base(j) }
	}
	var out []driver.Job
	for _, j := range rows {
		if keep(j) {
			out = append(out, j)
		}
	}
	return out, nil
}

// whereRows evaluates the SQL condition where over the table as worker
// query sees it (a read-only snapshot called jobs) and returns the
// positions, from 0 in table order, of the rows for which it holds, and
// the number of rows of the snapshot. The snapshot keeps the table's
// order (see query.DB), so row_number() OVER () is the position.
func whereRows(ctx context.Context, location, where string) ([]int, int, error) {
	snap, err := query.Open(ctx, location)
	if err != nil {
		return nil, 0, err
	}
	defer snap.Close()
	count, err := snap.Select(ctx, "SELECT count(*) FROM jobs")
	if err != nil {
		return nil, 0, fmt.Errorf("%s: %w", location, err)
	}
	n := int(count.Rows[0][0].(int64))
	q := "SELECT n FROM (SELECT row_number() OVER () - 1 AS n, * FROM jobs) AS t WHERE (" + where + "\n) ORDER BY n"
	rows, err := snap.Select(ctx, q)
	if err != nil {
		return nil, 0, usagef("--where %q: %s", where, whereError(ctx, snap, where, err))
	}
	idx := make([]int, len(rows.Rows))
	for i, r := range rows.Rows {
		idx[i] = int(r[0].(int64))
	}
	return idx, n, nil
}

// whereError is DuckDB's message about the condition where, without the
// SQL whereRows wraps it in: err, the failed query's error, would show
// that (LINE 2: ) ORDER BY n). The condition is run again at the end of a
// query of its own, on lines of its own, so that DuckDB's message says
// "at end of input" for a condition cut short, and its context, when it
// points into the condition, is shown as the condition's.
func whereError(ctx context.Context, snap *query.DB, where string, err error) string {
	if _, alone := snap.Select(ctx, "SELECT 1 FROM jobs WHERE\n"+where); alone != nil {
		err = alone
	}
	msg, context, _ := strings.Cut(err.Error(), "\n\nLINE ")
	// context is "N: text\n    ^", the caret under the text's column.
	num, rest, ok := strings.Cut(context, ": ")
	n, convErr := strconv.Atoi(num)
	if !ok || convErr != nil || n < 2 {
		return msg // about our SQL, not the condition
	}
	text, caret, _ := strings.Cut(rest, "\n")
	label := "--where"
	if strings.Contains(where, "\n") {
		label = fmt.Sprintf("--where line %d", n-1)
	}
	label += ": "
	shift := len(label) - len("LINE "+num+": ")
	if shift > 0 {
		caret = strings.Repeat(" ", shift) + caret
	} else {
		caret = caret[min(-shift, len(caret)-len(strings.TrimLeft(caret, " "))):]
	}
	return msg + "\n" + label + text + "\n" + caret
}

// columnValue is the value of column name in row j: "row" is the row's
// key, a manager column its value, else the user's column.
func columnValue(j driver.Job, name string) any {
	if name == "row" {
		return j.Key
	}
	if _, ok := driver.ManagerColumn(name); ok {
		return j.Value(name)
	}
	return j.Data[name]
}

// chooseColumns resolves --columns against the table's user columns.
func chooseColumns(spec string, user []string) ([]string, error) {
	var mgr []string
	for _, c := range driver.ManagerColumns() {
		mgr = append(mgr, c.Name)
	}
	switch spec {
	case "":
		return append(slices.Clone(user), driver.ColStatus, driver.ColBackend, driver.ColID, driver.ColAttempts, driver.ColLastError), nil
	case "all":
		return append(slices.Clone(user), mgr...), nil
	}
	var cols []string
	for c := range strings.SplitSeq(spec, ",") {
		c = strings.TrimSpace(c)
		if c == "row" {
			continue // always shown
		}
		if !slices.Contains(user, c) && !slices.Contains(mgr, c) {
			return nil, usagef("--columns: no column %q; the table has %s", c, strings.Join(append(slices.Clone(user), mgr...), ", "))
		}
		cols = append(cols, c)
	}
	return cols, nil
}

// printJobs prints rows with columns (after the row number) as an aligned
// table, or as a JSON array of objects.
func printJobs(w io.Writer, rows []driver.Job, columns []string, asJSON bool) error {
	if asJSON {
		// Keys in the order of the table's columns, values as worker
		// query --json writes them (NaN as "NaN", DECIMAL as a number).
		keys := append([]string{"row"}, columns...)
		out := make([]query.Object, 0, len(rows))
		for _, j := range rows {
			o := query.Object{Keys: keys, Values: []any{j.Key}}
			for _, c := range columns {
				o.Values = append(o.Values, columnValue(j, c))
			}
			out = append(out, o)
		}
		return writeJSON(w, out)
	}
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "row\t"+strings.Join(columns, "\t"))
	clean := strings.NewReplacer("\t", " ", "\n", " ", "\r", " ")
	for _, j := range rows {
		cells := []string{strconv.FormatInt(j.Key, 10)}
		for _, c := range columns {
			cells = append(cells, clean.Replace(query.Cell(columnValue(j, c))))
		}
		fmt.Fprintln(tw, strings.Join(cells, "\t"))
	}
	return tw.Flush()
}

func runJobs(ctx context.Context, fs *flag.FlagSet, args []string, stdout, stderr io.Writer) error {
	var sel selection
	db := fs.String("db", "", "job table (required)")
	sel.flags(fs, "only rows with this `status`; repeat, or give a comma list")
	fs.StringVar(&sel.backend, "backend", "", "the same as --backend-name (the older spelling)")
	columns := fs.String("columns", "", "comma list of `columns` to show, or all")
	asJSON := fs.Bool("json", false, "print a JSON array of objects instead of a table")
	if err := parse(fs, args); err != nil {
		return err
	}
	store, err := readDB(ctx, "jobs", *db)
	if err != nil {
		return err
	}
	defer store.Close()
	user, err := store.Columns(ctx)
	if err != nil {
		return fmt.Errorf("%s: %w", *db, err)
	}
	cols, err := chooseColumns(*columns, user)
	if err != nil {
		return err
	}
	rows, err := sel.pick(ctx, store, *db)
	if err != nil {
		return err
	}
	return printJobs(stdout, rows, cols, *asJSON)
}
