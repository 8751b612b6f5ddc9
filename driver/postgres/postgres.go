// Package postgres stores the job table in a PostgreSQL database
// (github.com/jackc/pgx/v5), so that workers on several machines can share
// one campaign.
//
// A location is a PostgreSQL connection URL, postgres://user@host/db or
// postgresql://..., whose parts that are left out come from the usual PG*
// environment variables (PGHOST, PGUSER, PGPASSWORD, PGDATABASE, ...) as
// libpq takes them. The query parameter table names the campaign's table
// (default jobs), so that several campaigns share a database. A password
// in the URL is refused: it goes in PGPASSWORD or ~/.pgpass, since
// locations show in messages and process lists.
//
//	postgres://worker@db.example.org/campaigns?table=sentinel2_2024
//
// Beside the table T, the store keeps T_counts (the row counts per
// back-end and status, as additions kept by triggers, so that Counts reads
// a few rows however large the table) and T_workers (one row per running
// worker with its heartbeat: see Owner).
//
// The user's columns are real columns (bigint, double precision, boolean
// or text, from their values), followed by the manager's columns
// (driver.ManagerColumns) and the row key _key, so `psql -c 'select year,
// status from T'` works. Every change is one transaction: a killed worker
// leaves each change made or not.
//
// Claims take the first not_started row with FOR UPDATE SKIP LOCKED, so
// that concurrent claimers never wait for each other nor take one row
// twice; ClaimWithin checks its caps in the claim's transaction under a
// transaction-level advisory lock per back-end (see ClaimWithin).
package postgres

import (
	"cmp"
	"context"
	"database/sql"
	"fmt"
	"hash/fnv"
	"iter"
	"net/url"
	"slices"
	"strings"
	"sync"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/jackc/pgx/v5/stdlib"

	"github.com/openeo-batch/worker/driver"
	"github.com/openeo-batch/worker/driver/internal/sqlbuild"
)

func init() {
	for _, scheme := range []string{"postgres", "postgresql"} {
		driver.Register(driver.Driver{
			Name: scheme,
			Open: func(ctx context.Context, path string) (driver.Store, error) {
				return Open(ctx, scheme+"://"+path)
			},
			OpenReader: func(ctx context.Context, path string) (driver.Store, error) {
				return OpenReader(ctx, scheme+"://"+path)
			},
			Remove: func(path string) error {
				return Drop(context.Background(), scheme+"://"+path)
			},
			Exists: func(ctx context.Context, path string) (bool, error) {
				return Exists(ctx, scheme+"://"+path)
			},
		})
	}
}

// DefaultTable is the table a location without a table parameter names.
const DefaultTable = "jobs"

const keyColumn = "_key"

// Store is a job table in a PostgreSQL database.
type Store struct {
	pool  *pgxpool.Pool
	table string // unquoted
	name  string // how errors name the table: host/db table T, no password

	mu      sync.Mutex
	columns []string // user columns, loaded once the table exists
	closed  bool

	reader  bool            // opened by OpenReader: adopts no table
	foreign map[string]bool // for a reader of a table another program made: the columns it has
}

var (
	_ driver.Store      = (*Store)(nil)
	_ driver.CapClaimer = (*Store)(nil)
	_ driver.Replacer   = (*Store)(nil)
	_ driver.SQLReader  = (*Store)(nil)
)

// ParseLocation splits a location into the connection string pgx takes and
// the table name (the query parameter table, else DefaultTable).
func ParseLocation(location string) (conn, table string, err error) {
	u, err := url.Parse(location)
	if err != nil {
		return "", "", fmt.Errorf("postgres location: %w", err)
	}
	if u.Scheme != "postgres" && u.Scheme != "postgresql" {
		return "", "", fmt.Errorf("postgres location %q: want postgres:// or postgresql://", redact(u))
	}
	if _, has := u.User.Password(); has || u.Query().Has("password") {
		// It would show in messages, logs and every machine's process list.
		return "", "", fmt.Errorf("postgres location %q: give the password in PGPASSWORD or ~/.pgpass, not in the URL, which shows in messages and process lists", redact(u))
	}
	q := u.Query()
	table = q.Get("table")
	q.Del("table")
	u.RawQuery = q.Encode()
	if table == "" {
		table = DefaultTable
	}
	if len(table) > 50 {
		return "", "", fmt.Errorf("postgres location %q: table name %q longer than 50 bytes", redact(u), table)
	}
	return u.String(), table, nil
}

// redact is u without a password, in its user part or its query.
func redact(u *url.URL) string {
	c := *u
	if c.User != nil {
		c.User = url.User(c.User.Username())
	}
	q := c.Query()
	if q.Has("password") {
		q.Set("password", "REDACTED")
		c.RawQuery = q.Encode()
	}
	return c.String()
}

// Open connects to the database at location (see the package comment).
// The table need not exist yet: Init makes it.
func Open(ctx context.Context, location string) (*Store, error) {
	conn, table, err := ParseLocation(location)
	if err != nil {
		return nil, err
	}
	cfg, err := pgxpool.ParseConfig(conn)
	if err != nil {
		return nil, fmt.Errorf("postgres location: %w", err)
	}
	if cfg.MaxConns < 8 {
		cfg.MaxConns = 8
	}
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return nil, err
	}
	if err := pool.Ping(ctx); err != nil {
		pool.Close()
		return nil, fmt.Errorf("connect to %s:%d/%s: %w", cfg.ConnConfig.Host, cfg.ConnConfig.Port, cfg.ConnConfig.Database, err)
	}
	name := fmt.Sprintf("%s:%d/%s table %s", cfg.ConnConfig.Host, cfg.ConnConfig.Port, cfg.ConnConfig.Database, table)
	return &Store{pool: pool, table: table, name: name}, nil
}

