// Package csvfile stores the job table in a CSV file as the openEO Python
// client writes it (pandas to_csv): a header line, one row per job, cells
// quoted only when needed, floats with a decimal point, empty cells for
// missing values. Cells are kept as they were read, so reading and writing a
// table without changes gives back the same values.
//
// Rewriting a CSV file costs time in proportion to its size, so changes are
// appended to a journal beside it (path + ".journal", one JSON line each,
// synced) and folded into the CSV file, rewritten atomically (temporary
// file, sync, rename, sync of the folder), on Flush (driver.Flusher: the
// manager calls it once per tracking cycle) and at Close. Opening a table
// replays its journal: a crash loses nothing. The journal names the
// version of the CSV file it applies to, and is not replayed onto another.
// A lock file (path + ".lock") keeps a second process from writing the
// table; a process that cannot get it opens the table read-only.
package csvfile

import (
	"bufio"
	"bytes"
	"context"
	"encoding/csv"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"iter"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"time"

	"github.com/gofrs/flock"

	"github.com/openeo-batch/worker/driver"
	"github.com/openeo-batch/worker/driver/internal/fingerprint"
)

func init() {
	driver.Register(driver.Driver{
		Name:       "csv",
		Extensions: []string{".csv"},
		Open: func(ctx context.Context, path string) (driver.Store, error) {
			return Open(ctx, path)
		},
		OpenReader: func(ctx context.Context, path string) (driver.Store, error) {
			return OpenReader(ctx, path)
		},
		Remove: Remove,
	})
}

