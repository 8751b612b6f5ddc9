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
// manager calls it once per tracking cycle) and at Close, and within a
// second of a change that gives a row its job id (Options.PromptDelay).
// Opening a table replays its journal: a crash loses nothing. The journal
// names the version of the CSV file it applies to, and is not replayed
// onto another.
//
// The file never shows an active row without its job id, which the
// Python client, resuming the file alone, would track as job "nan" for
// ever: a row claimed whose job is being created is written not_started,
// and its claim stays in the journal for our next run.
// A lock file (path + ".lock") keeps a second process from writing the
// table; a process that cannot get it opens the table read-only. It
// exists while a writer has the table open, and after a crash (when it
// is stale and harmless: the lock is the kernel's, see tryLock).
package csvfile

import (
	"bytes"
	"context"
	"encoding/csv"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"iter"
	"log/slog"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/gofrs/flock"

	"github.com/openeo-batch/worker/driver"
	"github.com/openeo-batch/worker/driver/internal/crashpoint"
	"github.com/openeo-batch/worker/driver/internal/fingerprint"
	"github.com/openeo-batch/worker/internal/atomicfile"
	"github.com/openeo-batch/worker/internal/csvtext"
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

// Records, Infer and Format are the CSV cell rules the store follows
// (see package internal/csvtext), for callers that read or write such
// files themselves.
var (
	Records = csvtext.Records
	Infer   = csvtext.Infer
	Format  = csvtext.Format
)

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

	opts Options
	// promptStop cancels the rewrite scheduled for new job ids, nil when
	// none is; promptGen numbers the scheduled rewrites.
	promptStop func() bool
	promptGen  uint64
}

// Options tune a Store. The zero value gives the defaults.
type Options struct {
	// PromptDelay is how long a new job id may wait in the journal before
	// the file is rewritten to show it (1 s when zero). Other changes wait
	// for Flush, once per tracking cycle.
	PromptDelay time.Duration
	// AfterFunc runs f in its own goroutine once d has passed and returns
	// a function that cancels it, as time.AfterFunc (the default) does.
	// Tests give their own, to fire the rewrite when they choose.
	AfterFunc func(d time.Duration, f func()) (stop func() bool)

	// crashPoint, when set, is called at the instants of a rewrite a
	// crash test stops at: "published" (the journal names the new file,
	// not yet renamed) and "renamed" (before the journal is emptied).
	crashPoint func(stage string)
	// journalWrite, when set, is called with each write to the journal
	// before it is made: a crash test copies what a kill part way through
	// it leaves (a write of more than a page can stop between pages).
	journalWrite func(b []byte)
}

func (o Options) promptDelay() time.Duration {
	if o.PromptDelay <= 0 {
		return time.Second
	}
	return o.PromptDelay
}

func (o Options) afterFunc() func(time.Duration, func()) func() bool {
	if o.AfterFunc != nil {
		return o.AfterFunc
	}
	return func(d time.Duration, f func()) func() bool { return time.AfterFunc(d, f).Stop }
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
	return open(path, true, Options{})
}

// OpenWith is Open with options.
func OpenWith(ctx context.Context, path string, opts Options) (*Store, error) {
	return open(path, true, opts)
}

// OpenReader opens the table read-only without trying for its lock, so
// that reading it never keeps a writer out. A journal a run is writing
// (or a killed run left) is read too.
func OpenReader(ctx context.Context, path string) (*Store, error) {
	return open(path, false, Options{})
}

func open(path string, write bool, opts Options) (*Store, error) {
	s := &Store{path: path, opts: opts}
	createdLock := false
	if write {
		s.lock, createdLock = tryLock(path + ".lock")
	}
	err := s.load()
	// A reader can load the file, then find the journal of the rewrite
	// that followed: read both again.
	for try := 0; errors.Is(err, errRewritten) && s.lock == nil && try < 20; try++ {
		time.Sleep(10 * time.Millisecond)
		*s = Store{path: path, opts: opts}
		err = s.load()
	}
	if err != nil {
		if createdLock && s.lock != nil {
			// A table that cannot be opened leaves nothing behind (see
			// tryLock for why removing a lock file is safe).
			os.Remove(path + ".lock")
		}
		s.closed = true // nothing to flush: the table was not loaded
		if s.journal != nil {
			s.journal.Close()
		}
		if s.lock != nil {
			s.lock.Close()
		}
		return nil, err
	}
	if s.lock != nil {
		s.removeTemps()
	}
	return s, nil
}

