// Package sqlite stores the job table in a SQLite database (modernc.org/sqlite,
// pure Go). It is the embedded default store.
//
// The table is called jobs. The user's columns are real SQL columns, followed
// by the manager's columns (driver.ManagerColumns) and a hidden-by-convention
// row key _key, so `sqlite3 jobs.db 'select year, status from jobs'` works.
// A NaN float, which SQLite stores as NULL, is stored as the three-byte
// BLOB 'NaN' (typeof blob; the sqlite3 shell shows NaN; it sorts after
// every number, as DuckDB sorts NaN) and read back as NaN; infinities are
// SQLite REALs. A text 'NaN' stays text.
// The database runs in WAL mode with a busy timeout: several processes may
// share one file, and a killed process leaves every committed change behind.
package sqlite

import (
	"bytes"
	"context"
	"database/sql"
	"errors"
	"fmt"
	"iter"
	"math"
	"os"
	"slices"
	"strings"
	"sync"

	"github.com/jmoiron/sqlx"
	_ "modernc.org/sqlite" // registers the "sqlite" database/sql driver

	"github.com/openeo-batch/worker/driver"
	"github.com/openeo-batch/worker/driver/internal/crashpoint"
	"github.com/openeo-batch/worker/driver/internal/sqlbuild"
)

func init() {
	driver.Register(driver.Driver{
		Name:       "sqlite",
		Extensions: []string{".db", ".sqlite", ".sqlite3"},
		Open: func(ctx context.Context, path string) (driver.Store, error) {
			return Open(ctx, path)
		},
		OpenReader: func(ctx context.Context, path string) (driver.Store, error) {
			return OpenReader(ctx, path)
		},
		Remove: Remove,
	})
}