// Remove removes the table at path with its journal and lock file.
func Remove(path string) error {
	var errs []error
	for _, f := range []string{path, path + ".journal", path + ".lock"} {
		if err := os.Remove(f); err != nil && !errors.Is(err, os.ErrNotExist) {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// ErrReadOnly means another process holds the table's lock.
var ErrReadOnly = errors.New("the table is locked by another process: opened read-only")

type row struct {
	cells []string // one per header column, as in the file
	data  map[string]any
}

// Store is a job table in a CSV file.
type Store struct {
	path string

	mu      sync.Mutex
	lock    *flock.Flock // nil when read-only
	header  []string
	col     map[string]int
	user    []string
	rows    []row // key = index + 1
	journal *os.File
	dirty   bool
	closed  bool

	// counts is rows per back-end and status, nil until Counts first
	// runs; apply keeps it. free is where Claim starts looking: no row
	// before it is not_started.
	counts map[group]int
	free   int

	// loaded is the fingerprint of the CSV file as read or last written.
	loaded string
}

// group is one line of Counts.
type group struct {
	backend string
	status  driver.Status
}

var (
	_ driver.Store        = (*Store)(nil)
	_ driver.Flusher      = (*Store)(nil)
	_ driver.WriteChecker = (*Store)(nil)
)

// Open opens the table at path (it need not exist yet: Init creates it).
func Open(ctx context.Context, path string) (*Store, error) {
	return open(path, true)
}

// OpenReader opens the table read-only without trying for its lock, so
// that reading it never keeps a writer out. A journal a run is writing
// (or a killed run left) is read too.
func OpenReader(ctx context.Context, path string) (*Store, error) {
	return open(path, false)
}

func open(path string, write bool) (*Store, error) {
	s := &Store{path: path}
	if write {
		// The kernel (or Windows) drops the lock when the process ends,
		// however it ends. A lock that cannot be had opens read-only.
		lf := flock.New(path+".lock", flock.SetPermissions(0o644))
		if ok, err := lf.TryLock(); err == nil && ok {
			s.lock = lf
		}
	}
	err := s.load()
	// A reader can load the file, then find the journal of the rewrite
	// that followed: read both again.
	for try := 0; errors.Is(err, errRewritten) && s.lock == nil && try < 20; try++ {
		time.Sleep(10 * time.Millisecond)
		*s = Store{path: path}
		err = s.load()
	}
	if err != nil {
		s.Close()
		return nil, err
	}
	return s, nil
}

// errRewritten means the journal belongs to another version of the file.
var errRewritten = errors.New("rewritten")

func (s *Store) load() error {
	f, err := os.Open(s.path)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	defer f.Close()
	fp := fingerprint.New()
	r := csv.NewReader(bufio.NewReader(io.TeeReader(f, fp)))
	header, err := r.Read()
	if errors.Is(err, io.EOF) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("%s: %w", s.path, err)
	}
	if len(header) > 0 && len(header[0]) >= 3 && header[0][:3] == "\xef\xbb\xbf" {
		header[0] = header[0][3:]
	}
	var records [][]string
	for {
		rec, err := r.Read()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return fmt.Errorf("%s: %w", s.path, err)
		}
		records = append(records, rec)
	}
	s.loaded = fp.String() // the whole file has been read
	if err := s.setHeader(header); err != nil {
		return fmt.Errorf("%s: %w", s.path, err)
	}
	s.rows = make([]row, len(records))
	for i, rec := range records {
		s.rows[i].cells = s.widen(rec)
		if v := rec[s.col[driver.ColStatus]:]; s.col[driver.ColStatus] < len(rec) && len(v) > 0 {
			if _, err := driver.ParseStatus(v[0]); err != nil {
				return fmt.Errorf("%s: row %d, column %q: %w", s.path, i+1, driver.ColStatus, err)
			}
		}
	}
	s.typeUserColumns()
	return s.replay()
}

// setHeader takes the file's columns and appends the manager columns it lacks.
func (s *Store) setHeader(header []string) error {
	s.header = slices.Clone(header)
	s.col = map[string]int{}
	s.user = nil
	for i, c := range header {
		if _, dup := s.col[c]; dup {
			return fmt.Errorf("column %q appears twice", c)
		}
		s.col[c] = i
		if _, manager := driver.ManagerColumn(c); !manager {
			s.user = append(s.user, c)
		}
	}
	for _, c := range driver.ManagerColumns() {
		if _, ok := s.col[c.Name]; !ok {
			s.col[c.Name] = len(s.header)
			s.header = append(s.header, c.Name)
		}
	}
	return nil
}

func (s *Store) widen(rec []string) []string {
	cells := make([]string, len(s.header))
	copy(cells, rec)
	return cells
}

// typeUserColumns types the user's cells column by column.
func (s *Store) typeUserColumns() {
	column := make([]string, len(s.rows))
	for i := range s.rows {
		s.rows[i].data = make(map[string]any, len(s.user))
	}
	for _, c := range s.user {
		for i := range s.rows {
			column[i] = s.rows[i].cells[s.col[c]]
		}
		for i, v := range Infer(column) {
			s.rows[i].data[c] = v
		}
	}
}

// entry is one journal line: the cells to set in the row with key K.
type entry struct {
	K int64             `json:"k"`
	S map[string]string `json:"s"`
	// A journal's first line names the CSV file it changes (Base); a
	// rewrite names the file it is about to publish (Publish). Neither
	// carries a change.
	Base    string `json:"base,omitempty"`
	Publish string `json:"publish,omitempty"`
}

func (s *Store) replay() error {
	b, err := os.ReadFile(s.path + ".journal")
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	var changes []entry
	base := ""
	lines := bytes.Split(b, []byte("\n"))
	for i, line := range lines {
		if len(bytes.TrimSpace(line)) == 0 {
			continue
		}
		var e entry
		if err := json.Unmarshal(line, &e); err != nil {
			if i == len(lines)-1 {
				break // a line cut by a crash: its change never completed
			}
			return fmt.Errorf("%s.journal: line %d: %w", s.path, i+1, err)
		}
		switch {
		case e.Base != "":
			base = e.Base
		case e.Publish != "":
			if e.Publish == s.loaded {
				// The rewrite happened and holds every change so far.
				base, changes = e.Publish, nil
			}
		default:
			if e.K < 1 || int(e.K) > len(s.rows) {
				return fmt.Errorf("%s.journal: line %d: no row %d", s.path, i+1, e.K)
			}
			changes = append(changes, e)
		}
	}
	if base != "" && base != s.loaded && len(changes) > 0 {
		// Someone rewrote the table (the Python client resuming it, an
		// editor) after the run that wrote this journal stopped: its row
		// numbers may no longer be the same rows.
		return fmt.Errorf("%s was rewritten after the run that left %s.journal stopped, and the journal's %d changes "+
			"were never written to it; nothing was changed. To go on from %s as it is now, remove %s.journal (%w)",
			s.path, s.path, len(changes), s.path, s.path, errRewritten)
	}
	for _, e := range changes {
		for c, v := range e.S {
			if idx, ok := s.col[c]; ok {
				s.rows[e.K-1].cells[idx] = v
			}
		}
		s.dirty = true
	}
	switch {
	case s.lock == nil:
		return nil
	case s.dirty:
		return s.flushLocked()
	default: // no change left to fold in (a crash right after a rewrite)
		return os.Remove(s.path + ".journal")
	}
}

// Close writes what is pending and releases the lock.
func (s *Store) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return nil
	}
	s.closed = true
	var err error
	if s.lock != nil && s.dirty {
		err = s.flushLocked()
	}
	if s.journal != nil {
		s.journal.Close()
	}
	if s.lock != nil {
		s.lock.Close() // releases the lock
	}
	return err
}

