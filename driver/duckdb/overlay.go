package duckdb

import (
	"bytes"
	"cmp"
	"context"
	sqldriver "database/sql/driver"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"os"
	"slices"
	"strings"

	duckdbgo "github.com/duckdb/duckdb-go/v2"

	"github.com/openeo-batch/worker/driver"
	"github.com/openeo-batch/worker/driver/internal/crashpoint"
	"github.com/openeo-batch/worker/driver/internal/sqlbuild"
)

// A DuckDB statement costs 0.1 to 0.3 ms of CPU however small, and a
// commit to the work file another 0.4 ms: written through one by one,
// the five to eight changes a job's row goes through made a Parquet run
// cost six times the CPU of a CSV run (issue 10). So the store keeps the
// rows it changed in memory (cache) and each change in a journal beside
// the work file (work + ".journal", one JSON line per call, synced before
// the call returns), and writes them into the work file in one
// transaction per Flush, before it publishes the snapshot. Opening a work
// file a crash left replays its journal first. A journal line repeats
// values, never adds to them, so a line replayed onto a work file that
// already holds it changes nothing.

// cached is a row the store changed this session: job is the row as it is
// now; set, when not nil, the changes the work file does not hold yet,
// merged (a later value of a column replaces an earlier one).
type cached struct {
	job driver.Job
	set driver.Values
}

// journalName is the journal of the work file work.
func journalName(work string) string { return work + ".journal" }

// journalEntry is one row's change in a journal line.
type journalEntry struct {
	Key int64          `json:"k"`
	Set map[string]any `json:"s"`
}

// current returns the row with key as it is now, from the cache or the
// work file, and whether the cache has it.
func (s *Store) current(ctx context.Context, key int64) (driver.Job, error) {
	if c, ok := s.cache[key]; ok {
		return c.job, nil
	}
	for _, j := range s.cands {
		if j.Key == key {
			return j, nil
		}
	}
	return s.stored(ctx, key)
}

// stored reads the row with key from the work file.
func (s *Store) stored(ctx context.Context, key int64) (driver.Job, error) {
	jobs, err := s.query(ctx, "WHERE "+keyColumn+" = ?", key)
	if err != nil {
		return driver.Job{}, err
	}
	if len(jobs) == 0 {
		return driver.Job{}, fmt.Errorf("row %d: %w", key, driver.ErrNotFound)
	}
	return jobs[0], nil
}

// change records set on row j (as it is now) in the cache and the counts.
// set holds normalized values (driver.CheckValues).
func (s *Store) change(j driver.Job, set driver.Values) driver.Job {
	c, ok := s.cache[j.Key]
	if !ok {
		s.uncache(j, -1)
		c = &cached{job: j}
		c.job.Data = maps.Clone(j.Data)
		s.cache[j.Key] = c
	}
	old := groupOf(c.job)
	if c.set == nil {
		c.set = driver.Values{}
	}
	for name, v := range set {
		c.job.Assign(name, v)
		c.set[name] = v
	}
	s.moved([][2]group{{old, groupOf(c.job)}})
	s.dirty = true
	return cloneJob(c.job)
}

func groupOf(j driver.Job) group { return group{j.Backend, string(j.Status)} }

func cloneJob(j driver.Job) driver.Job {
	j.Data = maps.Clone(j.Data)
	if j.Costs != nil {
		c := *j.Costs
		j.Costs = &c
	}
	return j
}

// record appends one call's changes to the journal and syncs it: once it
// returns, the changes survive a crash.
func (s *Store) record(entries []journalEntry) error {
	line, err := json.Marshal(entries)
	if err != nil {
		return err
	}
	if s.journal == nil {
		f, err := os.OpenFile(journalName(s.work), os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o600)
		if err != nil {
			return err
		}
		s.journal = f
	}
	end, err := s.journal.Seek(0, io.SeekEnd)
	if err != nil {
		return fmt.Errorf("%s: %w", s.journal.Name(), err)
	}
	_, err = s.journal.Write(append(line, '\n'))
	if err == nil {
		err = s.journal.Sync()
	}
	if err != nil {
		// A line written in part (a full disk) would run into the next
		// one, and the journal would no longer read: cut it off.
		s.journal.Truncate(end)
		return fmt.Errorf("%s: %w", s.journal.Name(), err)
	}
	crashpoint.Hit("duckdb: change journaled")
	return nil
}