// Remove removes the database at path with the files SQLite keeps beside
// it (write-ahead log, shared memory, rollback journal).
func Remove(path string) error {
	var errs []error
	for _, f := range []string{path, path + "-wal", path + "-shm", path + "-journal"} {
		if err := os.Remove(f); err != nil && !errors.Is(err, os.ErrNotExist) {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

const keyColumn = "_key"

// Store is a job table in a SQLite file.
type Store struct {
	path string
	w    *sqlx.DB // one connection: SQLite has one writer at a time
	r    *sqlx.DB // readers, which WAL lets run beside the writer

	mu      sync.Mutex
	columns []string // user columns, loaded once the table exists
	closed  bool

	reader  bool         // opened by OpenReader: never writes
	foreign *foreignView // for a reader of a table another program made, what it has
}

// foreignView is how a reader sees a table another program made, which it
// does not adopt (see OpenReader): the manager columns it has, and
// whether it has the row key.
type foreignView struct {
	has    map[string]bool
	hasKey bool
}

var _ driver.CapClaimer = (*Store)(nil)

var (
	_ driver.Store      = (*Store)(nil)
	_ driver.CapClaimer = (*Store)(nil)
)

// Open opens or creates the SQLite database at path.
func Open(ctx context.Context, path string) (*Store, error) {
	dsn := "file:" + path +
		"?_pragma=busy_timeout(20000)&_pragma=journal_mode(WAL)&_pragma=synchronous(NORMAL)&_txlock=immediate"
	w, err := sqlx.Open("sqlite", dsn)
	if err != nil {
		return nil, err
	}
	w.SetMaxOpenConns(1)
	if err := w.PingContext(ctx); err != nil {
		w.Close()
		return nil, interpretError(err)
	}
	r, err := sqlx.Open("sqlite", dsn)
	if err != nil {
		w.Close()
		return nil, err
	}
	r.SetMaxOpenConns(4)
	return &Store{path: path, w: w, r: r}, nil
}

// OpenReader opens the existing SQLite database at path only to read it,
// read-only (SQLite's mode=ro): it changes nothing in the file, not even
// its journal mode. A jobs table another program made (the sqlite3 shell,
// pandas) is read as Open would adopt it, without adopting it: the
// manager columns it lacks read as Init's defaults (status not_started,
// attempts 0), the row keys are those adoption would give (1, 2, ... in
// table order, or its own _key column). Writing through the store fails.
func OpenReader(ctx context.Context, path string) (*Store, error) {
	dsn := "file:" + path + "?mode=ro&_pragma=busy_timeout(20000)"
	var pools [2]*sqlx.DB
	for i := range pools {
		db, err := sqlx.Open("sqlite", dsn)
		if err == nil {
			err = db.PingContext(ctx)
		}
		if err != nil {
			if db != nil {
				db.Close()
			}
			if pools[0] != nil {
				pools[0].Close()
			}
			return nil, interpretError(err)
		}
		pools[i] = db
	}
	pools[0].SetMaxOpenConns(1)
	pools[1].SetMaxOpenConns(4)
	return &Store{path: path, w: pools[0], r: pools[1], reader: true}, nil
}

// Close closes both connection pools.
func (s *Store) Close() error {
	s.mu.Lock()
	s.closed = true
	s.mu.Unlock()
	return errors.Join(s.r.Close(), s.w.Close())
}

func (s *Store) tableExists(ctx context.Context) (bool, error) {
	var n int
	err := s.r.GetContext(ctx, &n, `SELECT count(*) FROM sqlite_master WHERE type='table' AND name='jobs'`)
	return n > 0, interpretError(err)
}

// userColumns returns the user's columns, reading the schema once. The
// first time, it also makes a table another program wrote (the sqlite3
// shell, pandas) into a job table, as Init would have made it (adopt), and
// checks its statuses.
func (s *Store) userColumns(ctx context.Context) ([]string, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return nil, driver.ErrClosed
	}
	if s.columns != nil {
		return s.columns, nil
	}
	if s.reader {
		cols, state, err := s.inspect(ctx, s.r)
		if err != nil {
			return nil, err
		}
		if state == foreign {
			v := &foreignView{has: map[string]bool{}}
			for _, c := range cols {
				v.has[c.name] = true
			}
			v.hasKey = v.has[keyColumn]
			s.foreign = v
		}
		s.columns = userNames(cols)
		return s.columns, nil
	}
	cols, err := s.adopt(ctx)
	if err != nil {
		return nil, err
	}
	s.columns = cols
	return cols, nil
}

// column is one column of the jobs table as SQLite declares it.
type column struct{ name, typ string }

// schemaReader is a database or a transaction.
type schemaReader interface {
	QueryxContext(ctx context.Context, query string, args ...any) (*sqlx.Rows, error)
	GetContext(ctx context.Context, dest any, query string, args ...any) error
}

func tableInfo(ctx context.Context, tx schemaReader) ([]column, error) {
	rows, err := tx.QueryxContext(ctx, `SELECT name, type FROM pragma_table_info('jobs') ORDER BY cid`)
	if err != nil {
		return nil, interpretError(err)
	}
	defer rows.Close()
	var cols []column
	for rows.Next() {
		var c column
		if err := rows.Scan(&c.name, &c.typ); err != nil {
			return nil, interpretError(err)
		}
		cols = append(cols, c)
	}
	return cols, interpretError(rows.Err())
}

// adopt returns the user's columns of the jobs table, first giving a table
// that lacks them what Init gives: the manager's columns (with the Python
// client's defaults: status not_started, attempts 0), the row key, the
// indexes and the counts. Statuses are checked: an unknown one is an error
// naming the file, row and column, and then nothing is changed. It all
// happens in one transaction, which takes the write lock only when there
// is something to change.
func (s *Store) adopt(ctx context.Context) ([]string, error) {
	cols, state, err := s.inspect(ctx, s.r)
	if err != nil || state == complete {
		return userNames(cols), err
	}
	tx, err := s.w.BeginTxx(ctx, nil)
	if err != nil {
		return nil, interpretError(err)
	}
	defer tx.Rollback()
	if cols, state, err = s.inspect(ctx, tx); err != nil || state == complete {
		return userNames(cols), err
	}
	if state == foreign {
		if err := s.rebuild(ctx, tx, cols); err != nil {
			return nil, err
		}
		if err := checkStatuses(ctx, tx, s.path); err != nil {
			return nil, err
		}
		if err := s.checkValues(ctx, tx, cols); err != nil {
			return nil, err
		}
	}
	for _, q := range statusDDL() {
		if _, err := tx.ExecContext(ctx, q); err != nil {
			return nil, fmt.Errorf("%s: %w", s.path, interpretError(err))
		}
	}
	crashpoint.Hit("sqlite: table adopted, not committed")
	if err := tx.Commit(); err != nil {
		return nil, interpretError(err)
	}
	return userNames(cols), nil
}

// tableState is what a jobs table lacks.
type tableState int

const (
	complete      tableState = iota // nothing: a job table as Init makes it
	noStatusCheck                   // the triggers that refuse unknown statuses (an older version made it)
	foreign                         // columns, row key or counts: another program made it
)

// inspect reads the jobs table's columns and tells what it lacks. The
// statuses of a table that has its columns and counts are checked.
func (s *Store) inspect(ctx context.Context, tx schemaReader) ([]column, tableState, error) {
	cols, err := tableInfo(ctx, tx)
	if err != nil {
		return nil, foreign, err
	}
	if len(cols) == 0 {
		return nil, foreign, fmt.Errorf("%s: %w", s.path, driver.ErrNoTable)
	}
	have := map[string]bool{}
	for _, c := range cols {
		have[c.name] = true
	}
	whole := have[keyColumn]
	for _, c := range driver.ManagerColumns() {
		whole = whole && have[c.Name]
	}
	var counts, checks int
	if err := tx.GetContext(ctx, &counts, `SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name = 'job_counts'`); err != nil {
		return nil, foreign, interpretError(err)
	}
	if err := tx.GetContext(ctx, &checks, `SELECT count(*) FROM sqlite_master WHERE type = 'trigger' AND name IN ('jobs_status_insert', 'jobs_status_update')`); err != nil {
		return nil, foreign, interpretError(err)
	}
	if !whole || counts == 0 {
		return cols, foreign, nil
	}
	if err := checkStatuses(ctx, tx, s.path); err != nil {
		return nil, foreign, err
	}
	if checks < 2 {
		return cols, noStatusCheck, nil
	}
	return cols, complete, nil
}

// statusDDL makes the triggers that refuse a status no tool knows, from
// whichever program writes it: the sqlite3 shell gets the error, and the
// table keeps none that a run would pass over.
func statusDDL() []string {
	var known []string
	for _, st := range driver.Statuses() {
		known = append(known, "'"+string(st)+"'")
	}
	list := strings.Join(known, ", ")
	msg := "'unknown status in column status of jobs (want one of " + strings.ReplaceAll(list, "'", "") + ")'"
	var ddl []string
	for _, on := range []string{"INSERT", "UPDATE OF status"} {
		name := "jobs_status_" + strings.ToLower(strings.Fields(on)[0])
		ddl = append(ddl, "DROP TRIGGER IF EXISTS "+name,
			"CREATE TRIGGER "+name+" BEFORE "+on+" ON jobs WHEN NEW.status NOT IN ("+list+") BEGIN SELECT RAISE(ABORT, "+msg+"); END")
	}
	return ddl
}

func userNames(cols []column) []string {
	names := []string{}
	for _, c := range cols {
		if _, isManager := driver.ManagerColumn(c.name); !isManager && c.name != keyColumn {
			names = append(names, c.name)
		}
	}
	return names
}

// rebuild makes the jobs table over as Init makes it, keeping its rows in
// their order and every value they have: the user's columns with their
// declared types, the manager columns present converted as Init converts
// them (an empty status is not_started), the others empty.
func (s *Store) rebuild(ctx context.Context, tx *sqlx.Tx, cols []column) error {
	have := map[string]bool{}
	var user []column
	for _, c := range cols {
		have[c.name] = true
		if _, isManager := driver.ManagerColumn(c.name); !isManager && c.name != keyColumn {
			user = append(user, c)
		}
	}
	var ddl, into, from []string
	for _, c := range user {
		ddl = append(ddl, strings.TrimSpace(sqlbuild.Quote(c.name)+" "+c.typ))
		into = append(into, sqlbuild.Quote(c.name))
		from = append(from, sqlbuild.Quote(c.name))
	}
	for _, c := range driver.ManagerColumns() {
		ddl = append(ddl, sqlbuild.Quote(c.Name)+" "+sqlType(c))
		if !have[c.Name] {
			continue
		}
		q := sqlbuild.Quote(c.Name)
		into = append(into, q)
		switch c.Name {
		case driver.ColStatus:
			from = append(from, "coalesce(nullif(trim("+q+"), ''), 'not_started')")
		case driver.ColAttempts, driver.ColDownloadPending:
			from = append(from, "coalesce("+q+", 0)")
		default:
			from = append(from, q)
		}
	}
	ddl = append(ddl, keyColumn+" INTEGER PRIMARY KEY")
	order := ""
	if have[keyColumn] {
		into = append(into, keyColumn)
		from = append(from, keyColumn)
		order = " ORDER BY " + keyColumn
	}
	qs := []string{
		"CREATE TABLE jobs_adopted (" + strings.Join(ddl, ", ") + ")",
		"INSERT INTO jobs_adopted (" + strings.Join(into, ", ") + ") SELECT " + strings.Join(from, ", ") + " FROM jobs" + order,
		"DROP TABLE jobs",
		"ALTER TABLE jobs_adopted RENAME TO jobs",
		"DROP TABLE IF EXISTS job_counts",
	}
	qs = append(qs, indexDDL...)
	qs = append(qs, countsDDL...)
	for _, q := range qs {
		if _, err := tx.ExecContext(ctx, q); err != nil {
			return fmt.Errorf("%s: make a job table of jobs: %w", s.path, interpretError(err))
		}
	}
	return nil
}

// checkValues reads every value of the manager columns a foreign table
// brought, as the rows will be read: a value that cannot be read (costs
// that are no number) is an error naming the file, row and column, before
// the adoption commits. It reads the table once, when it is adopted.
func (s *Store) checkValues(ctx context.Context, tx *sqlx.Tx, cols []column) error {
	var names []string
	for _, c := range cols {
		if _, isManager := driver.ManagerColumn(c.name); isManager {
			names = append(names, c.name)
		}
	}
	if len(names) == 0 {
		return nil
	}
	rows, err := tx.QueryxContext(ctx, "SELECT _key, "+sqlbuild.JoinQuoted(names)+" FROM jobs ORDER BY _key")
	if err != nil {
		return interpretError(err)
	}
	defer rows.Close()
	vals := make([]any, len(names)+1)
	ptrs := make([]any, len(vals))
	for i := range vals {
		ptrs[i] = &vals[i]
	}
	for rows.Next() {
		if err := rows.Scan(ptrs...); err != nil {
			return interpretError(err)
		}
		for i, c := range names {
			if _, err := driver.Normalize(c, userValue(vals[i+1])); err != nil {
				return fmt.Errorf("%s: row %d, %w", s.path, vals[0], err)
			}
		}
	}
	return interpretError(rows.Err())
}

// checkStatuses refuses a table with a status no tool knows, naming the
// first row that has one. job_counts tells whether there is one at all
// without reading the table.
func checkStatuses(ctx context.Context, tx schemaReader, path string) error {
	q, args, err := sqlx.In(`SELECT status FROM job_counts WHERE n > 0 AND status NOT IN (?) LIMIT 1`, driver.Statuses())
	if err != nil {
		return err
	}
	var bad string
	err = tx.GetContext(ctx, &bad, q, args...)
	if errors.Is(err, sql.ErrNoRows) {
		return nil
	}
	if err != nil {
		return interpretError(err)
	}
	var key int64
	if err := tx.GetContext(ctx, &key, `SELECT _key FROM jobs WHERE status = ? ORDER BY _key LIMIT 1`, bad); err != nil {
		return interpretError(err)
	}
	_, err = driver.ParseStatus(bad)
	if bad == "" {
		err = errors.New("empty status")
	}
	return fmt.Errorf("%s: row %d, column %q: %w", path, key, driver.ColStatus, err)
}

// Columns returns the user's column names in table order.
func (s *Store) Columns(ctx context.Context) ([]string, error) {
	cols, err := s.userColumns(ctx)
	return append([]string(nil), cols...), err
}

// Init creates the jobs table and inserts rows in one transaction.
func (s *Store) Init(ctx context.Context, columns []string, rows iter.Seq2[[]any, error]) error {
	if exists, err := s.tableExists(ctx); err != nil {
		return err
	} else if exists {
		return fmt.Errorf("%s: %w", s.path, driver.ErrExists)
	}
	user, err := driver.SplitColumns(columns, keyColumn)
	if err != nil {
		return err
	}

	var ddl strings.Builder
	ddl.WriteString("CREATE TABLE jobs (")
	for _, c := range user {
		ddl.WriteString(sqlbuild.Quote(c) + ", ")
	}
	for _, c := range driver.ManagerColumns() {
		ddl.WriteString(sqlbuild.Quote(c.Name) + " " + sqlType(c))
		ddl.WriteString(", ")
	}
	ddl.WriteString(keyColumn + " INTEGER PRIMARY KEY)")

	all := append(append([]string(nil), user...), managerNames()...)
	insert := fmt.Sprintf("INSERT INTO jobs (%s) VALUES (%s)",
		sqlbuild.JoinQuoted(all), strings.TrimSuffix(strings.Repeat("?,", len(all)), ","))
	pos := map[string]int{}
	for i, c := range all {
		pos[c] = i
	}

	tx, err := s.w.BeginTxx(ctx, nil)
	if err != nil {
		return interpretError(err)
	}
	defer tx.Rollback()
	if _, err := tx.ExecContext(ctx, ddl.String()); err != nil {
		return interpretError(err)
	}
	for _, q := range indexDDL {
		if _, err := tx.ExecContext(ctx, q); err != nil {
			return interpretError(err)
		}
	}
	stmt, err := tx.PrepareContext(ctx, insert)
	if err != nil {
		return interpretError(err)
	}
	defer stmt.Close()

	args := make([]any, len(all))
	rowNum := 0
	for row, err := range rows {
		rowNum++
		if err != nil {
			return err
		}
		if len(row) != len(columns) {
			return fmt.Errorf("row %d: %d values for %d columns", rowNum, len(row), len(columns))
		}
		clear(args)
		for _, c := range driver.ManagerColumns() {
			args[pos[c.Name]], _ = driver.Normalize(c.Name, nil)
		}
		args[pos[driver.ColAttempts]] = int64(0)
		args[pos[driver.ColDownloadPending]] = false
		for i, c := range columns {
			v := row[i]
			if _, ok := driver.ManagerColumn(c); ok {
				if v, err = driver.Normalize(c, v); err != nil {
					return fmt.Errorf("row %d, %w", rowNum, err)
				}
				if v == nil && (c == driver.ColAttempts || c == driver.ColDownloadPending) {
					continue
				}
			}
			args[pos[c]] = storedValue(v)
		}
		if _, err := stmt.ExecContext(ctx, args...); err != nil {
			return fmt.Errorf("row %d: %w", rowNum, interpretError(err))
		}
	}
	// Counts per back-end and status, kept by triggers from here on, so that
	// Counts reads a few rows however large the table.
	for _, q := range slices.Concat(countsDDL, statusDDL()) {
		if _, err := tx.ExecContext(ctx, q); err != nil {
			return interpretError(err)
		}
	}
	crashpoint.Hit("sqlite: table made, not committed")
	if err := tx.Commit(); err != nil {
		return interpretError(err)
	}
	s.mu.Lock()
	s.columns = nil
	s.mu.Unlock()
	return nil
}

// indexDDL makes the indexes claims and selections use.
var indexDDL = []string{
	`CREATE INDEX jobs_status ON jobs (status, _key)`,
	`CREATE INDEX jobs_pending ON jobs (_key) WHERE download_pending = 1`,
}

// countsDDL creates job_counts, fills it, and keeps it right with triggers,
// also when users edit the table with other SQLite tools.
var countsDDL = []string{
	`CREATE TABLE job_counts (backend_name TEXT NOT NULL, status TEXT NOT NULL, n INTEGER NOT NULL,
		PRIMARY KEY (backend_name, status)) WITHOUT ROWID`,
	`INSERT INTO job_counts SELECT coalesce(backend_name, ''), status, count(*) FROM jobs GROUP BY 1, 2`,
	`CREATE TRIGGER jobs_counts_insert AFTER INSERT ON jobs BEGIN
		INSERT INTO job_counts VALUES (coalesce(NEW.backend_name, ''), NEW.status, 1)
			ON CONFLICT (backend_name, status) DO UPDATE SET n = n + 1;
	END`,
	`CREATE TRIGGER jobs_counts_delete AFTER DELETE ON jobs BEGIN
		UPDATE job_counts SET n = n - 1 WHERE backend_name = coalesce(OLD.backend_name, '') AND status = OLD.status;
	END`,
	`CREATE TRIGGER jobs_counts_update AFTER UPDATE OF status, backend_name ON jobs
	WHEN OLD.status IS NOT NEW.status OR OLD.backend_name IS NOT NEW.backend_name BEGIN
		UPDATE job_counts SET n = n - 1 WHERE backend_name = coalesce(OLD.backend_name, '') AND status = OLD.status;
		INSERT INTO job_counts VALUES (coalesce(NEW.backend_name, ''), NEW.status, 1)
			ON CONFLICT (backend_name, status) DO UPDATE SET n = n + 1;
	END`,
}

func sqlType(c driver.Column) string {
	switch c.Name {
	case driver.ColStatus:
		return "TEXT NOT NULL DEFAULT 'not_started'"
	case driver.ColAttempts:
		return "INTEGER NOT NULL DEFAULT 0"
	case driver.ColDownloadPending:
		return "INTEGER NOT NULL DEFAULT 0"
	}
	switch c.Kind {
	case driver.Integer:
		return "INTEGER"
	case driver.Real:
		return "REAL"
	case driver.Bool:
		return "INTEGER"
	}
	return "TEXT"
}

func managerNames() []string {
	var names []string
	for _, c := range driver.ManagerColumns() {
		names = append(names, c.Name)
	}
	return names
}

// Counts returns the number of rows per back-end and status.
func (s *Store) Counts(ctx context.Context) ([]driver.Count, error) {
	if _, err := s.userColumns(ctx); err != nil {
		return nil, err
	}
	if s.foreign != nil {
		return s.foreignCounts(ctx)
	}
	rows, err := s.r.QueryxContext(ctx,
		`SELECT backend_name, status, n FROM job_counts WHERE n > 0 ORDER BY 1, 2`)
	if err != nil {
		return nil, interpretError(err)
	}
	defer rows.Close()
	var out []driver.Count
	for rows.Next() {
		var c driver.Count
		if err := rows.Scan(&c.Backend, &c.Status, &c.N); err != nil {
			return nil, interpretError(err)
		}
		out = append(out, c)
	}
	return out, interpretError(rows.Err())
}

// Select returns the rows matching f in table order.
func (s *Store) Select(ctx context.Context, f driver.Filter) ([]driver.Job, error) {
	if _, err := s.userColumns(ctx); err != nil {
		return nil, err
	}
	if s.foreign != nil {
		return s.foreignSelect(ctx, f)
	}
	where, args, err := whereClause(f)
	if err != nil {
		return nil, err
	}
	q := "WHERE " + where + " ORDER BY _key"
	if f.Limit > 0 {
		q += fmt.Sprintf(" LIMIT %d", f.Limit)
	}
	return s.query(ctx, s.r, q, args...)
}

func whereClause(f driver.Filter) (string, []any, error) {
	conds := []string{"1=1"}
	var args []any
	if len(f.Statuses) > 0 {
		q, a, err := sqlx.In("status IN (?)", f.Statuses)
		if err != nil {
			return "", nil, err
		}
		conds = append(conds, q)
		args = append(args, a...)
	}
	if f.Backend != "" {
		conds = append(conds, "backend_name = ?")
		args = append(args, f.Backend)
	}
	if f.DownloadPending {
		conds = append(conds, "download_pending = 1")
	}
	if f.After > 0 {
		conds = append(conds, "_key > ?")
		args = append(args, f.After)
	}
	return strings.Join(conds, " AND "), args, nil
}

type queryer interface {
	QueryxContext(ctx context.Context, query string, args ...any) (*sqlx.Rows, error)
}

// query selects full rows with the given WHERE/ORDER tail.
func (s *Store) query(ctx context.Context, db queryer, tail string, args ...any) ([]driver.Job, error) {
	user, err := s.userColumns(ctx)
	if err != nil {
		return nil, err
	}
	all := append(append([]string(nil), user...), managerNames()...)
	return s.scan(ctx, db, user, "SELECT _key, "+sqlbuild.JoinQuoted(all)+" FROM jobs "+tail, args...)
}

// scan reads the rows of q, which selects the row key, the user columns
// user and the manager columns, in that order.
func (s *Store) scan(ctx context.Context, db queryer, user []string, q string, args ...any) ([]driver.Job, error) {
	all := append(append([]string(nil), user...), managerNames()...)
	rows, err := db.QueryxContext(ctx, q, args...)
	if err != nil {
		return nil, interpretError(err)
	}
	defer rows.Close()
	var jobs []driver.Job
	vals := make([]any, len(all)+1)
	ptrs := make([]any, len(vals))
	for i := range vals {
		ptrs[i] = &vals[i]
	}
	for rows.Next() {
		if err := rows.Scan(ptrs...); err != nil {
			return nil, interpretError(err)
		}
		j := driver.Job{Key: vals[0].(int64), Data: make(map[string]any, len(user))}
		for i, c := range user {
			j.Data[c] = userValue(vals[i+1])
		}
		for i, c := range all[len(user):] {
			v, err := driver.Normalize(c, userValue(vals[len(user)+i+1]))
			if err != nil {
				return nil, fmt.Errorf("%s: row %d, %w", s.path, j.Key, err)
			}
			j.Assign(c, v)
		}
		jobs = append(jobs, j)
	}
	return jobs, interpretError(rows.Err())
}

// foreignSelect is Select for a reader of a table another program made
// (see OpenReader): the columns it lacks read as NULL, which Normalize
// turns into Init's defaults, the keys are those adoption would give, and
// f is applied to the rows read.
func (s *Store) foreignSelect(ctx context.Context, f driver.Filter) ([]driver.Job, error) {
	key := "row_number() OVER (ORDER BY rowid)" // adoption numbers the rows in table order
	if s.foreign.hasKey {
		key = keyColumn
	}
	cols := []string{key}
	for _, c := range s.columns {
		cols = append(cols, sqlbuild.Quote(c))
	}
	for _, c := range driver.ManagerColumns() {
		switch {
		case !s.foreign.has[c.Name]:
			cols = append(cols, "NULL")
		case c.Name == driver.ColStatus:
			cols = append(cols, "nullif(trim(status), '')")
		default:
			cols = append(cols, sqlbuild.Quote(c.Name))
		}
	}
	order := "rowid"
	if s.foreign.hasKey {
		order = keyColumn
	}
	jobs, err := s.scan(ctx, s.r, s.columns, "SELECT "+strings.Join(cols, ", ")+" FROM jobs ORDER BY "+order)
	if err != nil {
		return nil, err
	}
	return f.Apply(jobs), nil
}

// foreignCounts is Counts for a reader of a table another program made.
func (s *Store) foreignCounts(ctx context.Context) ([]driver.Count, error) {
	jobs, err := s.foreignSelect(ctx, driver.Filter{})
	if err != nil {
		return nil, err
	}
	return driver.CountJobs(jobs), nil
}

// nanBlob is how the table holds a NaN float (see the package comment).
var nanBlob = []byte("NaN")

// storedValue is v as the table holds it: a NaN as nanBlob.
func storedValue(v any) any {
	if f, ok := v.(float64); ok && math.IsNaN(f) {
		return nanBlob
	}
	return v
}

// userValue is a value read from the table as the store gives it: nanBlob
// is NaN, other bytes are text.
func userValue(v any) any {
	if b, ok := v.([]byte); ok {
		if bytes.Equal(b, nanBlob) {
			return math.NaN()
		}
		return string(b)
	}
	return v
}

// Get returns the row with key.
func (s *Store) Get(ctx context.Context, key int64) (driver.Job, error) {
	return s.get(ctx, s.r, key)
}

func (s *Store) get(ctx context.Context, db queryer, key int64) (driver.Job, error) {
	if _, err := s.userColumns(ctx); err != nil {
		return driver.Job{}, err
	}
	var jobs []driver.Job
	var err error
	if s.foreign != nil {
		jobs, err = s.foreignSelect(ctx, driver.Filter{After: key - 1, Limit: 1})
		if len(jobs) > 0 && jobs[0].Key != key {
			jobs = nil
		}
	} else {
		jobs, err = s.query(ctx, db, "WHERE _key = ?", key)
	}
	if err != nil {
		return driver.Job{}, err
	}
	if len(jobs) == 0 {
		return driver.Job{}, fmt.Errorf("row %d: %w", key, driver.ErrNotFound)
	}
	return jobs[0], nil
}

// Update applies updates in one transaction.
func (s *Store) Update(ctx context.Context, updates ...driver.Update) error {
	if _, err := s.userColumns(ctx); err != nil {
		return err
	}
	tx, err := s.w.BeginTxx(ctx, nil)
	if err != nil {
		return interpretError(err)
	}
	defer tx.Rollback()
	for _, u := range updates {
		set, args, err := sqlbuild.SetClause(u.Set)
		if err != nil {
			return fmt.Errorf("row %d: %w", u.Key, err)
		}
		q := "UPDATE jobs SET " + set + " WHERE _key = ?"
		args = append(args, u.Key)
		if len(u.From) > 0 {
			in, a, err := sqlx.In(" AND status IN (?)", u.From)
			if err != nil {
				return err
			}
			q += in
			args = append(args, a...)
		}
		res, err := tx.ExecContext(ctx, q, args...)
		if err != nil {
			return fmt.Errorf("row %d: %w", u.Key, interpretError(err))
		}
		if n, _ := res.RowsAffected(); n == 0 {
			var exists int
			if err := tx.GetContext(ctx, &exists, `SELECT count(*) FROM jobs WHERE _key = ?`, u.Key); err != nil {
				return interpretError(err)
			}
			if exists == 0 {
				return fmt.Errorf("row %d: %w", u.Key, driver.ErrNotFound)
			}
			return fmt.Errorf("row %d: status not in %v: %w", u.Key, u.From, driver.ErrConflict)
		}
	}
	return interpretError(tx.Commit())
}

// Claim takes the first not_started row in one statement.
func (s *Store) Claim(ctx context.Context, set driver.Values) (driver.Job, error) {
	return s.ClaimWithin(ctx, set)
}

// ClaimWithin is Claim, made only while every cap holds. The writer's
// transaction is IMMEDIATE: processes sharing the file count and claim one
// after the other.
func (s *Store) ClaimWithin(ctx context.Context, set driver.Values, caps ...driver.Cap) (driver.Job, error) {
	if _, err := s.userColumns(ctx); err != nil {
		return driver.Job{}, err
	}
	clause, args, err := sqlbuild.SetClause(set)
	if err != nil {
		return driver.Job{}, err
	}
	if _, given := set[driver.ColPinnedBackend]; !given {
		// The row's backend_name before the claim (SET reads the old row):
		// see driver.ClaimValues.
		clause += `, pinned_backend = NULLIF(backend_name, '')`
	}
	tx, err := s.w.BeginTxx(ctx, nil)
	if err != nil {
		return driver.Job{}, interpretError(err)
	}
	defer tx.Rollback()
	for _, c := range caps {
		n, err := capCount(ctx, tx, c)
		if err != nil {
			return driver.Job{}, interpretError(err)
		}
		if n >= c.Max {
			return driver.Job{}, fmt.Errorf("%d rows of %q in %v: %w", n, c.Backend, c.Statuses, driver.ErrCapped)
		}
	}
	// A row the user gave to a back-end (backend_name set while
	// not_started) goes only to that one.
	pick := "status = 'not_started'"
	if b, ok := set[driver.ColBackend].(string); ok && b != "" {
		pick += " AND (backend_name IS NULL OR backend_name = '' OR backend_name = ?)"
		args = append(args, b)
	}
	var key int64
	err = tx.GetContext(ctx, &key, "UPDATE jobs SET "+clause+
		" WHERE _key = (SELECT _key FROM jobs WHERE "+pick+" ORDER BY _key LIMIT 1) RETURNING _key", args...)
	if errors.Is(err, sql.ErrNoRows) {
		return driver.Job{}, fmt.Errorf("no not_started row: %w", driver.ErrNotFound)
	}
	if err != nil {
		return driver.Job{}, interpretError(err)
	}
	j, err := s.get(ctx, tx, key)
	if err != nil {
		return driver.Job{}, err
	}
	return j, interpretError(tx.Commit())
}

// capCount counts the rows a cap bounds, from job_counts.
func capCount(ctx context.Context, tx *sqlx.Tx, c driver.Cap) (int, error) {
	if len(c.Statuses) == 0 {
		return 0, nil
	}
	q, args, err := sqlx.In("SELECT coalesce(sum(n), 0) FROM job_counts WHERE backend_name = ? AND status IN (?)", c.Backend, c.Statuses)
	if err != nil {
		return 0, err
	}
	var n int
	err = tx.GetContext(ctx, &n, q, args...)
	return n, err
}
