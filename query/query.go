// Package query runs DuckDB SQL over a job table, whatever its store
// (SQLite, CSV, Parquet/GeoParquet, DuckDB, ...), on a read-only snapshot
// in which the table is called jobs. worker query and worker jobs --where
// read tables with it, and a program that embeds the library (a dashboard,
// say) reads a table the same way, also while a run changes it.
//
// Open gives a DB; its Query and Select take one reading statement
// (SELECT, and DESCRIBE, SUMMARIZE, SHOW, EXPLAIN, PRAGMA, CALL) and refuse
// others with a *RefusedError. Whatever the SQL, it reads no file but the
// table's, writes none, attaches no database and installs or loads no
// extension: DuckDB's own configuration, locked, enforces that.
//
// The store drivers of the tables to read must be registered by importing
// them, as for database/sql: _ "github.com/openeo-batch/worker/driver/sqlite".
package query

import (
	"context"
	"database/sql"
	sqldriver "database/sql/driver"
	"encoding/csv"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"text/tabwriter"
	"time"
	"unicode/utf8"

	duckdbgo "github.com/duckdb/duckdb-go/v2"

	"github.com/openeo-batch/worker/driver"
	"github.com/openeo-batch/worker/internal/pin"
	"github.com/openeo-batch/worker/tableconv"
)

// DB is a read-only snapshot of one job table, as an in-memory DuckDB
// database whose one view or table, jobs, is the job table: user columns
// then manager columns (see driver.ManagerColumns), in table order.
// Parquet and DuckDB tables are read in place, from the version of the
// file that Open found: a run that replaces the file meanwhile (it renames
// a new one over it) changes nothing the DB reads, and its statements
// never see part of one version and part of another. SQLite and CSV
// tables are copied in when the DB is opened (a CSV table's latest
// changes, in its journal, included). Open again to see later changes.
// Geometries are WKT text in SQLite and CSV tables, and GEOMETRY in
// Parquet and DuckDB tables, where DuckDB's core ST_ functions work on
// them; Select and Write give a GEOMETRY value as WKT text (3D kept), not
// the WKB that DuckDB's database/sql driver hands over (rows of Query
// still have the WKB bytes).
// Statements without ORDER BY see the rows in table order (DuckDB's
// preserve_insertion_order, set on), so row_number() OVER () numbers them
// as the table does. A DB runs one statement at a time on its one
// connection: it is safe for use by several goroutines, which take turns,
// but the rows of a Query must be closed before the next statement, or
// that statement waits for ever.
//
// A table on a database server that runs SQL itself (PostgreSQL, see
// driver.SQLReader) is not copied: each statement runs there, in the
// server's SQL, in a read-only transaction, over a view called jobs.
type DB struct {
	db       *sql.DB
	location string
	escaped  []Escaped
	file     *pin.File // the Parquet or DuckDB file read, nil for a copy

	server  driver.Store // a store that is a driver.SQLReader, or nil
	mu      sync.Mutex
	pending []func() // the server transactions of earlier statements
}

// Escaped is a cell of a SQLite or CSV table that is not UTF-8 text (a
// Latin-1 file, say), which DuckDB cannot hold as text: the DB shows it
// with each byte that is not part of a UTF-8 character written as \xNN
// (two upper-case hex digits, as DuckDB writes BLOBs), "caf\xE9" for the
// Latin-1 "café". The table keeps the bytes; only the snapshot shows them
// escaped, so SQL compares such a cell by its escaped text.
type Escaped struct {
	Row    int    // from 1, in table order
	Column string // its name
}