// replay folds the journal a crashed process left into the work file. A
// last line cut short by the crash is a call that never returned: left
// out. Any other line that does not read is an error naming it.
func (s *Store) replay(ctx context.Context) error {
	name := journalName(s.work)
	data, err := os.ReadFile(name)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	lines := bytes.Split(data, []byte("\n"))
	lines = lines[:len(lines)-1] // the text after the last newline: empty, or cut short
	for i, line := range lines {
		var entries []journalEntry
		if err := json.Unmarshal(line, &entries); err != nil {
			return fmt.Errorf("%s: line %d: %w; remove the journal to go on from %s without its changes", name, i+1, err, s.work)
		}
		for _, e := range entries {
			set := driver.Values(e.Set)
			if err := driver.CheckValues(set); err != nil {
				return fmt.Errorf("%s: line %d: %w", name, i+1, err)
			}
			j, err := s.current(ctx, e.Key)
			if err != nil {
				return fmt.Errorf("%s: line %d: %w", name, i+1, err)
			}
			s.change(j, set)
		}
	}
	if len(s.cache) == 0 {
		return s.truncateJournal()
	}
	return s.apply(ctx)
}

// apply writes the cached changes into the work file in one transaction,
// then empties the journal. Rows no longer active and with nothing to
// download leave the cache: the manager seldom comes back to them.
func (s *Store) apply(ctx context.Context) error {
	if s.readOnly {
		return nil
	}
	var changed []*cached
	for _, c := range s.cache {
		if c.set != nil {
			changed = append(changed, c)
		}
	}
	if len(changed) > 0 {
		slices.SortFunc(changed, func(a, b *cached) int { return cmp.Compare(a.job.Key, b.job.Key) })
		if err := s.write(ctx, changed); err != nil {
			return fmt.Errorf("%s: %w", s.work, err)
		}
		crashpoint.Hit("duckdb: journal applied, not emptied")
	}
	dirty := len(changed) > 0
	// Read-ahead rows the cache took over may be stored otherwise now.
	s.cands = slices.DeleteFunc(s.cands, func(j driver.Job) bool { return s.cache[j.Key] != nil })
	for key, c := range s.cache {
		c.set = nil
		// not_started rows stay: claims find them here, not among the
		// rows read ahead.
		if !c.job.Status.Active() && !c.job.DownloadPending && c.job.Status != driver.NotStarted {
			delete(s.cache, key)
			s.uncache(c.job, +1)
		}
	}
	if !dirty {
		return nil
	}
	return s.truncateJournal()
}

// write writes rows' cached changes into the work file: the rows go
// through DuckDB's query appender, which runs one UPDATE over them (a
// DuckDB UPDATE costs milliseconds of CPU however few its rows, and
// binding parameters more). Each row comes with a mask of the columns it
// changed; the others keep their stored value, so that a value the user
// wrote stays as written. Several UPDATEs (a large batch) need not commit
// together: the journal is emptied only after all of them.
func (s *Store) write(ctx context.Context, rows []*cached) error {
	var cols []driver.Column // those any row changed
	for _, mc := range driver.ManagerColumns() {
		for _, c := range rows {
			if _, ok := c.set[mc.Name]; ok {
				cols = append(cols, mc)
				break
			}
		}
	}
	set := make([]string, len(cols))
	names := []string{"k", "m"}
	types := []duckdbgo.Type{duckdbgo.TYPE_BIGINT, duckdbgo.TYPE_BIGINT}
	for i, mc := range cols {
		q := sqlbuild.Quote(mc.Name)
		set[i] = fmt.Sprintf("%s = CASE WHEN a.m & %d <> 0 THEN a.c%d ELSE jobs.%s END", q, 1<<i, i, q)
		names = append(names, fmt.Sprintf("c%d", i))
		types = append(types, map[driver.Kind]duckdbgo.Type{
			driver.Text: duckdbgo.TYPE_VARCHAR, driver.Real: duckdbgo.TYPE_DOUBLE,
			driver.Integer: duckdbgo.TYPE_BIGINT, driver.Bool: duckdbgo.TYPE_BOOLEAN,
		}[mc.Kind])
	}
	infos := make([]duckdbgo.TypeInfo, len(types))
	for i, t := range types {
		info, err := duckdbgo.NewTypeInfo(t)
		if err != nil {
			return err
		}
		infos[i] = info
	}
	q := fmt.Sprintf("UPDATE jobs SET %s FROM appended_data a WHERE jobs.%s = a.k", strings.Join(set, ", "), keyColumn)
	conn, err := s.db.Conn(ctx)
	if err != nil {
		return err
	}
	defer conn.Close()
	return conn.Raw(func(dc any) error {
		app, err := duckdbgo.NewQueryAppender(dc.(sqldriver.Conn), q, "", infos, names)
		if err != nil {
			return err
		}
		args := make([]sqldriver.Value, len(names))
		for _, c := range rows {
			var mask int64
			for i, mc := range cols {
				v, ok := c.set[mc.Name]
				if ok {
					mask |= 1 << i
				}
				args[2+i] = v
			}
			args[0], args[1] = c.job.Key, mask
			if err := app.AppendRow(args...); err != nil {
				app.Close()
				return err
			}
		}
		return app.Close()
	})
}