// OpenReader is Open for a store that only reads (status, query, jobs,
// export, serve): a table another program made is read as adoption would
// make it (see adopt) without adopting it, so that reading changes
// nothing: the manager columns it lacks read as their defaults, its rows
// are numbered in their physical order (or by its own _key column).
func OpenReader(ctx context.Context, location string) (*Store, error) {
	s, err := Open(ctx, location)
	if err != nil {
		return nil, err
	}
	s.reader = true
	return s, nil
}

// Drop removes the table at location with the store's tables beside it.
// A table that does not exist is no error.
func Drop(ctx context.Context, location string) error {
	s, err := Open(ctx, location)
	if err != nil {
		return err
	}
	defer s.Close()
	_, err = s.pool.Exec(ctx, "DROP TABLE IF EXISTS "+s.q("")+", "+s.q("_counts")+", "+s.q("_workers")+" CASCADE; DROP FUNCTION IF EXISTS "+s.q("_count_changes")+"() CASCADE")
	return err
}

// Exists reports whether the table at location exists.
func Exists(ctx context.Context, location string) (bool, error) {
	s, err := Open(ctx, location)
	if err != nil {
		return false, err
	}
	defer s.Close()
	var ok bool
	err = s.pool.QueryRow(ctx, "SELECT to_regclass($1) IS NOT NULL", s.q("")).Scan(&ok)
	return ok, s.wrap(err)
}

// Pool returns the store's connection pool, for the commands that run SQL
// of their own (query).
func (s *Store) Pool() *pgxpool.Pool { return s.pool }

// Table returns the job table's name.
func (s *Store) Table() string { return s.table }

// Close closes the connection pool.
func (s *Store) Close() error {
	s.mu.Lock()
	s.closed = true
	s.mu.Unlock()
	s.pool.Close()
	return nil
}

// q is the quoted name of the job table with suffix ("" for the table,
// "_counts", "_workers").
func (s *Store) q(suffix string) string { return sqlbuild.Quote(s.table + suffix) }

// lockKey is the advisory lock key of name within this table.
func (s *Store) lockKey(name string) int64 {
	h := fnv.New64a()
	h.Write([]byte(s.table))
	h.Write([]byte{0})
	h.Write([]byte(name))
	return int64(h.Sum64())
}

func (s *Store) wrap(err error) error {
	if err == nil {
		return nil
	}
	return fmt.Errorf("%s: %w", s.name, err)
}

// userColumns returns the user's columns, reading the catalog once.
func (s *Store) userColumns(ctx context.Context) ([]string, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return nil, driver.ErrClosed
	}
	if s.columns != nil {
		return s.columns, nil
	}
	rows, err := s.pool.Query(ctx, `SELECT a.attname FROM pg_attribute a
		WHERE a.attrelid = to_regclass($1) AND a.attnum > 0 AND NOT a.attisdropped ORDER BY a.attnum`, s.q(""))
	if err != nil {
		return nil, s.wrap(err)
	}
	names, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return nil, s.wrap(err)
	}
	if len(names) == 0 {
		return nil, fmt.Errorf("%s: %w", s.name, driver.ErrNoTable)
	}
	have := map[string]bool{}
	user := []string{}
	for _, n := range names {
		have[n] = true
		if _, isManager := driver.ManagerColumn(n); !isManager && n != keyColumn {
			user = append(user, n)
		}
	}
	var counts bool
	if err := s.pool.QueryRow(ctx, "SELECT to_regclass($1) IS NOT NULL", s.q("_counts")).Scan(&counts); err != nil {
		return nil, s.wrap(err)
	}
	switch {
	case have[keyColumn] && counts:
	case s.reader:
		s.foreign = have
	default:
		if err := s.adopt(ctx); err != nil {
			return nil, err
		}
	}
	s.columns = user
	return user, nil
}