// Open opens the existing job table at location (a path whose ending
// picks the store, or NAME://PATH: see driver.Lookup) as a DB. It never
// writes the table nor takes its writer's role, so it can run while a
// run works on the table. A missing file is a *tableconv.NoTableError
// (errors.Is(err, fs.ErrNotExist) holds); a table a store cannot read is
// an error naming the table, and where it applies the row and column
// (such as a cell a Parquet table cannot hold). Close the DB when done.
func Open(ctx context.Context, location string) (*DB, error) {
	if err := tableconv.CheckExists(location); err != nil {
		return nil, err
	}
	if d, _, err := driver.Lookup(location); err == nil && d.Exists != nil {
		store, err := driver.OpenReader(ctx, location)
		if err != nil {
			return nil, err
		}
		if _, ok := store.(driver.SQLReader); ok {
			return &DB{server: store, location: location}, nil
		}
		store.Close()
	}
	duck, escaped, file, err := openJobs(ctx, location)
	if err != nil {
		return nil, err
	}
	return &DB{db: duck, location: location, escaped: escaped, file: file}, nil
}

// Escaped returns the cells the DB shows escaped, in table order (see
// Escaped): a caller should say so, since the text differs from the
// table's bytes.
func (d *DB) Escaped() []Escaped { return d.escaped }

// Close releases the snapshot.
func (d *DB) Close() error {
	if d.server != nil {
		d.endPending()
		return d.server.Close()
	}
	err := d.db.Close()
	if rerr := d.file.Release(); err == nil {
		err = rerr
	}
	return err
}

// endPending ends the server transactions of earlier statements, whose
// rows are read by now: one statement at a time.
func (d *DB) endPending() {
	d.mu.Lock()
	pending := d.pending
	d.pending = nil
	d.mu.Unlock()
	for _, done := range pending {
		done()
	}
}

// serverQuery runs stmt on the server (see DB). Its refusals of a write
// (SQLSTATE 25006) and of several statements are *RefusedError.
func (d *DB) serverQuery(ctx context.Context, stmt string, args ...any) (*sql.Rows, error) {
	d.endPending()
	rows, done, err := d.server.(driver.SQLReader).ReadSQL(ctx, stmt, args...)
	if err != nil {
		var state interface{ SQLState() string }
		if errors.As(err, &state) {
			switch state.SQLState() {
			case "25006": // read_only_sql_transaction
				return nil, &RefusedError{What: "a statement that writes (" + err.Error() + ")"}
			case "42601":
				if strings.Contains(err.Error(), "multiple commands") {
					return nil, &RefusedError{Multiple: true}
				}
			}
		}
		return nil, err
	}
	d.mu.Lock()
	d.pending = append(d.pending, done)
	d.mu.Unlock()
	return rows, nil
}

// Location returns the table location the DB was opened on.
func (d *DB) Location() string { return d.location }

// Query runs one reading statement (see Check) with args for its ?
// placeholders ($1, $2, ... on PostgreSQL) and returns its rows, which the caller must close. A
// statement that is not reading, or several statements, are a
// *RefusedError; SQL DuckDB does not accept is an error with DuckDB's
// message, unprefixed.
func (d *DB) Query(ctx context.Context, stmt string, args ...any) (*sql.Rows, error) {
	if d.server != nil {
		return d.serverQuery(ctx, stmt, args...)
	}
	if err := d.Check(ctx, stmt); err != nil {
		return nil, err
	}
	rows, err := d.db.QueryContext(ctx, stmt, args...)
	return rows, d.named(err)
}

// named returns err with the name of the copy DuckDB reads (see package pin)
// replaced by the table's location in its text, which is what the user
// knows; errors.Is and errors.As see err as it was.
func (d *DB) named(err error) error {
	if d.file == nil {
		return err
	}
	return renamed(err, d.file.Name, d.location)
}

// renamed returns err with name replaced by location in its text.
func renamed(err error, name, location string) error {
	if err == nil || !strings.Contains(err.Error(), name) {
		return err
	}
	return &namedError{strings.ReplaceAll(err.Error(), name, location), err}
}

type namedError struct {
	msg string
	err error
}

func (e *namedError) Error() string { return e.msg }
func (e *namedError) Unwrap() error { return e.err }

