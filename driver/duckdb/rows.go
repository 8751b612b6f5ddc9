package duckdb

import (
	"cmp"
	"context"
	"database/sql"
	"errors"
	"fmt"
	"math/big"
	"slices"
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

// group is one line of Counts.
type group struct{ backend, status string }

// Counts counts rows per back-end and status. The first call counts the
// table; the store is its only writer, so it then keeps the counts itself
// as rows change: a scan of a million rows takes 20 ms, the map none.
func (s *Store) Counts(ctx context.Context) ([]driver.Count, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.ready(); err != nil {
		return nil, err
	}
	if s.counts == nil {
		if err := s.loadCounts(ctx); err != nil {
			return nil, err
		}
	}
	out := make([]driver.Count, 0, len(s.counts))
	for g, n := range s.counts {
		out = append(out, driver.Count{Backend: g.backend, Status: driver.Status(g.status), N: n})
	}
	slices.SortFunc(out, func(a, b driver.Count) int {
		return cmp.Or(cmp.Compare(a.Backend, b.Backend), cmp.Compare(a.Status, b.Status))
	})
	return out, nil
}

func (s *Store) loadCounts(ctx context.Context) error {
	rows, err := s.db.QueryContext(ctx, `SELECT coalesce(backend_name, ''), status, count(*) FROM jobs GROUP BY ALL`)
	if err != nil {
		return err
	}
	defer rows.Close()
	counts := map[group]int{}
	for rows.Next() {
		var g group
		var n int64
		if err := rows.Scan(&g.backend, &g.status, &n); err != nil {
			return err
		}
		counts[g] = int(n)
	}
	if err := rows.Err(); err != nil {
		return err
	}
	s.counts = counts
	return nil
}

// moved records rows that changed group, once their change is committed.
func (s *Store) moved(moves [][2]group) {
	if s.counts == nil {
		return
	}
	for _, m := range moves {
		if m[0] == m[1] {
			continue
		}
		s.counts[m[0]]--
		if s.counts[m[0]] <= 0 {
			delete(s.counts, m[0])
		}
		s.counts[m[1]]++
	}
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
	// The keys first, then their rows: sorting only the keys is 20 times
	// faster than sorting whole rows (3 against 70 ms over 100k rows).
	keys := "SELECT " + keyColumn + " FROM jobs WHERE " + strings.Join(conds, " AND ") + " ORDER BY " + keyColumn
	if f.Limit > 0 {
		keys += fmt.Sprintf(" LIMIT %d", f.Limit)
	}
	return s.query(ctx, "WHERE "+keyColumn+" IN ("+keys+") ORDER BY "+keyColumn, args...)
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
	if err := s.update(ctx, updates); err != nil {
		return err
	}
	s.dirty = true
	return nil
}

func (s *Store) update(ctx context.Context, updates []driver.Update) error {
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	defer tx.Rollback()
	moves := make([][2]group, 0, len(updates))
	for _, u := range updates {
		set, args, err := sqlbuild.SetClause(u.Set)
		if err != nil {
			return fmt.Errorf("row %d: %w", u.Key, err)
		}
		var m [2]group
		err = tx.QueryRowContext(ctx, "SELECT coalesce(backend_name, ''), status FROM jobs WHERE "+keyColumn+" = ?", u.Key).Scan(&m[0].backend, &m[0].status)
		if errors.Is(err, sql.ErrNoRows) {
			return fmt.Errorf("row %d: %w", u.Key, driver.ErrNotFound)
		}
		if err != nil {
			return err
		}
		if len(u.From) > 0 && !containsStatus(u.From, m[0].status) {
			return fmt.Errorf("row %d: status not in %v: %w", u.Key, u.From, driver.ErrConflict)
		}
		err = tx.QueryRowContext(ctx, "UPDATE jobs SET "+set+" WHERE "+keyColumn+" = ? RETURNING coalesce(backend_name, ''), status", append(args, u.Key)...).Scan(&m[1].backend, &m[1].status)
		if err != nil {
			return fmt.Errorf("row %d: %w", u.Key, err)
		}
		moves = append(moves, m)
	}
	if err := tx.Commit(); err != nil {
		return err
	}
	s.moved(moves)
	return nil
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
	key, err := s.claim(ctx, clause, args)
	if errors.Is(err, sql.ErrNoRows) {
		return driver.Job{}, fmt.Errorf("no not_started row: %w", driver.ErrNotFound)
	}
	if err != nil {
		return driver.Job{}, err
	}
	s.dirty = true
	return s.get(ctx, key)
}

// claim sets the first not_started row and returns its key.
func (s *Store) claim(ctx context.Context, clause string, args []any) (int64, error) {
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return 0, err
	}
	defer tx.Rollback()
	var key int64
	m := [2]group{{status: string(driver.NotStarted)}}
	err = tx.QueryRowContext(ctx, "SELECT "+keyColumn+", coalesce(backend_name, '') FROM jobs WHERE status = 'not_started' ORDER BY "+keyColumn+" LIMIT 1").Scan(&key, &m[0].backend)
	if err != nil {
		return 0, err
	}
	err = tx.QueryRowContext(ctx, "UPDATE jobs SET "+clause+" WHERE "+keyColumn+" = ? RETURNING coalesce(backend_name, ''), status", append(args, key)...).Scan(&m[1].backend, &m[1].status)
	if err != nil {
		return 0, err
	}
	if err := tx.Commit(); err != nil {
		return 0, err
	}
	s.moved([][2]group{m})
	return key, nil
}