// removeTemps removes the temporary files (atomicfile's ".<name>.*.tmp")
// that a rewrite of the table or of its journal, killed before its
// rename, left beside the table. Only the lock's holder rewrites, so none
// of them is being written.
func (s *Store) removeTemps() {
	dir, base := filepath.Split(s.path)
	entries, _ := os.ReadDir(filepath.Clean(dir + "."))
	for _, e := range entries {
		if n := e.Name(); strings.HasPrefix(n, "."+base+".") && strings.HasSuffix(n, ".tmp") && e.Type().IsRegular() {
			os.Remove(filepath.Join(dir, n))
		}
	}
}

// errRewritten means the journal belongs to another version of the file.
var errRewritten = errors.New("rewritten")

func (s *Store) load() error {
	data, err := os.ReadFile(s.path)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	recs, err := csvtext.Records(data)
	if err != nil {
		return driver.Invalid(fmt.Errorf("%s: %w", s.path, err))
	}
	if len(recs) == 0 {
		return nil
	}
	fp := fingerprint.New()
	fp.Write(data)
	header, records := recs[0], recs[1:]
	if len(header) > 0 && len(header[0]) >= 3 && header[0][:3] == "\xef\xbb\xbf" {
		header[0] = header[0][3:]
	}
	s.loaded = fp.String()
	if err := s.setHeader(header); err != nil {
		return driver.Invalid(fmt.Errorf("%s: %w", s.path, err))
	}
	s.rows = make([]row, len(records))
	for i, rec := range records {
		cells := s.widen(rec)
		if err := checkCells(cells, s.col); err != nil {
			return driver.Invalid(fmt.Errorf("%s: row %d, %w", s.path, i+1, err))
		}
		// As Init does, and as the Python client does for a table
		// without a status column: a row without a status is not_started.
		// Like the added columns, this reaches the file with the first
		// change: opening a table and changing nothing leaves it as it is.
		if st := &cells[s.col[driver.ColStatus]]; *st == "" {
			*st = string(driver.NotStarted)
		}
		s.rows[i].cells = cells
	}
	s.typeUserColumns()
	return s.replay()
}

// checkCells checks the manager columns of one row as Init does: a status
// the manager knows, a number in costs, a whole number in attempts, a
// boolean in download_pending. Cells are left as they are.
func checkCells(cells []string, col map[string]int) error {
	for _, c := range driver.ManagerColumns() {
		if v := cells[col[c.Name]]; v != "" {
			if _, err := driver.Normalize(c.Name, v); err != nil {
				return err
			}
		}
	}
	return nil
}

// setHeader checks the file's columns as Init does (none without a name,
// none twice) and appends the manager columns it lacks, as the Python
// client does when it reads a table.
func (s *Store) setHeader(header []string) error {
	if _, err := driver.SplitColumns(header); err != nil {
		return err
	}
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
		for i, v := range csvtext.Infer(column) {
			s.rows[i].data[c] = v
		}
	}
}

// entry is one journal line: the cells to set in the row with key K.
type entry struct {
	K int64             `json:"k"`
	S map[string]string `json:"s"`
	// B holds the cells that are not valid UTF-8, which a JSON string
	// cannot carry unchanged (base64 in the line); S the others.
	B map[string][]byte `json:"b,omitempty"`
	// A journal's first line names the CSV file it changes (Base); a
	// rewrite names the file it is about to publish (Publish). Neither
	// carries a change.
	Base    string `json:"base,omitempty"`
	Publish string `json:"publish,omitempty"`
	// N, on a publish line, is how many lines just before it, written
	// with it in one write, hold the claims the published file does not
	// show (the rows active without a job id). Journals of earlier
	// versions have no N and those lines after the publish line.
	N int `json:"n,omitempty"`
	// All holds the changes of an Update of several rows, in one line
	// (K is 0): a kill part way through its write leaves that line cut
	// short, and none of them is made.
	All []entry `json:"all,omitempty"`
}