// Result is the whole answer to a statement: the column names and the
// rows, each as long as Columns. Values are as DuckDB's database/sql
// driver gives them (nil, bool, int8 ... int64, uint8 ... uint64, float32,
// float64, string, time.Time, *big.Int for HUGEINT, []any for lists,
// map[string]any for structs, ...), except that text read as bytes is a
// string.
type Result struct {
	Columns []string
	Rows    [][]any
}

// Select runs one reading statement like Query and reads its whole
// answer; give the SQL a LIMIT for a table that may be large.
func (d *DB) Select(ctx context.Context, stmt string, args ...any) (*Result, error) {
	rows, err := d.Query(ctx, stmt, args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	cols, err := rows.Columns()
	if err != nil {
		return nil, err
	}
	res := &Result{Columns: cols, Rows: [][]any{}}
	err = scanRows(rows, len(cols), func(vals []any) {
		r := make([]any, len(vals))
		for i, v := range vals {
			r[i] = plain(v)
		}
		res.Rows = append(res.Rows, r)
	})
	if err != nil {
		return nil, d.named(err)
	}
	return res, nil
}

// scanRows calls f with the values of each row, GEOMETRY values as WKT
// (see geometryText); f must not keep vals.
func scanRows(rows *sql.Rows, n int, f func(vals []any)) error {
	types, err := rows.ColumnTypes()
	if err != nil {
		return err
	}
	var geometry []int // the GEOMETRY columns
	for i, t := range types {
		if isGeometry(t.DatabaseTypeName()) {
			geometry = append(geometry, i)
		}
	}
	vals := make([]any, n)
	ptrs := make([]any, n)
	for i := range vals {
		ptrs[i] = &vals[i]
	}
	for row := 1; rows.Next(); row++ {
		if err := rows.Scan(ptrs...); err != nil {
			return err
		}
		for _, i := range geometry {
			v, err := geometryText(vals[i])
			if err != nil {
				return fmt.Errorf("row %d, column %q: %w", row, types[i].Name(), err)
			}
			vals[i] = v
		}
		f(vals)
	}
	return rows.Err()
}

// isGeometry reports whether a DuckDB type name is GEOMETRY, with or
// without a CRS ("GEOMETRY('OGC:CRS84')", as GeoParquet columns have).
func isGeometry(typ string) bool {
	return typ == "GEOMETRY" || strings.HasPrefix(typ, "GEOMETRY(")
}

// geometryText turns a GEOMETRY value, which DuckDB's database/sql driver
// hands over as WKB (ISO, with Z and M where the geometry has them; or
// hex EWKB text, as PostGIS gives it), into
// WKT as DuckDB's ST_AsText writes it ("POLYGON Z ((...))" in 3D; see
// wkbToWKT). nil stays nil.
func geometryText(v any) (any, error) {
	var b []byte
	switch x := v.(type) {
	case nil:
		return nil, nil
	case []byte:
		b = x
	case string:
		// PostGIS gives a geometry as hex EWKB text.
		if h, err := hex.DecodeString(x); err == nil && len(h) > 0 && (h[0] == 0 || h[0] == 1) {
			b = h
		} else {
			b = []byte(x)
		}
	default:
		return nil, fmt.Errorf("a GEOMETRY value of Go type %T", v)
	}
	t, err := wkbToWKT(b)
	if err != nil {
		return nil, fmt.Errorf("GEOMETRY value that is no WKB: %w", err)
	}
	return t, nil
}

// plain turns bytes into a string, as JSON and Result show them.
func plain(v any) any {
	if b, ok := v.([]byte); ok {
		return string(b)
	}
	return v
}

// RefusedError is the error for SQL that Query and Select refuse before
// running it: a statement that would change the snapshot (it would report
// success while the table stays as it was), or several statements.
type RefusedError struct {
	// What the statement is, for messages: "an INSERT", "a DELETE", ...,
	// "a statement that is not a SELECT"; empty when Multiple.
	What string
	// Multiple is set when the SQL holds several statements.
	Multiple bool
}

func (e *RefusedError) Error() string {
	if e.Multiple {
		return "one statement at a time"
	}
	return "the query only reads the table, and this is " + e.What
}

// Check returns a *RefusedError for a statement that would change the
// snapshot (INSERT, UPDATE, DELETE, CREATE, ...): it would report success
// while the table stays as it was. Reading statements (SELECT and what
// DuckDB turns into one: DESCRIBE, SUMMARIZE, SHOW; EXPLAIN, PRAGMA, CALL)
// pass, one at a time. SQL DuckDB cannot prepare is an error with its
// message. Query and Select check first; Check is for a caller that wants
// to refuse a statement before it has the table to run it on.
//
// On a database server (see DB), Check passes every statement: the
// server's read-only transaction refuses one that writes when it runs.
func (d *DB) Check(ctx context.Context, stmt string) error {
	if d.server != nil {
		return nil
	}
	conn, err := d.db.Conn(ctx)
	if err != nil {
		return err
	}
	defer conn.Close()
	return conn.Raw(func(dc any) error {
		c, ok := dc.(*duckdbgo.Conn)
		if !ok {
			return fmt.Errorf("unexpected DuckDB connection %T", dc)
		}
		// Prepare, unlike PrepareContext, refuses several statements
		// instead of running all but the last.
		st, err := c.Prepare(stmt)
		if err != nil && strings.Contains(err.Error(), "multi-statement") {
			return &RefusedError{Multiple: true}
		}
		if err != nil {
			// DuckDB cannot bind a change of a view (the jobs of a
			// Parquet or DuckDB table): its words tell what it is.
			if what := changeKeyword(stmt); what != "" {
				return &RefusedError{What: what}
			}
			return err
		}
		defer st.Close()
		kind, err := st.(*duckdbgo.Stmt).StatementType()
		if err != nil {
			return err
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
		return &RefusedError{What: what}
	})
}

// changeKeyword tells from its words what a statement that DuckDB could
// not prepare is, when it is a change ("an INSERT", "a DELETE", ...), or
// "" otherwise: its first keyword, after comments and parentheses, or
// after WITH the first one outside the common table expressions'
// parentheses. Quoted text and names are skipped.
func changeKeyword(stmt string) string {
	what := map[string]string{"INSERT": "an INSERT", "UPDATE": "an UPDATE", "DELETE": "a DELETE",
		"TRUNCATE": "a DELETE", "MERGE": "a MERGE", "CREATE": "a CREATE", "DROP": "a DROP", "ALTER": "an ALTER",
		"COPY": "a COPY"}
	depth, with := 0, false
	for i := 0; i < len(stmt); {
		c := stmt[i]
		switch {
		case strings.HasPrefix(stmt[i:], "--"):
			if j := strings.IndexByte(stmt[i:], '\n'); j >= 0 {
				i += j + 1
			} else {
				i = len(stmt)
			}
		case strings.HasPrefix(stmt[i:], "/*"):
			if j := strings.Index(stmt[i+2:], "*/"); j >= 0 {
				i += j + 4
			} else {
				i = len(stmt)
			}
		case c == '\'' || c == '"':
			j := strings.IndexByte(stmt[i+1:], c)
			if j < 0 {
				return ""
			}
			i += j + 2
		case c == '(':
			depth++
			i++
		case c == ')':
			depth--
			i++
		case c == '_' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z':
			j := i
			for j < len(stmt) && (stmt[j] == '_' || stmt[j] >= 'a' && stmt[j] <= 'z' || stmt[j] >= 'A' && stmt[j] <= 'Z' || stmt[j] >= '0' && stmt[j] <= '9') {
				j++
			}
			word := strings.ToUpper(stmt[i:j])
			i = j
			if !with && word == "WITH" {
				with = true
				continue
			}
			if with && depth > 0 {
				continue
			}
			if with && what[word] == "" && word != "SELECT" && word != "FROM" && word != "VALUES" && word != "TABLE" {
				continue // the names of the expressions, AS, RECURSIVE, ...
			}
			return what[word]
		default:
			i++
		}
	}
	return ""
}

// openJobs opens an in-memory DuckDB database whose one view, jobs, is
// the table at location, read on a snapshot, and locks it down (see
// lockDown) so that the user's SQL reads nothing else and writes nothing.
func openJobs(ctx context.Context, location string) (*sql.DB, []Escaped, *pin.File, error) {
	duck, err := sql.Open("duckdb", "")
	if err != nil {
		return nil, nil, nil, err
	}
	duck.SetMaxOpenConns(1) // one in-memory database, one connection
	file, escaped, err := loadJobs(ctx, duck, location)
	if err == nil {
		var files []string
		if file != nil {
			files = []string{file.Name}
		}
		err = lockDown(ctx, duck, files)
	}
	if err != nil {
		duck.Close()
		file.Release()
		return nil, nil, nil, err
	}
	return duck, escaped, file, nil
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
		"SET preserve_insertion_order = true", // the default, which callers rely on
		"SET enable_external_access = false",
		"SET autoinstall_known_extensions = false",
		"SET autoload_known_extensions = false",
		"SET lock_configuration = true")
	for _, q := range qs {
		if _, err := duck.ExecContext(ctx, q); err != nil {
			return fmt.Errorf("lock down DuckDB: %s: %w", q, err)
		}
	}
	return nil
}

func sqlString(s string) string { return "'" + strings.ReplaceAll(s, "'", "''") + "'" }

// loadJobs makes the table available to DuckDB as jobs, and returns the
// file the jobs view reads when queried (nil when it is a copy), which
// the caller releases after DuckDB, and the cells copied escaped.
func loadJobs(ctx context.Context, duck *sql.DB, location string) (*pin.File, []Escaped, error) {
	_, path, _ := strings.Cut(location, "://")
	if path == "" {
		path = location
	}
	var stmts []string
	switch strings.ToLower(filepath.Ext(path)) {
	case ".parquet", ".geoparquet":
		stmts = []string{"CREATE VIEW jobs AS SELECT * FROM read_parquet(%s, hive_partitioning = false)"}
	case ".duckdb", ".ddb":
		stmts = []string{"ATTACH %s AS src (READ_ONLY)", "CREATE VIEW jobs AS SELECT * FROM src.jobs"}
	default:
		escaped, err := copyJobs(ctx, duck, location)
		return nil, escaped, err
	}
	file, err := pin.Pin(path)
	if err != nil {
		return nil, nil, fmt.Errorf("%s: %w", location, err)
	}
	for _, q := range stmts {
		if strings.Contains(q, "%s") {
			q = fmt.Sprintf(q, sqlString(file.Name))
		}
		if _, err := duck.ExecContext(ctx, q); err != nil {
			file.Release()
			return nil, nil, fmt.Errorf("%s: %w", location, renamed(err, file.Name, path))
		}
	}
	if err := addManagerColumns(ctx, duck); err != nil {
		file.Release()
		return nil, nil, fmt.Errorf("%s: %w", location, renamed(err, file.Name, path))
	}
	return file, nil, nil
}

// addManagerColumns gives the jobs view of a table another program wrote
// (pandas, DuckDB) the manager columns it lacks, as the store would read
// them before a run adopts the table: status not_started, attempts 0,
// download_pending false, the others NULL. The file is not changed.
func addManagerColumns(ctx context.Context, duck *sql.DB) error {
	rows, err := duck.QueryContext(ctx, "SELECT column_name FROM duckdb_columns() WHERE table_name = 'jobs'")
	if err != nil {
		return err
	}
	have := map[string]bool{}
	for rows.Next() {
		var c string
		if err := rows.Scan(&c); err != nil {
			rows.Close()
			return err
		}
		have[c] = true
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return err
	}
	var extra []string
	for _, c := range driver.ManagerColumns() {
		if have[c.Name] {
			continue
		}
		v := map[driver.Kind]string{driver.Text: "NULL::VARCHAR", driver.Integer: "NULL::BIGINT",
			driver.Real: "NULL::DOUBLE", driver.Bool: "NULL::BOOLEAN"}[c.Kind]
		switch c.Name {
		case driver.ColStatus:
			v = "'" + string(driver.NotStarted) + "'"
		case driver.ColAttempts:
			v = "0::BIGINT"
		case driver.ColDownloadPending:
			v = "false"
		}
		extra = append(extra, v+` AS "`+c.Name+`"`)
	}
	if len(extra) == 0 {
		return nil
	}
	for _, q := range []string{"ALTER VIEW jobs RENAME TO jobs_file",
		"CREATE VIEW jobs AS SELECT *, " + strings.Join(extra, ", ") + " FROM jobs_file"} {
		if _, err := duck.ExecContext(ctx, q); err != nil {
			return err
		}
	}
	return nil
}

// copyJobs loads a table that DuckDB cannot read in place (SQLite, CSV)
// through its store into an in-memory table jobs, text that is not UTF-8
// escaped (see Escaped), and returns the cells escaped.
func copyJobs(ctx context.Context, duck *sql.DB, location string) ([]Escaped, error) {
	t, err := tableconv.ReadStore(ctx, location)
	if err != nil {
		return nil, err
	}
	var escaped []Escaped
	for n, r := range t.Rows {
		for i, v := range r {
			if s, ok := v.(string); ok && !utf8.ValidString(s) {
				r[i] = escapeBytes(s) // DuckDB would show it as NULL
				escaped = append(escaped, Escaped{Row: n + 1, Column: t.Columns[i]})
			}
		}
	}
	var cols []string
	for i, c := range t.Columns {
		cols = append(cols, `"`+strings.ReplaceAll(c, `"`, `""`)+`" `+duckType(t, i))
	}
	if _, err := duck.ExecContext(ctx, "CREATE TABLE jobs ("+strings.Join(cols, ", ")+")"); err != nil {
		return nil, err
	}
	conn, err := duck.Conn(ctx)
	if err != nil {
		return nil, err
	}
	defer conn.Close()
	return escaped, conn.Raw(func(dc any) error {
		app, err := duckdbgo.NewAppenderFromConn(dc.(sqldriver.Conn), "", "jobs")
		if err != nil {
			return err
		}
		vals := make([]sqldriver.Value, len(t.Columns))
		for _, r := range t.Rows {
			for i, v := range r {
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

// escapeBytes writes each byte of s that is not part of a UTF-8
// character as \xNN.
func escapeBytes(s string) string {
	var b strings.Builder
	for i := 0; i < len(s); {
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size == 1 {
			fmt.Fprintf(&b, `\x%02X`, s[i])
		} else {
			b.WriteString(s[i : i+size])
		}
		i += size
	}
	return b.String()
}

// duckType picks a column type for a loaded table from its values. A
// column whose values have several types that no number type holds (a
// SQLite column with whole numbers and text, which SQLite allows) is
// VARCHAR, its other values turned into text as DuckDB casts them
// (2020, 2020.5, true).
func duckType(t *tableconv.Table, col int) string {
	typ := ""
	for _, r := range t.Rows {
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
			k = "VARCHAR"
		}
		if typ == "" || typ == k {
			typ = k
		} else if (typ == "BIGINT" || typ == "DOUBLE") && (k == "BIGINT" || k == "DOUBLE") {
			typ = "DOUBLE"
		} else {
			typ = "VARCHAR"
			break
		}
	}
	switch typ {
	case "":
		return "VARCHAR"
	case "VARCHAR":
		for _, r := range t.Rows {
			switch v := r[col].(type) {
			case nil, string:
			case float64:
				r[col] = strconv.FormatFloat(v, 'g', -1, 64)
				if !math.IsNaN(v) && !math.IsInf(v, 0) && !strings.ContainsAny(r[col].(string), ".e") {
					r[col] = r[col].(string) + ".0"
				}
			default:
				r[col] = Cell(v)
			}
		}
		return typ
	}
	if typ == "DOUBLE" {
		// An int64 in a DOUBLE column: make the appender get floats.
		for _, r := range t.Rows {
			if n, ok := r[col].(int64); ok {
				r[col] = float64(n)
			}
		}
	}
	return typ
}

// Cell is the text of a value of a Result or a table cell, as the table
// and CSV formats show it: "" for nil, RFC 3339 in UTC for a time, the
// bytes as text, a DECIMAL with the digits of its scale (DecimalText), an
// INTERVAL as ISO 8601 duration (IntervalText), lists, structs and MAPs
// as their JSON (see JSONValue), and fmt's %v for anything else (NaN,
// +Inf and -Inf for such floats).
func Cell(v any) string {
	switch x := v.(type) {
	case nil:
		return ""
	case string:
		return x
	case []byte:
		return string(x)
	case time.Time:
		return x.UTC().Format(time.RFC3339)
	case duckdbgo.Decimal:
		return DecimalText(x)
	case duckdbgo.Interval:
		return IntervalText(x)
	case duckdbgo.UUID:
		return x.String()
	case duckdbgo.Union:
		return Cell(x.Value)
	case []any, map[string]any, duckdbgo.OrderedMap, duckdbgo.Map:
		b, err := json.Marshal(JSONValue(x))
		if err != nil {
			return fmt.Sprint(v)
		}
		return string(b)
	}
	return fmt.Sprint(v)
}

// Format is how Write prints rows.
type Format string

// The formats Write knows.
const (
	// Table is an aligned text table with a header line; tabs and line
	// breaks in a cell become spaces.
	Table Format = "table"
	// CSV is RFC 4180 CSV with a header line, cells as Cell gives them.
	CSV Format = "csv"
	// JSON is an array of objects, one per row, keyed by column name in
	// the statement's order, indented by two spaces; values as JSONValue
	// gives them (DECIMAL as a number with its digits, NaN and ±Inf as
	// the strings "NaN", "Infinity" and "-Infinity").
	JSON Format = "json"
)

// ParseFormat returns the Format called s, or an error naming the ones
// there are.
func ParseFormat(s string) (Format, error) {
	switch f := Format(s); f {
	case Table, CSV, JSON:
		return f, nil
	}
	return "", fmt.Errorf("the format is table, csv or json, not %q", s)
}

// Write prints rows (all of them, without closing them) to w in format:
// an error of w or of reading the rows is returned, and so is an unknown
// format, before anything is written.
func Write(w io.Writer, rows *sql.Rows, format Format) error {
	if _, err := ParseFormat(string(format)); err != nil {
		return err
	}
	cols, err := rows.Columns()
	if err != nil {
		return err
	}
	types, err := rows.ColumnTypes()
	if err != nil {
		return err
	}
	typeNames := make([]string, len(types))
	for i, t := range types {
		typeNames[i] = t.DatabaseTypeName()
	}
	var tw *tabwriter.Writer
	var cw *csv.Writer
	var objs []Object
	switch format {
	case Table:
		tw = tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
		fmt.Fprintln(tw, strings.Join(cols, "\t"))
	case CSV:
		cw = csv.NewWriter(w)
		cw.Write(cols)
	case JSON:
		objs = []Object{}
	}
	err = scanRows(rows, len(cols), func(vals []any) {
		for i, v := range vals {
			vals[i] = typed(v, typeNames[i])
		}
		switch format {
		case Table:
			cells := make([]string, len(vals))
			for i, v := range vals {
				cells[i] = strings.NewReplacer("\t", " ", "\n", " ").Replace(Cell(v))
			}
			fmt.Fprintln(tw, strings.Join(cells, "\t"))
		case CSV:
			cells := make([]string, len(vals))
			for i, v := range vals {
				cells[i] = Cell(v)
			}
			cw.Write(cells)
		case JSON:
			o := Object{Keys: cols, Values: make([]any, len(vals))}
			for i, v := range vals {
				o.Values[i] = JSONValue(v)
			}
			objs = append(objs, o)
		}
	})
	if err != nil {
		return err
	}
	switch format {
	case Table:
		return tw.Flush()
	case CSV:
		cw.Flush()
		return cw.Error()
	}
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(objs)
}
