package duckdb

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"math/big"
	"strings"
	"time"

	"github.com/openeo-batch/worker/driver"
	"github.com/openeo-batch/worker/driver/internal/sqlbuild"
)

// selectList is the columns a query returns: the key, the user's columns
// (geometries as WKT) and the manager's.
func (s *Store) selectList() string {
	cols := []string{keyColumn}
	for _, c := range s.user {
		if s.geometry[c] {
			cols = append(cols, "ST_AsText("+sqlbuild.Quote(c)+")")
		} else {
			cols = append(cols, sqlbuild.Quote(c))
		}
	}
	for _, mc := range driver.ManagerColumns() {
		cols = append(cols, sqlbuild.Quote(mc.Name))
	}
	return strings.Join(cols, ", ")
}

// userValue turns what DuckDB gives into the values a Job carries.
func userValue(v any) any {
	switch x := v.(type) {
	case nil, string, int64, float64, bool:
		return x
	case int32:
		return int64(x)
	case int16:
		return int64(x)
	case int8:
		return int64(x)
	case uint8:
		return int64(x)
	case uint16:
		return int64(x)
	case uint32:
		return int64(x)
	case uint64:
		return int64(x)
	case float32:
		return float64(x)
	case []byte:
		return string(x)
	case time.Time:
		return x.UTC().Format(time.RFC3339)
	case *big.Int:
		return x.String()
	}
	return fmt.Sprint(v)
}

func (s *Store) query(ctx context.Context, tail string, args ...any) ([]driver.Job, error) {
	rows, err := s.db.QueryContext(ctx, "SELECT "+s.selectList()+" FROM jobs "+tail, args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	n := 1 + len(s.user) + len(driver.ManagerColumns())
	vals := make([]any, n)
	ptrs := make([]any, n)
	for i := range vals {
		ptrs[i] = &vals[i]
	}
	var out []driver.Job
	for rows.Next() {
		if err := rows.Scan(ptrs...); err != nil {
			return nil, err
		}
		j := driver.Job{Key: userValue(vals[0]).(int64), Data: make(map[string]any, len(s.user))}
		for i, c := range s.user {
			j.Data[c] = userValue(vals[1+i])
		}
		for i, mc := range driver.ManagerColumns() {
			v, err := driver.Normalize(mc.Name, userValue(vals[1+len(s.user)+i]))
			if err != nil {
				return nil, fmt.Errorf("%s: row %d, %w", s.path, j.Key, err)
			}
			j.Assign(mc.Name, v)
		}
		out = append(out, j)
	}
	return out, rows.Err()
}

// Counts counts rows per back-end and status.
func (s *Store) Counts(ctx context.Context) ([]driver.Count, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.ready(); err != nil {
		return nil, err
	}
	rows, err := s.db.QueryContext(ctx, `SELECT coalesce(backend_name, ''), status, count(*) FROM jobs GROUP BY ALL ORDER BY ALL`)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []driver.Count
	for rows.Next() {
		var c driver.Count
		var n int64
		if err := rows.Scan(&c.Backend, &c.Status, &n); err != nil {
			return nil, err
		}
		c.N = int(n)
		out = append(out, c)
	}
	return out, rows.Err()
}

// Select returns the matching rows in table order.
func (s *Store) Select(ctx context.Context, f driver.Filter) ([]driver.Job, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.ready(); err != nil {
		return nil, err
	}
	conds := []string{"true"}
	var args []any
	if len(f.Statuses) > 0 {
		marks := make([]string, len(f.Statuses))
		for i, st := range f.Statuses {
			marks[i] = "?"
			args = append(args, string(st))
		}
		conds = append(conds, "status IN ("+strings.Join(marks, ", ")+")")
	}
	if f.Backend != "" {
		conds = append(conds, "backend_name = ?")
		args = append(args, f.Backend)
	}
	if f.DownloadPending {
		conds = append(conds, "download_pending")
	}
	tail := "WHERE " + strings.Join(conds, " AND ") + " ORDER BY " + keyColumn
	if f.Limit > 0 {
		tail += fmt.Sprintf(" LIMIT %d", f.Limit)
	}
	return s.query(ctx, tail, args...)
}

// Get returns one row.
func (s *Store) Get(ctx context.Context, key int64) (driver.Job, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.ready(); err != nil {
		return driver.Job{}, err
	}
	return s.get(ctx, key)
}

func (s *Store) get(ctx context.Context, key int64) (driver.Job, error) {
	jobs, err := s.query(ctx, "WHERE "+keyColumn+" = ?", key)
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
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.writable(); err != nil {
		return err
	}
	if _, err := retryConflicts(func() (struct{}, error) { return struct{}{}, s.update(ctx, updates) }); err != nil {
		return err
	}
	return s.changed(ctx)
}

func (s *Store) update(ctx context.Context, updates []driver.Update) error {
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	defer tx.Rollback()
	for _, u := range updates {
		set, args, err := sqlbuild.SetClause(u.Set)
		if err != nil {
			return fmt.Errorf("row %d: %w", u.Key, err)
		}
		var cur sql.NullString
		err = tx.QueryRowContext(ctx, "SELECT status FROM jobs WHERE "+keyColumn+" = ?", u.Key).Scan(&cur)
		if errors.Is(err, sql.ErrNoRows) {
			return fmt.Errorf("row %d: %w", u.Key, driver.ErrNotFound)
		}
		if err != nil {
			return err
		}
		if len(u.From) > 0 && !containsStatus(u.From, cur.String) {
			return fmt.Errorf("row %d: status not in %v: %w", u.Key, u.From, driver.ErrConflict)
		}
		if _, err := tx.ExecContext(ctx, "UPDATE jobs SET "+set+" WHERE "+keyColumn+" = ?", append(args, u.Key)...); err != nil {
			return fmt.Errorf("row %d: %w", u.Key, err)
		}
	}
	return tx.Commit()
}

func containsStatus(list []driver.Status, s string) bool {
	for _, st := range list {
		if string(st) == s {
			return true
		}
	}
	return false
}

// Claim takes the first not_started row.
func (s *Store) Claim(ctx context.Context, set driver.Values) (driver.Job, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.writable(); err != nil {
		return driver.Job{}, err
	}
	clause, args, err := sqlbuild.SetClause(set)
	if err != nil {
		return driver.Job{}, err
	}
	key, err := retryConflicts(func() (int64, error) {
		var key int64
		err := s.db.QueryRowContext(ctx, "UPDATE jobs SET "+clause+" WHERE "+keyColumn+
			" = (SELECT min("+keyColumn+") FROM jobs WHERE status = 'not_started') RETURNING "+keyColumn, args...).Scan(&key)
		return key, err
	})
	if errors.Is(err, sql.ErrNoRows) {
		return driver.Job{}, fmt.Errorf("no not_started row: %w", driver.ErrNotFound)
	}
	if err != nil {
		return driver.Job{}, err
	}
	if err := s.changed(ctx); err != nil {
		return driver.Job{}, err
	}
	return s.get(ctx, key)
}