// adopt makes a table another program wrote (psql, pandas' to_sql: the
// user's columns, maybe some of the Python client's) into a job table, as
// Init would have made it, in one transaction: the manager's columns it
// lacks, with their defaults; those it has, converted to their types
// (an empty status is not_started); the row key, in the rows' physical
// order; the indexes, counts and workers table. A value no manager column
// can hold is an error naming the table, row and column, and then nothing
// changes.
func (s *Store) adopt(ctx context.Context) error {
	tx, err := s.pool.Begin(ctx)
	if err != nil {
		return s.wrap(err)
	}
	defer tx.Rollback(context.WithoutCancel(ctx))
	t := s.q("")
	if _, err := tx.Exec(ctx, "LOCK TABLE "+t+" IN ACCESS EXCLUSIVE MODE"); err != nil {
		return s.wrap(err)
	}
	var done bool // another process adopted it while this one waited
	if err := tx.QueryRow(ctx, "SELECT to_regclass($1) IS NOT NULL", s.q("_counts")).Scan(&done); err != nil || done {
		return s.wrap(err)
	}
	rows, err := tx.Query(ctx, `SELECT attname FROM pg_attribute WHERE attrelid = to_regclass($1) AND attnum > 0 AND NOT attisdropped ORDER BY attnum`, t)
	if err != nil {
		return s.wrap(err)
	}
	names, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return s.wrap(err)
	}
	have := map[string]bool{}
	var present []string
	for _, n := range names {
		have[n] = true
		if _, ok := driver.ManagerColumn(n); ok {
			present = append(present, n)
		}
	}
	if !have[keyColumn] {
		if _, err := tx.Exec(ctx, "ALTER TABLE "+t+" ADD COLUMN "+keyColumn+" bigint GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY"); err != nil {
			return s.wrap(err)
		}
	}
	// Every value of the manager columns it has, read as the rows will be.
	if len(present) > 0 {
		rows, err := tx.Query(ctx, "SELECT _key, "+textList(present)+" FROM "+t+" ORDER BY _key")
		if err != nil {
			return s.wrap(err)
		}
		for rows.Next() {
			vals, err := rows.Values()
			if err != nil {
				rows.Close()
				return s.wrap(err)
			}
			for i, c := range present {
				if _, err := driver.Normalize(c, userValue(vals[i+1])); err != nil {
					rows.Close()
					return fmt.Errorf("%s: row %d, %w", s.name, vals[0], err)
				}
			}
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return s.wrap(err)
		}
	}
	for _, c := range driver.ManagerColumns() {
		q := sqlbuild.Quote(c.Name)
		if !have[c.Name] {
			if _, err := tx.Exec(ctx, "ALTER TABLE "+t+" ADD COLUMN "+q+" "+sqlType(c)); err != nil {
				return s.wrap(err)
			}
			continue
		}
		typ, _, _ := strings.Cut(sqlType(c), " ")
		if typ == "double" {
			typ = "double precision"
		}
		stmts := []string{
			"ALTER TABLE " + t + " ALTER COLUMN " + q + " TYPE " + typ + " USING " + castExpr(c),
		}
		switch c.Name {
		case driver.ColStatus:
			stmts = append(stmts, "UPDATE "+t+" SET status = 'not_started' WHERE status IS NULL",
				"ALTER TABLE "+t+" ALTER COLUMN status SET DEFAULT 'not_started', ALTER COLUMN status SET NOT NULL, ADD CHECK ("+statusCheck()+")")
		case driver.ColAttempts:
			stmts = append(stmts, "UPDATE "+t+" SET attempts = 0 WHERE attempts IS NULL",
				"ALTER TABLE "+t+" ALTER COLUMN attempts SET DEFAULT 0, ALTER COLUMN attempts SET NOT NULL")
		case driver.ColDownloadPending:
			stmts = append(stmts, "UPDATE "+t+" SET download_pending = false WHERE download_pending IS NULL",
				"ALTER TABLE "+t+" ALTER COLUMN download_pending SET DEFAULT false, ALTER COLUMN download_pending SET NOT NULL")
		}
		for _, st := range stmts {
			if _, err := tx.Exec(ctx, st); err != nil {
				return s.wrap(fmt.Errorf("make a job table of it: %w", err))
			}
		}
	}
	for _, q := range s.schemaDDL() {
		if _, err := tx.Exec(ctx, q); err != nil {
			return s.wrap(fmt.Errorf("make a job table of it: %w", err))
		}
	}
	return s.wrap(tx.Commit(ctx))
}

// textList is the columns as text, for reading values of any type.
func textList(names []string) string {
	parts := make([]string, len(names))
	for i, n := range names {
		parts[i] = sqlbuild.Quote(n) + "::text"
	}
	return strings.Join(parts, ", ")
}

func statusCheck() string {
	var known []string
	for _, st := range driver.Statuses() {
		known = append(known, "'"+string(st)+"'")
	}
	return "status IN (" + strings.Join(known, ", ") + ")"
}

// castExpr converts the value of manager column c of a table another
// program made to c's type, through text, as Normalize reads it: empty
// text is NULL (the defaults of status, attempts and download_pending are left
// to the caller).
func castExpr(c driver.Column) string {
	using := "nullif(trim(" + sqlbuild.Quote(c.Name) + "::text), '')"
	switch c.Kind {
	case driver.Integer:
		using = using + "::numeric::bigint"
	case driver.Real:
		using = using + "::double precision"
	case driver.Bool:
		using = "CASE lower(" + using + ") WHEN '1' THEN true WHEN 't' THEN true WHEN 'true' THEN true WHEN 'yes' THEN true WHEN '0' THEN false WHEN 'f' THEN false WHEN 'false' THEN false WHEN 'no' THEN false END"
	}
	return using
}

// foreignSelect is the SELECT a reader reads a table another program made
// with (see OpenReader): the row key, the user's columns, the manager's
// as adoption would make them, in table order.
func (s *Store) foreignSelect(user []string) string {
	cols := []string{"row_number() OVER (ORDER BY ctid) AS _key"}
	order := "ctid"
	if s.foreign[keyColumn] {
		cols[0], order = keyColumn, keyColumn
	}
	for _, c := range user {
		cols = append(cols, sqlbuild.Quote(c))
	}
	for _, c := range driver.ManagerColumns() {
		typ, _, _ := strings.Cut(sqlType(c), " ")
		if typ == "double" {
			typ = "double precision"
		}
		v := "NULL::" + typ
		if s.foreign[c.Name] {
			v = castExpr(c)
		}
		switch c.Name {
		case driver.ColStatus:
			v = "coalesce(" + v + ", 'not_started')"
		case driver.ColAttempts:
			v = "coalesce(" + v + ", 0)"
		case driver.ColDownloadPending:
			v = "coalesce(" + v + ", false)"
		}
		cols = append(cols, v+" AS "+sqlbuild.Quote(c.Name))
	}
	return "SELECT " + strings.Join(cols, ", ") + " FROM " + s.q("") + " ORDER BY " + order
}

// foreignRows reads every row of a table another program made, for a
// reader, and returns those f selects.
func (s *Store) foreignRows(ctx context.Context, user []string, f driver.Filter) ([]driver.Job, error) {
	rows, err := s.pool.Query(ctx, s.foreignSelect(user))
	if err != nil {
		return nil, s.wrap(err)
	}
	jobs, err := s.collect(rows, user)
	if err != nil {
		return nil, err
	}
	return f.Apply(jobs), nil
}

// Columns returns the user's column names in table order.
func (s *Store) Columns(ctx context.Context) ([]string, error) {
	cols, err := s.userColumns(ctx)
	return slices.Clone(cols), err
}