// flushLocked rewrites the CSV file atomically and empties the journal.
func (s *Store) flushLocked() error {
	// Before the new file replaces the old one, the journal names it: a
	// crash between the rename and the journal's removal leaves a journal
	// whose changes the file already holds.
	var written string
	publish := func(fp string) error {
		written = fp
		if s.journal == nil {
			return nil
		}
		b, _ := json.Marshal(entry{Publish: fp})
		if _, err := s.journal.Write(append(b, '\n')); err != nil {
			return err
		}
		return s.journal.Sync()
	}
	if err := writeAtomic(s.path, publish, func(w io.Writer) error {
		cw := csv.NewWriter(w)
		if err := cw.Write(s.header); err != nil {
			return err
		}
		for _, r := range s.rows {
			if err := cw.Write(r.cells); err != nil {
				return err
			}
		}
		cw.Flush()
		return cw.Error()
	}); err != nil {
		return fmt.Errorf("write %s: %w", s.path, err)
	}
	if s.journal != nil {
		s.journal.Close()
		s.journal = nil
	}
	if err := os.Remove(s.path + ".journal"); err != nil && !errors.Is(err, os.ErrNotExist) {
		return err
	}
	s.dirty, s.loaded = false, written
	return nil
}

// writeAtomic writes a file through write into a temporary file beside
// path, syncs it, tells ready its fingerprint, then renames it over path
// and syncs the folder.
func writeAtomic(path string, ready func(fp string) error, write func(io.Writer) error) error {
	dir := filepath.Dir(path)
	f, err := os.CreateTemp(dir, "."+filepath.Base(path)+".*.tmp")
	if err != nil {
		return err
	}
	defer os.Remove(f.Name())
	fp := fingerprint.New()
	bw := bufio.NewWriterSize(io.MultiWriter(f, fp), 1<<20)
	err = write(bw)
	if err == nil {
		err = bw.Flush()
	}
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return err
	}
	if ready != nil {
		if err := ready(fp.String()); err != nil {
			return err
		}
	}
	if err := os.Rename(f.Name(), path); err != nil {
		return err
	}
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}

func (s *Store) ready() error {
	if s.closed {
		return driver.ErrClosed
	}
	if s.header == nil {
		return fmt.Errorf("%s: %w", s.path, driver.ErrNoTable)
	}
	return nil
}

// Writable returns nil when the store takes writes, else why not: no
// table, closed, or opened read-only while another process writes it.
func (s *Store) Writable() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.writable()
}

func (s *Store) writable() error {
	if err := s.ready(); err != nil {
		return err
	}
	if s.lock == nil {
		return fmt.Errorf("%s: %w", s.path, ErrReadOnly)
	}
	return nil
}