// journalJobs names the back-end jobs that changes record (their ids, and
// the tags of jobs whose creation was under way), which a file rewritten
// by another program may not know: removing the journal forgets them, and
// a run would create their rows' jobs again. Empty when there are none.
func journalJobs(changes []entry) string {
	type job struct{ id, tag string }
	rows := map[int64]*job{}
	var order []int64
	for _, e := range changes {
		j := rows[e.K]
		if j == nil {
			j = &job{}
			rows[e.K] = j
			order = append(order, e.K)
		}
		if id, ok := e.S[driver.ColID]; ok {
			j.id = id
		}
		if tag, ok := e.S[driver.ColTag]; ok {
			j.tag = tag
		}
	}
	var ids, tags []string
	for _, k := range order {
		switch j := rows[k]; {
		case j.id != "":
			ids = append(ids, fmt.Sprintf("%s (row %d)", j.id, k))
		case j.tag != "":
			tags = append(tags, fmt.Sprintf("%s (row %d)", j.tag, k))
		}
	}
	if len(ids) == 0 && len(tags) == 0 {
		return ""
	}
	list := func(xs []string) string {
		if len(xs) > 10 {
			return strings.Join(xs[:10], ", ") + fmt.Sprintf(" and %d more", len(xs)-10)
		}
		return strings.Join(xs, ", ")
	}
	var b strings.Builder
	b.WriteString(" Only the journal knows these back-end jobs, which a run from the file as it is would create again:")
	if len(ids) > 0 {
		fmt.Fprintf(&b, " job ids %s;", list(ids))
	}
	if len(tags) > 0 {
		fmt.Fprintf(&b, " jobs being created, tagged %s in their descriptions;", list(tags))
	}
	b.WriteString(" cancel them or record them in the file first.")
	return b.String()
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
		e.bytesIn()
		switch {
		case e.Base != "":
			base = e.Base
		case e.Publish != "":
			if e.Publish == s.loaded {
				// The rewrite happened (or wrote the file as it is) and
				// holds every change so far, but the claims it masks,
				// which come before this line in the same write: a kill
				// that stopped that write before this line leaves no
				// publish line to drop them.
				base, changes = e.Publish, changes[len(changes)-min(e.N, len(changes)):]
			}
		default:
			all := e.All
			if all == nil {
				all = []entry{e}
			}
			for _, e := range all {
				if e.K < 1 || int(e.K) > len(s.rows) {
					return fmt.Errorf("%s.journal: line %d: no row %d", s.path, i+1, e.K)
				}
				e.bytesIn()
				changes = append(changes, e)
			}
		}
	}
	if base != "" && base != s.loaded && len(changes) > 0 {
		// Someone rewrote the table (the Python client resuming it, an
		// editor) after the run that wrote this journal stopped: its row
		// numbers may no longer be the same rows.
		return fmt.Errorf("%s was rewritten after the run that left %s.journal stopped, and the journal's %d changes "+
			"were never written to it; nothing was changed.%s To go on from %s as it is now, remove %s.journal (%w)",
			s.path, s.path, len(changes), journalJobs(changes), s.path, s.path, errRewritten)
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
	s.stopPrompt()
	var err error
	if s.lock != nil && s.dirty {
		err = s.flushLocked()
	}
	if s.journal != nil {
		s.journal.Close()
	}
	if s.lock != nil {
		// The lock file carries nothing (the file and the journal hold
		// the table), so it goes, while still locked: see tryLock for
		// why that is safe.
		os.Remove(s.path + ".lock")
		s.lock.Close() // releases the lock
	}
	return err
}

// lockTaken is called by tryLock between taking a lock and checking it;
// tests change the lock file's name there.
var lockTaken = func() {}