func managerNames() []string {
	var names []string
	for _, c := range driver.ManagerColumns() {
		names = append(names, c.Name)
	}
	return names
}

func sqlType(c driver.Column) string {
	switch c.Name {
	case driver.ColStatus:
		return "text NOT NULL DEFAULT 'not_started' CHECK (" + statusCheck() + ")"
	case driver.ColAttempts:
		return "bigint NOT NULL DEFAULT 0"
	case driver.ColDownloadPending:
		return "boolean NOT NULL DEFAULT false"
	}
	switch c.Kind {
	case driver.Integer:
		return "bigint"
	case driver.Real:
		return "double precision"
	case driver.Bool:
		return "boolean"
	}
	return "text"
}

// columnType picks the SQL type of a user column from its values: bigint
// when all are whole numbers, double precision when all are numbers (a
// whole number that a double cannot hold exactly makes it text), boolean
// when all are, else text, in which numbers are written as Go formats
// them.
func columnType(vals func(yield func(any) bool)) string {
	ints, floats, bools, strs := 0, 0, 0, 0
	exact := true
	for v := range vals {
		switch x := v.(type) {
		case nil:
		case int64:
			ints++
			if x > 1<<53 || x < -(1<<53) {
				exact = false
			}
		case int:
			ints++
		case float64:
			floats++
		case bool:
			bools++
		default:
			strs++
		}
	}
	switch {
	case strs > 0, bools > 0 && ints+floats > 0:
		return "text"
	case bools > 0:
		return "boolean"
	case floats > 0 && (ints == 0 || exact):
		return "double precision"
	case floats > 0:
		return "text"
	case ints > 0:
		return "bigint"
	}
	return "text"
}

func convertTo(typ string, v any) any {
	if v == nil {
		return nil
	}
	switch typ {
	case "double precision":
		switch x := v.(type) {
		case int64:
			return float64(x)
		case int:
			return float64(x)
		}
	case "bigint":
		if x, ok := v.(int); ok {
			return int64(x)
		}
	case "text":
		if s, ok := v.(string); ok {
			return s
		}
		return fmt.Sprint(v)
	}
	return v
}

// prepared is the rows of Init or Replace, ready for COPY: the user's
// columns with their SQL types, then the manager's, normalized.
type prepared struct {
	user, types []string
	all         []string // user, then manager columns
	data        [][]any
}

// prepare reads rows (their values named by columns), checks them and
// picks the user's column types from their values; fixed gives the types
// of columns that exist already, to which values are converted.
func prepare(columns []string, rows iter.Seq2[[]any, error], fixed map[string]string) (*prepared, error) {
	user, err := driver.SplitColumns(columns, keyColumn)
	if err != nil {
		return nil, err
	}
	pos := map[string]int{}
	for i, c := range columns {
		pos[c] = i
	}
	p := &prepared{user: user, all: append(slices.Clone(user), managerNames()...)}
	rowNum := 0
	for row, err := range rows {
		rowNum++
		if err != nil {
			return nil, err
		}
		if len(row) != len(columns) {
			return nil, fmt.Errorf("row %d: %d values for %d columns", rowNum, len(row), len(columns))
		}
		out := make([]any, len(p.all))
		for i, c := range user {
			out[i] = row[pos[c]]
		}
		for i, c := range driver.ManagerColumns() {
			var v any
			if at, ok := pos[c.Name]; ok {
				v = row[at]
			}
			if v, err = driver.Normalize(c.Name, v); err != nil {
				return nil, fmt.Errorf("row %d, %w", rowNum, err)
			}
			if v == nil && c.Name == driver.ColAttempts {
				v = int64(0)
			}
			if v == nil && c.Name == driver.ColDownloadPending {
				v = false
			}
			out[len(user)+i] = v
		}
		p.data = append(p.data, out)
	}
	p.types = make([]string, len(user))
	for i, c := range user {
		typ, ok := fixed[c]
		if !ok {
			typ = columnType(func(yield func(any) bool) {
				for _, r := range p.data {
					if !yield(r[i]) {
						return
					}
				}
			})
		}
		p.types[i] = typ
		for _, r := range p.data {
			r[i] = convertTo(typ, r[i])
		}
	}
	return p, nil
}

// Init creates the table, its counts and indexes, and loads the rows with
// COPY, all in one transaction: a bad row or a kill leaves no table. The
// rows are read once to pick the user's column types, so they are held in
// memory until the load.
func (s *Store) Init(ctx context.Context, columns []string, rows iter.Seq2[[]any, error]) error {
	p, err := prepare(columns, rows, nil)
	if err != nil {
		return err
	}
	var ddl []string
	for i, c := range p.user {
		ddl = append(ddl, sqlbuild.Quote(c)+" "+p.types[i])
	}
	for _, c := range driver.ManagerColumns() {
		ddl = append(ddl, sqlbuild.Quote(c.Name)+" "+sqlType(c))
	}
	ddl = append(ddl, keyColumn+" bigint GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY")

	tx, err := s.pool.Begin(ctx)
	if err != nil {
		return s.wrap(err)
	}
	defer tx.Rollback(context.WithoutCancel(ctx))
	// One Init at a time per table name, so that a second one finds the
	// first's table and says so.
	if _, err := tx.Exec(ctx, "SELECT pg_advisory_xact_lock($1)", s.lockKey("init")); err != nil {
		return s.wrap(err)
	}
	var exists bool
	if err := tx.QueryRow(ctx, "SELECT to_regclass($1) IS NOT NULL", s.q("")).Scan(&exists); err != nil {
		return s.wrap(err)
	}
	if exists {
		return fmt.Errorf("%s: %w", s.name, driver.ErrExists)
	}
	if _, err := tx.Exec(ctx, "CREATE TABLE "+s.q("")+" ("+strings.Join(ddl, ", ")+")"); err != nil {
		return s.wrap(err)
	}
	if err := s.load(ctx, tx, p); err != nil {
		return err
	}
	for _, q := range s.schemaDDL() {
		if _, err := tx.Exec(ctx, q); err != nil {
			return s.wrap(err)
		}
	}
	if err := tx.Commit(ctx); err != nil {
		return s.wrap(err)
	}
	s.mu.Lock()
	s.columns = nil
	s.mu.Unlock()
	return nil
}