// Init writes a new table.
func (s *Store) Init(ctx context.Context, columns []string, rows iter.Seq2[[]any, error]) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return driver.ErrClosed
	}
	if s.header != nil {
		return fmt.Errorf("%s: %w", s.path, driver.ErrExists)
	}
	if s.lock == nil {
		return fmt.Errorf("%s: %w", s.path, ErrReadOnly)
	}
	if _, err := driver.SplitColumns(columns); err != nil {
		return err
	}
	if err := s.setHeader(columns); err != nil {
		s.header = nil
		return err
	}
	var out []row
	n := 0
	for vals, err := range rows {
		n++
		if err != nil {
			s.header = nil
			return err
		}
		if len(vals) != len(columns) {
			s.header = nil
			return fmt.Errorf("row %d: %d values for %d columns", n, len(vals), len(columns))
		}
		cells := make([]string, len(s.header))
		for i, c := range columns {
			v := vals[i]
			if _, manager := driver.ManagerColumn(c); manager {
				nv, err := driver.Normalize(c, v)
				if err != nil {
					s.header = nil
					return fmt.Errorf("row %d, %w", n, err)
				}
				v = nv
			}
			cells[i] = Format(v)
		}
		if cells[s.col[driver.ColStatus]] == "" {
			cells[s.col[driver.ColStatus]] = string(driver.NotStarted)
		}
		out = append(out, row{cells: cells})
	}
	s.rows = out
	s.typeUserColumns()
	if err := s.flushLocked(); err != nil {
		s.header, s.rows = nil, nil
		return err
	}
	return nil
}

// Columns returns the user's column names in table order.
func (s *Store) Columns(ctx context.Context) ([]string, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.ready(); err != nil {
		return nil, err
	}
	return slices.Clone(s.user), nil
}

func (s *Store) job(key int64) (driver.Job, error) {
	r := s.rows[key-1]
	j := driver.Job{Key: key, Data: make(map[string]any, len(r.data))}
	for k, v := range r.data {
		j.Data[k] = v
	}
	for _, c := range driver.ManagerColumns() {
		v, err := driver.Normalize(c.Name, r.cells[s.col[c.Name]])
		if err != nil {
			return driver.Job{}, fmt.Errorf("%s: row %d, %w", s.path, key, err)
		}
		j.Assign(c.Name, v)
	}
	return j, nil
}

func (s *Store) status(i int) driver.Status {
	st := driver.Status(s.rows[i].cells[s.col[driver.ColStatus]])
	if st == "" {
		return driver.NotStarted
	}
	return st
}

// Counts counts rows per back-end and status.
func (s *Store) Counts(ctx context.Context) ([]driver.Count, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.ready(); err != nil {
		return nil, err
	}
	if s.counts == nil { // one pass over the rows; apply keeps it after
		s.counts = map[group]int{}
		for i := range s.rows {
			s.counts[s.group(i)]++
		}
	}
	out := make([]driver.Count, 0, len(s.counts))
	for g, n := range s.counts {
		out = append(out, driver.Count{Backend: g.backend, Status: g.status, N: n})
	}
	slices.SortFunc(out, func(a, b driver.Count) int {
		if a.Backend != b.Backend {
			return cmpStr(a.Backend, b.Backend)
		}
		return cmpStr(string(a.Status), string(b.Status))
	})
	return out, nil
}

func (s *Store) group(i int) group {
	return group{s.rows[i].cells[s.col[driver.ColBackend]], s.status(i)}
}

func cmpStr(a, b string) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

// Select returns the matching rows in table order.
func (s *Store) Select(ctx context.Context, f driver.Filter) ([]driver.Job, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.ready(); err != nil {
		return nil, err
	}
	var out []driver.Job
	for i := range s.rows {
		if len(f.Statuses) > 0 && !slices.Contains(f.Statuses, s.status(i)) {
			continue
		}
		if f.Backend != "" && s.rows[i].cells[s.col[driver.ColBackend]] != f.Backend {
			continue
		}
		if f.DownloadPending {
			if v, _ := driver.Normalize(driver.ColDownloadPending, s.rows[i].cells[s.col[driver.ColDownloadPending]]); v != true {
				continue
			}
		}
		j, err := s.job(int64(i + 1))
		if err != nil {
			return nil, err
		}
		out = append(out, j)
		if f.Limit > 0 && len(out) == f.Limit {
			break
		}
	}
	return out, nil
}

