package main

import (
	"context"
	"database/sql"
	sqldriver "database/sql/driver"
	"encoding/csv"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"path/filepath"
	"strings"
	"text/tabwriter"
	"time"
	"unicode/utf8"

	duckdbgo "github.com/duckdb/duckdb-go/v2"
)

var queryCmd = command{
	name: "query",
	usage: `
Usage: worker query --db TABLE [--format table|csv|json] "SQL"

Runs DuckDB SQL over a job table, whatever its format; the table is called
jobs. It reads a snapshot and writes nothing, so it is safe while a run goes
on: Parquet and DuckDB tables are read in place, SQLite and CSV tables are
read through their store (a CSV table's latest changes included). Geometries
are WKT text (DuckDB's ST_ functions that need no extension work on
geometry columns of Parquet tables). The SQL sees the jobs table only: it
cannot read or write other files (COPY ... TO, read_csv), attach databases,
or install or load extensions. One reading statement at a time (SELECT,
DESCRIBE, SUMMARIZE, SHOW, EXPLAIN, PRAGMA): INSERT, UPDATE, DELETE, CREATE
and the like are refused (exit 2), since the table would not change.
A PostgreSQL table (postgres://...) is queried in PostgreSQL itself, with
its SQL, in a READ ONLY transaction that refuses any change.

Example:
  worker query --db jobs.db "select status, count(*) from jobs group by all"
  worker query --db jobs.parquet --format json "select id, cpu from jobs where status = 'error'"
`,
	run: runQuery,
}

func runQuery(ctx context.Context, fs *flag.FlagSet, args []string, stdout, stderr io.Writer) error {
	db := fs.String("db", "", "job table (required)")
	format := fs.String("format", "table", "output: table, csv or json")
	if err := fs.Parse(args); err != nil {
		if err == flag.ErrHelp {
			return err
		}
		return usageError{err.Error()}
	}
	if *db == "" || fs.NArg() != 1 {
		return usagef("query: want --db TABLE and one SQL statement")
	}
	if *format != "table" && *format != "csv" && *format != "json" {
		return usagef("query: --format is table, csv or json, not %q", *format)
	}
	if err := mustExist(*db); err != nil {
		return err
	}
	if served, err := queryServer(ctx, *db, fs.Arg(0), *format, stdout); served {
		return err
	}
	duck, err := openJobs(ctx, *db)
	if err != nil {
		return err
	}
	defer duck.Close()
	if err := readOnly(ctx, duck, fs.Arg(0)); err != nil {
		return err
	}
	rows, err := duck.QueryContext(ctx, fs.Arg(0))
	if err != nil {
		return fmt.Errorf("query: %w", err)
	}
	defer rows.Close()
	return printRows(stdout, rows, *format)
}

// readOnly refuses a statement that would change the snapshot (INSERT,
// UPDATE, DELETE, CREATE, ...): it would report success while the table
// stays as it was. Reading statements (SELECT and what DuckDB turns into
// one: DESCRIBE, SUMMARIZE, SHOW; EXPLAIN, PRAGMA, CALL) pass, one at a
// time.
func readOnly(ctx context.Context, duck *sql.DB, query string) error {
	conn, err := duck.Conn(ctx)
	if err != nil {
		return err
	}
	defer conn.Close()
	return conn.Raw(func(dc any) error {
		c, ok := dc.(*duckdbgo.Conn)
		if !ok {
			return fmt.Errorf("query: unexpected DuckDB connection %T", dc)
		}
		// Prepare, unlike PrepareContext, refuses several statements
		// instead of running all but the last.
		st, err := c.Prepare(query)
		if err != nil && strings.Contains(err.Error(), "multi-statement") {
			return usagef("query: one statement at a time")
		}
		if err != nil {
			return fmt.Errorf("query: %w", err)
		}
		defer st.Close()
		kind, err := st.(*duckdbgo.Stmt).StatementType()
		if err != nil {
			return fmt.Errorf("query: %w", err)
		}
		switch kind {
		case duckdbgo.STATEMENT_TYPE_SELECT, duckdbgo.STATEMENT_TYPE_EXPLAIN, duckdbgo.STATEMENT_TYPE_PRAGMA,
			duckdbgo.STATEMENT_TYPE_CALL, duckdbgo.STATEMENT_TYPE_RELATION:
			return nil
		}
		what := map[duckdbgo.StmtType]string{duckdbgo.STATEMENT_TYPE_INSERT: "an INSERT", duckdbgo.STATEMENT_TYPE_UPDATE: "an UPDATE",
			duckdbgo.STATEMENT_TYPE_DELETE: "a DELETE", duckdbgo.STATEMENT_TYPE_CREATE: "a CREATE", duckdbgo.STATEMENT_TYPE_DROP: "a DROP",
			duckdbgo.STATEMENT_TYPE_ALTER: "an ALTER"}[kind]
		if what == "" {
			what = "a statement that is not a SELECT"
		}
		return usagef("query: worker query only reads the table, and this is %s: "+
			"change rows with worker retry, cancel or init --append, or work on an export of the table", what)
	})
}