// load copies p's rows into the table (COPY: one stream, not a statement
// per row).
func (s *Store) load(ctx context.Context, tx pgx.Tx, p *prepared) error {
	n, err := tx.CopyFrom(ctx, pgx.Identifier{s.table}, p.all, pgx.CopyFromRows(p.data))
	if err != nil {
		return s.wrap(fmt.Errorf("load rows: %w", err))
	}
	if int(n) != len(p.data) {
		return s.wrap(fmt.Errorf("loaded %d rows of %d", n, len(p.data)))
	}
	return nil
}

// Replace makes the table hold rows (named by columns, as Init takes
// them) instead of its rows, in one transaction that locks the table
// against every other reader and writer meanwhile: afterwards it holds
// all the new rows, numbered from 1 in their order, or, after an error or
// a kill, all the old ones. Columns it lacks are added (with a type from
// their values); values of the columns it has are converted to their
// types. Commands that rewrite a table (retry, init --append) use it
// where a file store writes a new file and renames it.
func (s *Store) Replace(ctx context.Context, columns []string, rows iter.Seq2[[]any, error]) error {
	if _, err := s.userColumns(ctx); err != nil {
		return err
	}
	tx, err := s.pool.Begin(ctx)
	if err != nil {
		return s.wrap(err)
	}
	defer tx.Rollback(context.WithoutCancel(ctx))
	if _, err := tx.Exec(ctx, "LOCK TABLE "+s.q("")+" IN ACCESS EXCLUSIVE MODE"); err != nil {
		return s.wrap(err)
	}
	typeRows, err := tx.Query(ctx, `SELECT attname, format_type(atttypid, atttypmod) FROM pg_attribute
		WHERE attrelid = to_regclass($1) AND attnum > 0 AND NOT attisdropped`, s.q(""))
	if err != nil {
		return s.wrap(err)
	}
	fixed := map[string]string{}
	for typeRows.Next() {
		var name, typ string
		if err := typeRows.Scan(&name, &typ); err != nil {
			typeRows.Close()
			return s.wrap(err)
		}
		fixed[name] = typ
	}
	typeRows.Close()
	if err := typeRows.Err(); err != nil {
		return s.wrap(err)
	}
	p, err := prepare(columns, rows, fixed)
	if err != nil {
		return err
	}
	for i, c := range p.user {
		if _, ok := fixed[c]; !ok {
			if _, err := tx.Exec(ctx, "ALTER TABLE "+s.q("")+" ADD COLUMN "+sqlbuild.Quote(c)+" "+p.types[i]); err != nil {
				return s.wrap(err)
			}
		}
	}
	for _, q := range []string{"DELETE FROM " + s.q(""), "ALTER TABLE " + s.q("") + " ALTER COLUMN _key RESTART WITH 1"} {
		if _, err := tx.Exec(ctx, q); err != nil {
			return s.wrap(err)
		}
	}
	if err := s.load(ctx, tx, p); err != nil {
		return err
	}
	if err := tx.Commit(ctx); err != nil {
		return s.wrap(err)
	}
	s.mu.Lock()
	s.columns = nil
	s.mu.Unlock()
	return nil
}

// schemaDDL makes what the job table needs beside its rows: the indexes
// claims and selections use, the counts table (filled from the rows, then
// kept by statement-level triggers that add the changes of each
// statement: no row is a hot spot that concurrent writers wait for), and
// the workers table.
func (s *Store) schemaDDL() []string {
	t, counts, fn := s.q(""), s.q("_counts"), s.q("_count_changes")
	idx := func(suffix string) string { return s.q(suffix) }
	return []string{
		"CREATE INDEX " + idx("_claim") + " ON " + t + " (_key) WHERE status = 'not_started'",
		"CREATE INDEX " + idx("_status") + " ON " + t + " (status, _key)",
		"CREATE INDEX " + idx("_backend") + " ON " + t + " (backend_name, status)",
		"CREATE INDEX " + idx("_pending") + " ON " + t + " (_key) WHERE download_pending",
		"CREATE INDEX " + idx("_worker") + " ON " + t + " (worker_id) WHERE worker_id IS NOT NULL",
		"CREATE TABLE " + counts + " (backend_name text NOT NULL, status text NOT NULL, n bigint NOT NULL)",
		"INSERT INTO " + counts + " SELECT coalesce(backend_name, ''), status, count(*) FROM " + t + " GROUP BY 1, 2",
		`CREATE FUNCTION ` + fn + `() RETURNS trigger LANGUAGE plpgsql AS $$
		BEGIN
			IF TG_OP = 'INSERT' THEN
				INSERT INTO ` + counts + ` SELECT coalesce(backend_name, ''), status, count(*) FROM new_rows GROUP BY 1, 2;
			ELSIF TG_OP = 'DELETE' THEN
				INSERT INTO ` + counts + ` SELECT coalesce(backend_name, ''), status, -count(*) FROM old_rows GROUP BY 1, 2;
			ELSE
				INSERT INTO ` + counts + ` SELECT b, st, sum(d) FROM (
					SELECT coalesce(backend_name, '') AS b, status AS st, -1 AS d FROM old_rows
					UNION ALL SELECT coalesce(backend_name, ''), status, 1 FROM new_rows) c
				GROUP BY 1, 2 HAVING sum(d) <> 0;
			END IF;
			RETURN NULL;
		END $$`,
		"CREATE TRIGGER count_insert AFTER INSERT ON " + t + " REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION " + fn + "()",
		"CREATE TRIGGER count_delete AFTER DELETE ON " + t + " REFERENCING OLD TABLE AS old_rows FOR EACH STATEMENT EXECUTE FUNCTION " + fn + "()",
		"CREATE TRIGGER count_update AFTER UPDATE ON " + t + " REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION " + fn + "()",
		"ANALYZE " + t, // the planner knows the rows from the start, not after autovacuum's first visit
		"CREATE TABLE IF NOT EXISTS " + s.q("_workers") + ` (worker_id text PRIMARY KEY, host text, pid bigint,
			started_at timestamptz NOT NULL DEFAULT now(), heartbeat_at timestamptz NOT NULL DEFAULT now())`,
	}
}