// tryLock takes the writer's lock, an exclusive flock(2) (LockFileEx on
// Windows) on the file name, creating it if need be, without waiting.
// The kernel drops the lock when the process ends, however it ends, so a
// crash never leaves the table locked: the file's existence means
// nothing. It returns nil when another process holds the lock, and
// whether this call created the file.
//
// A writer removes the lock file when it closes, while it still holds the
// lock. A process that opened the file just before that removal could
// take the lock just after it, on a file that no longer has a name, while
// a third process creates the file anew and locks that: two writers. So a
// lock counts only when the locked file is still the one the name leads
// to (the same inode); otherwise it is dropped and the name tried again.
// Every writer that holds a lock thus holds it on the file the name has,
// and there is one such file at a time.
func tryLock(name string) (*flock.Flock, bool) {
	for range 100 {
		_, statErr := os.Stat(name)
		lf := flock.New(name, flock.SetPermissions(0o644))
		if ok, err := lf.TryLock(); err != nil || !ok {
			lf.Close()
			return nil, false
		}
		lockTaken()
		locked, err1 := lf.Stat()
		named, err2 := os.Stat(name)
		if err1 == nil && err2 == nil && os.SameFile(locked, named) {
			return lf, errors.Is(statErr, os.ErrNotExist)
		}
		lf.Close() // the file was removed, or replaced, meanwhile
	}
	return nil, false // the name keeps changing: read-only, the safe side
}

// flushLocked rewrites the CSV file atomically and empties the journal.
//
// The file is what the Python client resumes from, and it tracks every
// active row by its job id: a row claimed whose job id is not known yet
// (its job is being created) is written as not_started, with no back-end
// but the one the user pinned it to (pinned_backend), and stays claimed in the journal, which then holds only such rows.
func (s *Store) flushLocked() error {
	s.stopPrompt()
	var masked []entry
	for i := range s.rows {
		if e, ok := s.masked(i); ok {
			masked = append(masked, e)
		}
	}
	// Before the new file replaces the old one, the journal names it: a
	// crash between the rename and the journal's removal leaves a journal
	// whose changes the file already holds. The claims the file does not
	// show go just before that line, in the same write, so they are kept
	// whichever file a crash leaves (they are the table's state now, true
	// on the old file too), and a kill part way through that write leaves
	// no publish line (a rewrite that gives the file as it is names the
	// file that is there already, and would drop every change before it).
	var written string
	publish := func(fp string) error {
		written = fp
		if s.journal == nil && len(masked) == 0 {
			if _, err := os.Stat(s.path + ".journal"); errors.Is(err, os.ErrNotExist) {
				return nil
			}
		}
		if s.journal == nil {
			f, err := s.openJournal()
			if err != nil {
				return err
			}
			s.journal = f
		}
		b, err := journalLines(slices.Concat(masked, []entry{{Publish: fp, N: len(masked)}}))
		if err != nil {
			return err
		}
		s.writing(b)
		if _, err := s.journal.Write(b); err != nil {
			return err
		}
		if err := s.journal.Sync(); err != nil {
			return err
		}
		s.crash("published")
		return nil
	}
	fp := fingerprint.New()
	if err := atomicfile.Write(s.path, perm(s.path), func(w io.Writer) error {
		cw := csv.NewWriter(io.MultiWriter(w, fp))
		if err := cw.Write(s.header); err != nil {
			return err
		}
		next := masked
		for i, r := range s.rows {
			cells := r.cells
			if len(next) > 0 && next[0].K == int64(i+1) {
				cells = slices.Clone(cells)
				for c := range next[0].S {
					cells[s.col[c]] = ""
				}
				cells[s.col[driver.ColStatus]] = string(driver.NotStarted)
				// As the row would be if freed: a pinned row shows its back-end.
				cells[s.col[driver.ColBackend]] = cells[s.col[driver.ColPinnedBackend]]
				next = next[1:]
			}
			if err := cw.Write(cells); err != nil {
				return err
			}
		}
		cw.Flush()
		return cw.Error()
	}, func() error { return publish(fp.String()) }); err != nil {
		return fmt.Errorf("write %s: %w", s.path, err)
	}
	if s.journal != nil {
		s.journal.Close()
		s.journal = nil
	}
	s.dirty, s.loaded = false, written
	s.crash("renamed")
	if len(masked) == 0 {
		if err := os.Remove(s.path + ".journal"); err != nil && !errors.Is(err, os.ErrNotExist) {
			return err
		}
		return nil
	}
	// The journal keeps only the claims the new file does not show.
	b, err := journalLines(append([]entry{{Base: written}}, masked...))
	if err != nil {
		return err
	}
	if err := atomicfile.WriteFile(s.path+".journal", b, perm(s.path+".journal")); err != nil {
		return fmt.Errorf("write %s.journal: %w", s.path, err)
	}
	f, err := os.OpenFile(s.path+".journal", os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return err
	}
	s.journal = f
	return nil
}