// truncateJournal empties the journal once the work file holds its
// changes.
func (s *Store) truncateJournal() error {
	if s.journal == nil {
		err := os.Truncate(journalName(s.work), 0)
		if errors.Is(err, os.ErrNotExist) {
			return nil
		}
		return err
	}
	if err := s.journal.Truncate(0); err != nil {
		return err
	}
	return s.journal.Sync()
}

// closeJournal closes the journal and removes it; the work file holds its
// changes.
func (s *Store) closeJournal() error {
	if s.journal != nil {
		s.journal.Close()
		s.journal = nil
	}
	if err := os.Remove(journalName(s.work)); err != nil && !errors.Is(err, os.ErrNotExist) {
		return err
	}
	return nil
}

// candidateBatch is how many not_started rows a claim reads ahead.
const candidateBatch = 64

// nextCandidates reads the next not_started rows of the work file, after
// those read so far.
func (s *Store) nextCandidates(ctx context.Context) error {
	jobs, err := s.query(ctx, fmt.Sprintf("WHERE %s IN (SELECT %s FROM jobs WHERE status = 'not_started' AND %s > ? ORDER BY %s LIMIT %d) ORDER BY %s",
		keyColumn, keyColumn, keyColumn, keyColumn, candidateBatch, keyColumn), s.candsFrom)
	if err != nil {
		return err
	}
	if len(jobs) < candidateBatch {
		s.candsEnd = true
	}
	if len(jobs) > 0 {
		s.candsFrom = jobs[len(jobs)-1].Key
	}
	s.cands = append(s.cands, jobs...)
	return nil
}

// firstNotStarted returns the first not_started row in table order that
// backend may take (see Claim); ok is false when there is none.
func (s *Store) firstNotStarted(ctx context.Context, backend string) (driver.Job, bool, error) {
	fits := func(j driver.Job) bool {
		return j.Status == driver.NotStarted && (j.Backend == "" || backend == "" || j.Backend == backend)
	}
	// Rows the cache changed back to not_started (a failed start).
	var best driver.Job
	found := false
	for _, c := range s.cache {
		if fits(c.job) && (!found || c.job.Key < best.Key) {
			best, found = c.job, true
		}
	}
	// Rows the work file has not_started, read ahead in batches; a row
	// the cache changed is the cache's.
	for i := 0; ; i++ {
		if i == len(s.cands) {
			if s.candsEnd {
				break
			}
			if err := s.nextCandidates(ctx); err != nil {
				return driver.Job{}, false, err
			}
			if i == len(s.cands) {
				break
			}
		}
		j := s.cands[i]
		if found && j.Key > best.Key {
			break
		}
		if _, changed := s.cache[j.Key]; changed {
			continue
		}
		if fits(j) {
			best, found = j, true
			break
		}
	}
	// Drop the candidates the cache took over from the front.
	for len(s.cands) > 0 {
		if _, changed := s.cache[s.cands[0].Key]; !changed {
			break
		}
		s.cands = s.cands[1:]
	}
	return best, found, nil
}

// pgroup is a group of rows as a Select may ask for them.
type pgroup struct {
	backend, status string
	pending         bool
}

// uncache adds n to the count of rows like j that only the work file has.
func (s *Store) uncache(j driver.Job, n int) {
	if s.uncached == nil {
		return
	}
	g := pgroup{j.Backend, string(j.Status), j.DownloadPending}
	s.uncached[g] += n
	if s.uncached[g] == 0 {
		delete(s.uncached, g)
	}
}

// loadUncached counts the rows only the work file has, per group, once
// the work file holds every change; the store keeps the counts from then
// on.
func (s *Store) loadUncached(ctx context.Context) error {
	if err := s.apply(ctx); err != nil {
		return err
	}
	rows, err := s.db.QueryContext(ctx, `SELECT coalesce(backend_name, ''), status, coalesce(download_pending, false), count(*) FROM jobs GROUP BY ALL`)
	if err != nil {
		return err
	}
	defer rows.Close()
	counts := map[pgroup]int{}
	for rows.Next() {
		var g pgroup
		var n int64
		if err := rows.Scan(&g.backend, &g.status, &g.pending, &n); err != nil {
			return err
		}
		counts[g] = int(n)
	}
	if err := rows.Err(); err != nil {
		return err
	}
	s.uncached = counts
	for _, c := range s.cache {
		s.uncache(c.job, -1)
	}
	return nil
}

// workFileHas reports whether rows only the work file has may match f.
func (s *Store) workFileHas(ctx context.Context, f driver.Filter) (bool, error) {
	if s.uncached == nil {
		if err := s.loadUncached(ctx); err != nil {
			return false, err
		}
	}
	f.After = 0 // groups have no keys
	for g, n := range s.uncached {
		j := driver.Job{Backend: g.backend, Status: driver.Status(g.status), DownloadPending: g.pending}
		if n > 0 && matches(j, f) {
			return true, nil
		}
	}
	return false, nil
}