// compactAt is the number of rows of the counts table above which Counts
// sums them into one per back-end and status.
const compactAt = 256

// Counts returns the number of rows per back-end and status: the sums of
// the counts table, which it compacts when it has grown.
func (s *Store) Counts(ctx context.Context) ([]driver.Count, error) {
	user, err := s.userColumns(ctx)
	if err != nil {
		return nil, err
	}
	if s.foreign != nil {
		jobs, err := s.foreignRows(ctx, user, driver.Filter{})
		if err != nil {
			return nil, err
		}
		return driver.CountJobs(jobs), nil
	}
	rows, err := s.pool.Query(ctx, "SELECT backend_name, status, sum(n), count(*) FROM "+s.q("_counts")+" GROUP BY 1, 2 ORDER BY 1, 2")
	if err != nil {
		return nil, s.wrap(err)
	}
	var out []driver.Count
	raw := 0
	for rows.Next() {
		var c driver.Count
		var n, parts int64
		var st string
		if err := rows.Scan(&c.Backend, &st, &n, &parts); err != nil {
			rows.Close()
			return nil, s.wrap(err)
		}
		raw += int(parts)
		c.Status, c.N = driver.Status(st), int(n)
		if c.N > 0 {
			out = append(out, c)
		}
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return nil, s.wrap(err)
	}
	if raw > compactAt {
		// One statement: the rows it deletes are those it sums; additions
		// committed meanwhile stay as they are. It is housekeeping: a
		// reader whose role may not write still gets its counts.
		s.pool.Exec(ctx, "WITH d AS (DELETE FROM "+s.q("_counts")+" RETURNING *) INSERT INTO "+s.q("_counts")+
			" SELECT backend_name, status, sum(n) FROM d GROUP BY 1, 2 HAVING sum(n) <> 0")
	}
	return out, nil
}

// Select returns the rows matching f in table order.
func (s *Store) Select(ctx context.Context, f driver.Filter) ([]driver.Job, error) {
	user, err := s.userColumns(ctx)
	if err != nil {
		return nil, err
	}
	if s.foreign != nil {
		return s.foreignRows(ctx, user, f)
	}
	conds := []string{"true"}
	var args []any
	switch len(f.Statuses) {
	case 0:
	case 1: // = lets the planner read the (status, _key) index in order
		args = append(args, string(f.Statuses[0]))
		conds = append(conds, fmt.Sprintf("status = $%d", len(args)))
	default:
		args = append(args, statusStrings(f.Statuses))
		conds = append(conds, fmt.Sprintf("status = ANY($%d)", len(args)))
	}
	if f.Backend != "" {
		args = append(args, f.Backend)
		conds = append(conds, fmt.Sprintf("backend_name = $%d", len(args)))
	}
	if f.DownloadPending {
		conds = append(conds, "download_pending")
	}
	if f.After > 0 {
		args = append(args, f.After)
		conds = append(conds, fmt.Sprintf("_key > $%d", len(args)))
	}
	tail := "WHERE " + strings.Join(conds, " AND ") + " ORDER BY _key"
	if f.Limit > 0 {
		tail += fmt.Sprintf(" LIMIT %d", f.Limit)
	}
	return s.query(ctx, s.pool, tail, args...)
}

func statusStrings(sts []driver.Status) []string {
	out := make([]string, len(sts))
	for i, st := range sts {
		out[i] = string(st)
	}
	return out
}

type querier interface {
	Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error)
}

// selectList is the column list of a full row: _key, the user's columns,
// the manager's.
func (s *Store) selectList(user []string) string {
	return "_key, " + sqlbuild.JoinQuoted(append(slices.Clone(user), managerNames()...))
}

// query selects full rows of the table with the given WHERE/ORDER tail.
func (s *Store) query(ctx context.Context, db querier, tail string, args ...any) ([]driver.Job, error) {
	user, err := s.userColumns(ctx)
	if err != nil {
		return nil, err
	}
	rows, err := db.Query(ctx, "SELECT "+s.selectList(user)+" FROM "+s.q("")+" "+tail, args...)
	if err != nil {
		return nil, s.wrap(err)
	}
	return s.collect(rows, user)
}

func (s *Store) collect(rows pgx.Rows, user []string) ([]driver.Job, error) {
	defer rows.Close()
	manager := managerNames()
	var jobs []driver.Job
	for rows.Next() {
		vals, err := rows.Values()
		if err != nil {
			return nil, s.wrap(err)
		}
		key, _ := vals[0].(int64)
		j := driver.Job{Key: key, Data: make(map[string]any, len(user))}
		for i, c := range user {
			j.Data[c] = userValue(vals[i+1])
		}
		for i, c := range manager {
			v, err := driver.Normalize(c, userValue(vals[len(user)+i+1]))
			if err != nil {
				return nil, fmt.Errorf("%s: row %d, %w", s.name, j.Key, err)
			}
			j.Assign(c, v)
		}
		jobs = append(jobs, j)
	}
	return jobs, s.wrap(rows.Err())
}