// openJournal opens the journal to append to it, creating it if need be.
// A last line that a kill cut short (a write stopped part way: the
// journal does not end with a line break) is removed first, or ended if it
// is whole but for its line break, as replay reads it. A cut line's change
// never completed and replay ignores it as the journal's last line; a line
// appended after it would join it into one that no replay can read, and
// that hides the line appended: the publish line of a rewrite, say.
func (s *Store) openJournal() (*os.File, error) {
	f, err := os.OpenFile(s.path+".journal", os.O_CREATE|os.O_RDWR|os.O_APPEND, 0o644)
	if err != nil {
		return nil, err
	}
	if err := endLastLine(f); err != nil {
		f.Close()
		return nil, fmt.Errorf("%s.journal: %w", s.path, err)
	}
	return f, nil
}

// endLastLine makes f end with a line break: it truncates f after its last
// line break, or ends its last line if that is a whole JSON value.
func endLastLine(f *os.File) error {
	fi, err := f.Stat()
	if err != nil {
		return err
	}
	end := fi.Size()
	keep := int64(0) // just after the last line break
	buf := make([]byte, 4096)
	for at := end; at > 0; {
		n := min(int64(len(buf)), at)
		at -= n
		if _, err := f.ReadAt(buf[:n], at); err != nil {
			return err
		}
		if i := bytes.LastIndexByte(buf[:n], '\n'); i >= 0 {
			keep = at + int64(i) + 1
			break
		}
	}
	if keep == end {
		return nil
	}
	tail := make([]byte, end-keep)
	if _, err := f.ReadAt(tail, keep); err != nil {
		return err
	}
	if json.Valid(tail) {
		_, err := f.Write([]byte("\n"))
		return err
	}
	return f.Truncate(keep)
}

// writing is called with each write to the journal before it is made
// (Options.journalWrite).
func (s *Store) writing(b []byte) {
	if s.opts.journalWrite != nil {
		s.opts.journalWrite(b)
	}
}

// crash marks a crash point of a rewrite, for Options.crashPoint and for
// driver/internal/crashpoint (drivertest's CrashDuringOpen).
func (s *Store) crash(stage string) {
	if s.opts.crashPoint != nil {
		s.opts.crashPoint(stage)
	}
	crashpoint.Hit("csvfile: " + stage)
}

// masked reports whether row i is active without a job id, and returns
// the cells the file does not show for it then: its status and back-end.
func (s *Store) masked(i int) (entry, bool) {
	cells := s.rows[i].cells
	if cells[s.col[driver.ColID]] != "" || !s.status(i).Active() {
		return entry{}, false
	}
	return entry{K: int64(i + 1), S: map[string]string{
		driver.ColStatus:  cells[s.col[driver.ColStatus]],
		driver.ColBackend: cells[s.col[driver.ColBackend]],
	}}, true
}

// journalLines encodes entries as journal lines.
func journalLines(entries []entry) ([]byte, error) {
	var buf bytes.Buffer
	for _, e := range entries {
		b, err := json.Marshal(e.bytesOut())
		if err != nil {
			return nil, err
		}
		buf.Write(b)
		buf.WriteByte('\n')
	}
	return buf.Bytes(), nil
}

// bytesOut returns e with the cells that are not valid UTF-8 moved from S
// to B, in e.All too; e is left as it is.
func (e entry) bytesOut() entry {
	for c, v := range e.S {
		if !utf8.ValidString(v) {
			if e.B == nil {
				e.S, e.B = maps.Clone(e.S), map[string][]byte{}
			}
			e.B[c] = []byte(v)
			delete(e.S, c)
		}
	}
	if e.All != nil {
		all := make([]entry, len(e.All))
		for i, a := range e.All {
			all[i] = a.bytesOut()
		}
		e.All = all
	}
	return e
}