// Get returns one row.
func (s *Store) Get(ctx context.Context, key int64) (driver.Job, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.ready(); err != nil {
		return driver.Job{}, err
	}
	if key < 1 || int(key) > len(s.rows) {
		return driver.Job{}, fmt.Errorf("row %d: %w", key, driver.ErrNotFound)
	}
	return s.job(key)
}

// cellsOf checks and formats set as cells.
func cellsOf(set driver.Values) (map[string]string, error) {
	if err := driver.CheckValues(set); err != nil {
		return nil, err
	}
	if len(set) == 0 {
		return nil, errors.New("update sets no column")
	}
	out := make(map[string]string, len(set))
	for k, v := range set {
		out[k] = Format(v)
	}
	return out, nil
}

// apply journals and applies changes; the caller holds s.mu and checked them.
func (s *Store) apply(entries []entry) error {
	var buf bytes.Buffer
	if s.journal == nil {
		f, err := os.OpenFile(s.path+".journal", os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
		if err != nil {
			return err
		}
		s.journal = f
		b, _ := json.Marshal(entry{Base: s.loaded})
		buf.Write(b)
		buf.WriteByte('\n')
	}
	for _, e := range entries {
		b, err := json.Marshal(e)
		if err != nil {
			return err
		}
		buf.Write(b)
		buf.WriteByte('\n')
	}
	if _, err := s.journal.Write(buf.Bytes()); err != nil {
		return err
	}
	if err := s.journal.Sync(); err != nil {
		return err
	}
	for _, e := range entries {
		i := int(e.K - 1)
		before := s.group(i)
		for c, v := range e.S {
			s.rows[i].cells[s.col[c]] = v
		}
		after := s.group(i)
		if s.counts != nil && after != before {
			if s.counts[before]--; s.counts[before] <= 0 {
				delete(s.counts, before)
			}
			s.counts[after]++
		}
		if after.status == driver.NotStarted {
			s.free = min(s.free, i)
		}
	}
	s.dirty = true
	return nil
}

// Flush rewrites the CSV file if the table changed since it was written.
func (s *Store) Flush(ctx context.Context) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return driver.ErrClosed
	}
	if !s.dirty || s.lock == nil {
		return nil
	}
	return s.flushLocked()
}

// Update applies updates atomically: all are checked, then journaled in
// one write.
func (s *Store) Update(ctx context.Context, updates ...driver.Update) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.writable(); err != nil {
		return err
	}
	entries := make([]entry, 0, len(updates))
	for _, u := range updates {
		if u.Key < 1 || int(u.Key) > len(s.rows) {
			return fmt.Errorf("row %d: %w", u.Key, driver.ErrNotFound)
		}
		if len(u.From) > 0 && !slices.Contains(u.From, s.status(int(u.Key-1))) {
			return fmt.Errorf("row %d: status not in %v: %w", u.Key, u.From, driver.ErrConflict)
		}
		cells, err := cellsOf(u.Set)
		if err != nil {
			return fmt.Errorf("row %d: %w", u.Key, err)
		}
		entries = append(entries, entry{K: u.Key, S: cells})
	}
	return s.apply(entries)
}

// Claim takes the first not_started row.
func (s *Store) Claim(ctx context.Context, set driver.Values) (driver.Job, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.writable(); err != nil {
		return driver.Job{}, err
	}
	cells, err := cellsOf(set)
	if err != nil {
		return driver.Job{}, err
	}
	for i := s.free; i < len(s.rows); i++ {
		if s.status(i) == driver.NotStarted {
			s.free = i + 1 // unless apply finds the row still not_started
			if err := s.apply([]entry{{K: int64(i + 1), S: cells}}); err != nil {
				s.free = i
				return driver.Job{}, err
			}
			return s.job(int64(i + 1))
		}
	}
	s.free = len(s.rows)
	return driver.Job{}, fmt.Errorf("no not_started row: %w", driver.ErrNotFound)
}