// userValue turns a value pgx read into one of the table's value types:
// string, int64, float64, bool or nil; other types (a numeric or a date
// in a column someone changed by hand) become their text.
func userValue(v any) any {
	switch x := v.(type) {
	case nil, string, int64, float64, bool:
		return v
	case int32:
		return int64(x)
	case int16:
		return int64(x)
	case float32:
		return float64(x)
	case []byte:
		return string(x)
	case fmt.Stringer:
		return x.String()
	}
	return fmt.Sprint(v)
}

// Get returns the row with key.
func (s *Store) Get(ctx context.Context, key int64) (driver.Job, error) {
	user, err := s.userColumns(ctx)
	if err != nil {
		return driver.Job{}, err
	}
	var jobs []driver.Job
	if s.foreign != nil {
		jobs, err = s.foreignRows(ctx, user, driver.Filter{After: key - 1, Limit: 1})
		if len(jobs) > 0 && jobs[0].Key != key {
			jobs = nil
		}
	} else {
		jobs, err = s.query(ctx, s.pool, "WHERE _key = $1", key)
	}
	if err != nil {
		return driver.Job{}, err
	}
	if len(jobs) == 0 {
		return driver.Job{}, fmt.Errorf("row %d: %w", key, driver.ErrNotFound)
	}
	return jobs[0], nil
}

// execer runs statements: the pool or a transaction.
type execer interface {
	Exec(ctx context.Context, sql string, args ...any) (pgconn.CommandTag, error)
	QueryRow(ctx context.Context, sql string, args ...any) pgx.Row
}

// Update applies updates in one transaction; a single update is one
// statement.
func (s *Store) Update(ctx context.Context, updates ...driver.Update) error {
	if _, err := s.userColumns(ctx); err != nil {
		return err
	}
	if len(updates) == 1 {
		return s.update(ctx, s.pool, updates[0])
	}
	// Rows are locked in key order, so that two batches on the same rows
	// never wait for each other in a cycle (a deadlock PostgreSQL would
	// break by failing one). Updates of different rows commute; those of
	// one row keep their order.
	updates = slices.Clone(updates)
	slices.SortStableFunc(updates, func(a, b driver.Update) int { return cmp.Compare(a.Key, b.Key) })
	tx, err := s.pool.Begin(ctx)
	if err != nil {
		return s.wrap(err)
	}
	defer tx.Rollback(context.WithoutCancel(ctx))
	for _, u := range updates {
		if err := s.update(ctx, tx, u); err != nil {
			return err
		}
	}
	return s.wrap(tx.Commit(ctx))
}

// setClause is `"a" = $n, ...` for set, numbering from after args.
func setClause(set driver.Values, args []any) (string, []any, error) {
	names, vals, err := driver.Assignments(set)
	if err != nil {
		return "", nil, err
	}
	parts := make([]string, len(names))
	for i, n := range names {
		args = append(args, vals[i])
		parts[i] = fmt.Sprintf("%s = $%d", sqlbuild.Quote(n), len(args))
	}
	return strings.Join(parts, ", "), args, nil
}

func (s *Store) update(ctx context.Context, db execer, u driver.Update) error {
	set, args, err := setClause(u.Set, nil)
	if err != nil {
		return fmt.Errorf("row %d: %w", u.Key, err)
	}
	args = append(args, u.Key)
	q := "UPDATE " + s.q("") + " SET " + set + fmt.Sprintf(" WHERE _key = $%d", len(args))
	if len(u.From) > 0 {
		args = append(args, statusStrings(u.From))
		q += fmt.Sprintf(" AND status = ANY($%d)", len(args))
	}
	tag, err := db.Exec(ctx, q, args...)
	if err != nil {
		return fmt.Errorf("row %d: %w", u.Key, s.wrap(err))
	}
	if tag.RowsAffected() > 0 {
		return nil
	}
	var exists bool
	if err := db.QueryRow(ctx, "SELECT EXISTS (SELECT 1 FROM "+s.q("")+" WHERE _key = $1)", u.Key).Scan(&exists); err != nil {
		return s.wrap(err)
	}
	if !exists {
		return fmt.Errorf("row %d: %w", u.Key, driver.ErrNotFound)
	}
	return fmt.Errorf("row %d: status not in %v: %w", u.Key, u.From, driver.ErrConflict)
}

// Claim takes the first not_started row that no other transaction holds.
func (s *Store) Claim(ctx context.Context, set driver.Values) (driver.Job, error) {
	return s.ClaimWithin(ctx, set)
}

// claimSQL claims one row in one statement: the first not_started row in
// table order that no other transaction has locked (SKIP LOCKED: a
// concurrent claimer takes the next one instead of waiting), changed by
// the SET clause and returned whole.
//
// When set assigns a back-end, pinned is its name as the argument
// $pinned: a row whose backend_name the user set to another back-end is
// passed over (driver.Store's Claim).
func (s *Store) claimSQL(user []string, set string, pinned int) string {
	t := s.q("")
	pick := "status = 'not_started'"
	if pinned > 0 {
		pick += fmt.Sprintf(" AND coalesce(backend_name, '') IN ('', $%d)", pinned)
	}
	return "WITH c AS (SELECT _key FROM " + t + " WHERE " + pick + " ORDER BY _key LIMIT 1 FOR UPDATE SKIP LOCKED) " +
		"UPDATE " + t + " AS j SET " + set + " FROM c WHERE j._key = c._key RETURNING " + qualified("j", s.selectList(user))
}

func qualified(alias, list string) string {
	parts := strings.Split(list, ", ")
	for i, p := range parts {
		parts[i] = alias + "." + p
	}
	return strings.Join(parts, ", ")
}