// openJobs opens an in-memory DuckDB database whose one view, jobs, is
// the table at location, read on a snapshot, and locks it down (see
// lockDown) so that the user's SQL (worker query, worker jobs --where)
// reads nothing else and writes nothing.
func openJobs(ctx context.Context, location string) (*sql.DB, error) {
	duck, err := sql.Open("duckdb", "")
	if err != nil {
		return nil, err
	}
	duck.SetMaxOpenConns(1) // one in-memory database, one connection
	files, err := loadJobs(ctx, duck, location)
	if err == nil {
		err = lockDown(ctx, duck, files)
	}
	if err != nil {
		duck.Close()
		return nil, err
	}
	return duck, nil
}

// lockDown closes DuckDB's doors to everything but the jobs table once it
// is loaded: the user's SQL reads no file but files (the table's own, which
// the jobs view reads at each query), writes none (COPY ... TO), attaches no
// database, installs or loads no extension, and cannot lift the guard, since
// the configuration is locked last.
func lockDown(ctx context.Context, duck *sql.DB, files []string) error {
	var qs []string
	if len(files) > 0 {
		quoted := make([]string, len(files))
		for i, f := range files {
			quoted[i] = sqlString(f)
		}
		qs = append(qs, "SET allowed_paths = ["+strings.Join(quoted, ", ")+"]")
	}
	qs = append(qs,
		"SET enable_external_access = false",
		"SET autoinstall_known_extensions = false",
		"SET autoload_known_extensions = false",
		"SET lock_configuration = true")
	for _, q := range qs {
		if _, err := duck.ExecContext(ctx, q); err != nil {
			return fmt.Errorf("query: %s: %w", q, err)
		}
	}
	return nil
}

func sqlString(s string) string { return "'" + strings.ReplaceAll(s, "'", "''") + "'" }

// loadJobs makes the table available to DuckDB as jobs, and returns the
// files the jobs view reads when queried (none when it is a copy).
func loadJobs(ctx context.Context, duck *sql.DB, location string) ([]string, error) {
	_, path, _ := strings.Cut(location, "://")
	if path == "" {
		path = location
	}
	switch strings.ToLower(filepath.Ext(path)) {
	case ".parquet", ".geoparquet":
		abs, err := filepath.Abs(path)
		if err != nil {
			return nil, err
		}
		_, err = duck.ExecContext(ctx, "CREATE VIEW jobs AS SELECT * FROM read_parquet("+sqlString(abs)+", hive_partitioning = false)")
		return []string{abs}, err
	case ".duckdb", ".ddb":
		if _, err := duck.ExecContext(ctx, "ATTACH "+sqlString(path)+" AS src (READ_ONLY)"); err != nil {
			return nil, fmt.Errorf("%s: %w", location, err)
		}
		_, err := duck.ExecContext(ctx, "CREATE VIEW jobs AS SELECT * FROM src.jobs")
		return nil, err
	}
	return nil, copyJobs(ctx, duck, location)
}

