// Package sqlite stores the job table in a SQLite database (modernc.org/sqlite,
// pure Go). It is the embedded default store.
//
// The table is called jobs. The user's columns are real SQL columns, followed
// by the manager's columns (driver.ManagerColumns) and a hidden-by-convention
// row key _key, so `sqlite3 jobs.db 'select year, status from jobs'` works.
// The database runs in WAL mode with a busy timeout: several processes may
// share one file, and a killed process leaves every committed change behind.
package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"iter"
	"strings"
	"sync"

	"github.com/jmoiron/sqlx"
	_ "modernc.org/sqlite" // registers the "sqlite" database/sql driver

	"github.com/openeo-batch/worker/driver"
	"github.com/openeo-batch/worker/driver/internal/sqlbuild"
)

func init() {
	driver.Register(driver.Driver{
		Name:       "sqlite",
		Extensions: []string{".db", ".sqlite", ".sqlite3"},
		Open: func(ctx context.Context, path string) (driver.Store, error) {
			return Open(ctx, path)
		},
	})
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

// userColumns returns the user's columns, reading the schema once.
func (s *Store) userColumns(ctx context.Context) ([]string, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return nil, driver.ErrClosed
	}
	if s.columns != nil {
		return s.columns, nil
	}
	rows, err := s.r.QueryxContext(ctx, `SELECT name FROM pragma_table_info('jobs') ORDER BY cid`)
	if err != nil {
		return nil, interpretError(err)
	}
	defer rows.Close()
	cols := []string{}
	have := map[string]bool{}
	n := 0
	for rows.Next() {
		var name string
		if err := rows.Scan(&name); err != nil {
			return nil, interpretError(err)
		}
		n++
		have[name] = true
		if _, isManager := driver.ManagerColumn(name); !isManager && name != keyColumn {
			cols = append(cols, name)
		}
	}
	if err := rows.Err(); err != nil {
		return nil, interpretError(err)
	}
	if n == 0 {
		return nil, fmt.Errorf("%s: %w", s.path, driver.ErrNoTable)
	}
	if err := s.addMissingColumns(ctx, have); err != nil {
		return nil, err
	}
	s.columns = cols
	return cols, nil
}

// addMissingColumns adds the manager columns a table made by an earlier
// version lacks.
func (s *Store) addMissingColumns(ctx context.Context, have map[string]bool) error {
	for _, c := range driver.ManagerColumns() {
		if have[c.Name] {
			continue
		}
		if _, err := s.w.ExecContext(ctx, "ALTER TABLE jobs ADD COLUMN "+sqlbuild.Quote(c.Name)+" "+sqlType(c)); err != nil {
			return fmt.Errorf("%s: add column %s: %w", s.path, c.Name, interpretError(err))
		}
	}
	return nil
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
	for _, q := range []string{
		`CREATE INDEX jobs_status ON jobs (status, _key)`,
		`CREATE INDEX jobs_pending ON jobs (_key) WHERE download_pending = 1`,
	} {
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
			args[pos[c]] = v
		}
		if _, err := stmt.ExecContext(ctx, args...); err != nil {
			return fmt.Errorf("row %d: %w", rowNum, interpretError(err))
		}
	}
	// Counts per back-end and status, kept by triggers from here on, so that
	// Counts reads a few rows however large the table.
	for _, q := range countsDDL {
		if _, err := tx.ExecContext(ctx, q); err != nil {
			return interpretError(err)
		}
	}
	if err := tx.Commit(); err != nil {
		return interpretError(err)
	}
	s.mu.Lock()
	s.columns = nil
	s.mu.Unlock()
	return nil
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
	rows, err := db.QueryxContext(ctx, "SELECT _key, "+sqlbuild.JoinQuoted(all)+" FROM jobs "+tail, args...)
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

func userValue(v any) any {
	if b, ok := v.([]byte); ok {
		return string(b)
	}
	return v
}

// Get returns the row with key.
func (s *Store) Get(ctx context.Context, key int64) (driver.Job, error) {
	return s.get(ctx, s.r, key)
}

func (s *Store) get(ctx context.Context, db queryer, key int64) (driver.Job, error) {
	jobs, err := s.query(ctx, db, "WHERE _key = ?", key)
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
	var key int64
	err = tx.GetContext(ctx, &key, "UPDATE jobs SET "+clause+
		" WHERE _key = (SELECT _key FROM jobs WHERE status = 'not_started' ORDER BY _key LIMIT 1) RETURNING _key", args...)
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