// bytesIn moves the cells in e.B back to e.S.
func (e *entry) bytesIn() {
	for c, v := range e.B {
		if e.S == nil {
			e.S = map[string]string{}
		}
		e.S[c] = string(v)
	}
}

// perm is the mode of the file at path, or 0644 for a new one, so that a
// rewrite keeps the mode the user gave the table.
func perm(path string) os.FileMode {
	if fi, err := os.Stat(path); err == nil {
		return fi.Mode().Perm()
	}
	return 0o644
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
			cell, ok := csvtext.FormatCell(v)
			if !ok {
				s.header = nil
				return fmt.Errorf("row %d, column %q: a %T value (%v), which a CSV table cannot keep", n, c, v, v)
			}
			cells[i] = cell
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
	for i := int(max(0, min(f.After, int64(len(s.rows))))); i < len(s.rows); i++ { // key i+1
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
		out[k] = csvtext.Format(v)
	}
	return out, nil
}

// apply journals and applies changes; the caller holds s.mu and checked them.
func (s *Store) apply(entries []entry) error {
	lines := entries
	if len(entries) > 1 {
		lines = []entry{{All: entries}}
	}
	if s.journal == nil {
		f, err := s.openJournal()
		if err != nil {
			return err
		}
		s.journal = f
		lines = append([]entry{{Base: s.loaded}}, lines...)
	}
	b, err := journalLines(lines)
	if err != nil {
		return err
	}
	s.writing(b)
	if _, err := s.journal.Write(b); err != nil {
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
		if e.S[driver.ColID] != "" {
			s.schedulePrompt()
		}
	}
	s.dirty = true
	return nil
}

// schedulePrompt has the file rewritten within the prompt delay, unless a
// rewrite is due already: the Python client must find a new job's id in
// the file soon, not at the end of the tracking cycle.
func (s *Store) schedulePrompt() {
	if s.promptStop != nil || s.lock == nil || s.closed {
		return
	}
	s.promptGen++
	gen := s.promptGen
	s.promptStop = s.opts.afterFunc()(s.opts.promptDelay(), func() { s.promptFlush(gen) })
}

// stopPrompt cancels the scheduled rewrite: one is happening now.
func (s *Store) stopPrompt() {
	if s.promptStop != nil {
		s.promptStop()
		s.promptStop = nil
	}
}

// promptFlush is the scheduled rewrite number gen.
func (s *Store) promptFlush(gen uint64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if gen != s.promptGen || s.promptStop == nil || s.closed || !s.dirty {
		return // cancelled, or done by a rewrite since
	}
	s.promptStop = nil
	if err := s.flushLocked(); err != nil {
		// Nothing is lost (the journal holds every change) and the next
		// Flush tries again and returns its error.
		slog.Warn("rewrite the CSV job table for new job ids", "table", s.path, "err", err)
	}
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
	if _, err := cellsOf(set); err != nil {
		return driver.Job{}, err
	}
	// A row the user gave to a back-end (backend_name set while
	// not_started) goes only to that one.
	backend, _ := set[driver.ColBackend].(string)
	left := -1 // the first not_started row left to another back-end
	for i := s.free; i < len(s.rows); i++ {
		if s.status(i) != driver.NotStarted {
			continue
		}
		if own := strings.TrimSpace(s.rows[i].cells[s.col[driver.ColBackend]]); backend != "" && own != "" && own != backend {
			if left < 0 {
				left = i
			}
			continue
		}
		s.free = i + 1 // unless apply finds the row still not_started
		if left >= 0 {
			s.free = left
		}
		row := driver.Job{Backend: strings.TrimSpace(s.rows[i].cells[s.col[driver.ColBackend]])}
		cells, err := cellsOf(driver.ClaimValues(row, set))
		if err != nil {
			return driver.Job{}, err
		}
		if err := s.apply([]entry{{K: int64(i + 1), S: cells}}); err != nil {
			s.free = min(s.free, i)
			return driver.Job{}, err
		}
		return s.job(int64(i + 1))
	}
	s.free = len(s.rows)
	if left >= 0 {
		s.free = left
	}
	return driver.Job{}, fmt.Errorf("no not_started row: %w", driver.ErrNotFound)
}