// copyJobs loads a table that DuckDB cannot read in place (SQLite, CSV)
// through its store into an in-memory table jobs.
func copyJobs(ctx context.Context, duck *sql.DB, location string) error {
	t, err := tableFromStore(ctx, location)
	if err != nil {
		return err
	}
	var cols []string
	for i, c := range t.columns {
		cols = append(cols, `"`+strings.ReplaceAll(c, `"`, `""`)+`" `+duckType(t, i))
	}
	if _, err := duck.ExecContext(ctx, "CREATE TABLE jobs ("+strings.Join(cols, ", ")+")"); err != nil {
		return err
	}
	conn, err := duck.Conn(ctx)
	if err != nil {
		return err
	}
	defer conn.Close()
	return conn.Raw(func(dc any) error {
		app, err := duckdbgo.NewAppenderFromConn(dc.(sqldriver.Conn), "", "jobs")
		if err != nil {
			return err
		}
		vals := make([]sqldriver.Value, len(t.columns))
		for n, r := range t.rows {
			for i, v := range r {
				if s, ok := v.(string); ok && !utf8.ValidString(s) {
					// DuckDB would show it as NULL.
					app.Close()
					return fmt.Errorf("%s: row %d, column %q: %.40q is not UTF-8 text, which DuckDB cannot read", location, n+1, t.columns[i], s)
				}
				vals[i] = v
			}
			if err := app.AppendRow(vals...); err != nil {
				app.Close()
				return err
			}
		}
		return app.Close()
	})
}

// duckType picks a column type for a loaded table from its values.
func duckType(t *table, col int) string {
	typ := ""
	for _, r := range t.rows {
		var k string
		switch r[col].(type) {
		case nil:
			continue
		case int64:
			k = "BIGINT"
		case float64:
			k = "DOUBLE"
		case bool:
			k = "BOOLEAN"
		default:
			return "VARCHAR"
		}
		if typ == "" || typ == k {
			typ = k
		} else if (typ == "BIGINT" || typ == "DOUBLE") && (k == "BIGINT" || k == "DOUBLE") {
			typ = "DOUBLE"
		} else {
			return "VARCHAR"
		}
	}
	if typ == "" {
		return "VARCHAR"
	}
	if typ == "DOUBLE" {
		// An int64 in a DOUBLE column: make the appender get floats.
		for _, r := range t.rows {
			if n, ok := r[col].(int64); ok {
				r[col] = float64(n)
			}
		}
	}
	return typ
}

func cell(v any) string {
	switch x := v.(type) {
	case nil:
		return ""
	case []byte:
		return string(x)
	case time.Time:
		return x.UTC().Format(time.RFC3339)
	}
	return fmt.Sprint(v)
}

// printRows prints a result as an aligned table, CSV or JSON (one object
// per row, in an array).
func printRows(w io.Writer, rows *sql.Rows, format string) error {
	cols, err := rows.Columns()
	if err != nil {
		return err
	}
	vals := make([]any, len(cols))
	ptrs := make([]any, len(cols))
	for i := range vals {
		ptrs[i] = &vals[i]
	}
	var tw *tabwriter.Writer
	var cw *csv.Writer
	var objs []map[string]any
	switch format {
	case "table":
		tw = tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
		fmt.Fprintln(tw, strings.Join(cols, "\t"))
	case "csv":
		cw = csv.NewWriter(w)
		cw.Write(cols)
	case "json":
		objs = []map[string]any{}
	}
	for rows.Next() {
		if err := rows.Scan(ptrs...); err != nil {
			return err
		}
		switch format {
		case "table":
			cells := make([]string, len(vals))
			for i, v := range vals {
				cells[i] = strings.NewReplacer("\t", " ", "\n", " ").Replace(cell(v))
			}
			fmt.Fprintln(tw, strings.Join(cells, "\t"))
		case "csv":
			cells := make([]string, len(vals))
			for i, v := range vals {
				cells[i] = cell(v)
			}
			cw.Write(cells)
		case "json":
			o := make(map[string]any, len(cols))
			for i, c := range cols {
				switch x := vals[i].(type) {
				case []byte:
					o[c] = string(x)
				default:
					o[c] = x
				}
			}
			objs = append(objs, o)
		}
	}
	if err := rows.Err(); err != nil {
		return err
	}
	switch format {
	case "table":
		return tw.Flush()
	case "csv":
		cw.Flush()
		return cw.Error()
	}
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(objs)
}