// ClaimWithin is Claim, made only while every cap holds, across every
// process and machine that shares the table.
//
// Counting and claiming must be one step for all claimers together, which
// row locks alone do not give: two transactions can each count 4 active
// rows under a cap of 5 and each claim a different row. So the claim's
// transaction first takes a transaction-level advisory lock per capped
// back-end (pg_advisory_xact_lock, in a fixed order so that two claims
// never wait for each other in a cycle). Claimers for one back-end then
// go one at a time: each counts (in READ COMMITTED every statement sees
// what committed before it, so the count includes the previous holder's
// claim, which committed before its lock was released) and claims before
// the next one counts. Changes that take rows out of a cap's statuses
// need no lock: they can only make a count smaller. Claims for other
// back-ends, and uncapped claims, do not wait.
func (s *Store) ClaimWithin(ctx context.Context, set driver.Values, caps ...driver.Cap) (driver.Job, error) {
	user, err := s.userColumns(ctx)
	if err != nil {
		return driver.Job{}, err
	}
	clause, args, err := setClause(set, nil)
	if err != nil {
		return driver.Job{}, err
	}
	if _, given := set[driver.ColPinnedBackend]; !given {
		// The row's backend_name before the claim (SET reads the old row):
		// see driver.ClaimValues.
		clause += `, pinned_backend = NULLIF(backend_name, '')`
	}
	var live []driver.Cap
	for _, c := range caps {
		if len(c.Statuses) > 0 {
			live = append(live, c)
		}
	}
	if len(live) == 0 {
		jobs, err := s.collectClaim(ctx, s.pool, user, clause, args, set)
		return first(jobs, err)
	}
	tx, err := s.pool.Begin(ctx)
	if err != nil {
		return driver.Job{}, s.wrap(err)
	}
	defer tx.Rollback(context.WithoutCancel(ctx))
	keys := make([]int64, 0, len(live))
	for _, c := range live {
		keys = append(keys, s.lockKey("backend "+c.Backend))
	}
	slices.Sort(keys)
	keys = slices.Compact(keys)
	if _, err := tx.Exec(ctx, "SELECT pg_advisory_xact_lock(k) FROM unnest($1::bigint[]) AS k ORDER BY k", keys); err != nil {
		return driver.Job{}, s.wrap(err)
	}
	for _, c := range live {
		var n int
		err := tx.QueryRow(ctx, "SELECT count(*) FROM "+s.q("")+" WHERE backend_name = $1 AND status = ANY($2)",
			c.Backend, statusStrings(c.Statuses)).Scan(&n)
		if err != nil {
			return driver.Job{}, s.wrap(err)
		}
		if n >= c.Max {
			return driver.Job{}, fmt.Errorf("%d rows of %q in %v: %w", n, c.Backend, c.Statuses, driver.ErrCapped)
		}
	}
	jobs, err := s.collectClaim(ctx, tx, user, clause, args, set)
	if err != nil || len(jobs) == 0 {
		return first(jobs, err)
	}
	return jobs[0], s.wrap(tx.Commit(ctx))
}

func (s *Store) collectClaim(ctx context.Context, db querier, user []string, clause string, args []any, set driver.Values) ([]driver.Job, error) {
	pinned := 0
	if b, _ := set[driver.ColBackend].(string); b != "" { // normalized by setClause
		args = append(args, b)
		pinned = len(args)
	}
	rows, err := db.Query(ctx, s.claimSQL(user, clause, pinned), args...)
	if err != nil {
		return nil, s.wrap(err)
	}
	return s.collect(rows, user)
}

func first(jobs []driver.Job, err error) (driver.Job, error) {
	if err != nil {
		return driver.Job{}, err
	}
	if len(jobs) == 0 {
		return driver.Job{}, fmt.Errorf("no not_started row: %w", driver.ErrNotFound)
	}
	return jobs[0], nil
}

// ReadSQL runs one statement of SQL over the job table, which it calls
// jobs (a temporary view of the user's and the manager's columns, in
// table order), in a READ ONLY transaction: PostgreSQL refuses any
// statement that would write ("cannot execute UPDATE in a read-only
// transaction"), and the extended protocol refuses several statements in
// one. The rows are read through database/sql, as other commands print
// them; done ends the transaction and drops the view.
func (s *Store) ReadSQL(ctx context.Context, query string, args ...any) (rows *sql.Rows, done func(), err error) {
	user, err := s.userColumns(ctx)
	if err != nil {
		return nil, nil, err
	}
	db := stdlib.OpenDBFromPool(s.pool)
	conn, err := db.Conn(ctx)
	if err != nil {
		db.Close()
		return nil, nil, s.wrap(err)
	}
	cleanup := func() {
		conn.ExecContext(context.WithoutCancel(ctx), "DROP VIEW IF EXISTS pg_temp.jobs")
		conn.Close()
		db.Close()
	}
	cols := sqlbuild.JoinQuoted(append(slices.Clone(user), managerNames()...))
	from := s.q("") + " ORDER BY _key"
	if s.foreign != nil {
		from = "(" + s.foreignSelect(user) + ") AS t ORDER BY _key"
	}
	if _, err := conn.ExecContext(ctx, "CREATE OR REPLACE TEMP VIEW jobs AS SELECT "+cols+" FROM "+from); err != nil {
		cleanup()
		return nil, nil, s.wrap(err)
	}
	tx, err := conn.BeginTx(ctx, &sql.TxOptions{ReadOnly: true})
	if err != nil {
		cleanup()
		return nil, nil, s.wrap(err)
	}
	rows, err = tx.QueryContext(ctx, query, args...)
	if err != nil {
		tx.Rollback()
		cleanup()
		return nil, nil, err
	}
	return rows, func() {
		rows.Close()
		tx.Rollback()
		cleanup()
	}, nil
}
