// Package duckdb stores the job table in a Parquet file (GeoParquet when it
// has geometries) or a DuckDB file, through DuckDB (github.com/duckdb/duckdb-go).
//
// A DuckDB file can be opened by one process at a time, which would lock
// out `worker query` and `worker status` during a run. So the store works
// in a private DuckDB file beside the table (path + ".work.duckdb"), whose
// own write-ahead log makes every change durable, and publishes the table
// (path) as an atomic snapshot, rewritten on Flush (driver.Flusher: the
// manager calls it once per tracking cycle) and at Close: readers open the
// snapshot at any time. A new work file is built under another name
// (path + ".work.duckdb.new") and renamed once its table has committed, so
// that a crash during the first open leaves no work file without a table.
// After a crash the work file, newer than the snapshot, is picked up again. A process that finds
// the work file in use opens the snapshot read-only.
//
// GeoParquet geometry columns are GEOMETRY columns here; the user sees them
// as WKT, and they are written back as GeoParquet with its geo metadata.
// This is the project's only cgo package.
package duckdb

import (
	"context"
	"database/sql"
	sqldriver "database/sql/driver"
	"errors"
	"fmt"
	"io"
	"iter"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"unicode/utf8"

	duckdbgo "github.com/duckdb/duckdb-go/v2" // also registers the "duckdb" database/sql driver

	"github.com/openeo-batch/worker/driver"
	"github.com/openeo-batch/worker/driver/internal/crashpoint"
	"github.com/openeo-batch/worker/driver/internal/fingerprint"
	"github.com/openeo-batch/worker/driver/internal/sqlbuild"
	"github.com/openeo-batch/worker/internal/atomicfile"
	"github.com/openeo-batch/worker/internal/crs"
	"github.com/openeo-batch/worker/internal/pin"
)

func init() {
	open := func(ctx context.Context, path string) (driver.Store, error) { return Open(ctx, path) }
	reader := func(ctx context.Context, path string) (driver.Store, error) { return OpenReader(ctx, path) }
	driver.Register(driver.Driver{Name: "parquet", Extensions: []string{".parquet", ".geoparquet"}, Open: open, OpenReader: reader, Remove: Remove})
	driver.Register(driver.Driver{Name: "duckdb", Extensions: []string{".duckdb", ".ddb"}, Open: open, OpenReader: reader, Remove: Remove})
}

// rowGroupSize is the rows per row group of a Parquet snapshot: the
// writer holds one row group in memory.
const rowGroupSize = 20_000

// ErrReadOnly means another process works on the table: opened read-only.
var ErrReadOnly = errors.New("the table is open for writing elsewhere: opened read-only")

const keyColumn = "_key"

// Store is a job table in a Parquet or DuckDB file.
type Store struct {
	path, work string
	parquet    bool

	mu       sync.Mutex
	db       *sql.DB
	readOnly bool
	user     []string
	geometry map[string]bool // user columns of type GEOMETRY
	// crs is the CRS of geometry columns that name one (GEOMETRY('...'),
	// GeoParquet's "crs"), as PROJJSON or another definition DuckDB took;
	// initCRS the ones SetGeometryCRS gave for Init.
	crs, initCRS map[string]string
	counts       map[group]int // rows per back-end and status; nil until counted
	unlimited    bool          // MemoryLimit lifted (roomy)
	published    string        // fingerprint of the table file as last published
	recorded     bool          // the work file's _published table has its row
	// keyOrdered: the work file stores its rows in key order (storedInKeyOrder).
	keyOrdered bool
	full       string // DuckDB's own memory limit, for roomy
	hasTable   bool
	dirty      bool
	closed     bool
	// building is the file the work database is being built in, until
	// its table commits and it is renamed to work (see buildingName).
	building string

	// cache holds the rows changed this session, journal the changes the
	// work file does not hold yet (see overlay.go).
	cache   map[int64]*cached
	journal *os.File
	// cands are not_started rows of the work file read ahead for claims,
	// in key order, up to key candsFrom; candsEnd when none follow.
	cands     []driver.Job
	candsFrom int64
	candsEnd  bool
	// uncached counts the rows not in cache per group; nil until counted.
	uncached map[pgroup]int
}

var (
	_ driver.Store        = (*Store)(nil)
	_ driver.Flusher      = (*Store)(nil)
	_ driver.WriteChecker = (*Store)(nil)
	_ driver.CRSKeeper    = (*Store)(nil)
)

// writers holds the work files open in this process. Two opens of one
// file in a process share one DuckDB database, which the file lock that
// keeps out other processes does not see: a second Open here must be a
// reader too, or its Close would remove the work file under the first.
var writers = struct {
	sync.Mutex
	paths map[string]bool
}{paths: map[string]bool{}}

// Open opens the table at path (.parquet or .duckdb); it need not exist.
// While a process has it open, other opens, in this process or another,
// get the last published snapshot read-only (ErrReadOnly on writes).
func Open(ctx context.Context, path string) (*Store, error) {
	s := newStore(path)
	work, err := filepath.Abs(s.work)
	if err != nil {
		return nil, err
	}
	writers.Lock()
	inUse := writers.paths[work]
	writers.paths[work] = true
	writers.Unlock()
	if inUse {
		return s.openReadOnly(ctx)
	}
	s.work = work
	st, err := s.openWork(ctx)
	if err != nil || st.readOnly {
		s.release()
	}
	return st, err
}

// OpenReader opens the published table read-only, in memory, without
// touching the work file: reading never keeps a run from starting. It sees
// the table as last published.
func OpenReader(ctx context.Context, path string) (*Store, error) {
	s := newStore(path)
	return s.openReadOnly(ctx)
}

// newStore is the Store for the table at path, not yet open.
func newStore(path string) *Store {
	ext := strings.ToLower(filepath.Ext(path))
	return &Store{path: path, work: path + ".work.duckdb", parquet: ext == ".parquet" || ext == ".geoparquet", cache: map[int64]*cached{}}
}

// release lets this process open the work file again.
func (s *Store) release() {
	writers.Lock()
	delete(writers.paths, s.work)
	writers.Unlock()
}

// buildingName is the name of a work file being made, until the table in it
// has committed (an import, or Init): only then is it renamed to the work
// file. A crash before leaves no work file, and the next open makes this
// one over again.
func buildingName(work string) string { return work + ".new" }

// errNoWorkTable means a work file holds no table: made before its import
// committed, by a version that did not build it under another name.
var errNoWorkTable = errors.New("work file without a table")

// openWork resumes the work file a crashed run left, or builds a new one.
func (s *Store) openWork(ctx context.Context) (*Store, error) {
	if _, err := os.Stat(s.work); err == nil {
		st, err := s.resume(ctx)
		if !errors.Is(err, errNoWorkTable) {
			return st, err
		}
		if err := removeDB(s.work); err != nil {
			return nil, err
		}
	}
	return s.build(ctx)
}

// crsStorage is the storage version of a DuckDB snapshot with a CRS:
// DuckDB keeps the CRS of a GEOMETRY column (GeometryCRS) in a file only
// from version 1.5 on. Work files keep theirs in the table _crs instead.
const crsStorage = "v1.5.0"

// openDB opens a work database and configures it.
func (s *Store) openDB(ctx context.Context, file string) (*sql.DB, error) {
	db, err := sql.Open("duckdb", file)
	if err == nil {
		err = db.PingContext(ctx)
	}
	if err != nil {
		if db != nil {
			db.Close()
		}
		return nil, err
	}
	db.SetMaxOpenConns(1) // one connection: no write conflicts, claims serialize
	s.db = db
	if err := configure(ctx, db); err != nil {
		db.Close()
		return nil, err
	}
	if err := s.limitMemory(ctx); err != nil {
		db.Close()
		return nil, err
	}
	return db, nil
}

// busy handles a work file DuckDB would not open: in use by another
// process, or in a folder we may not write in, the table opens read-only.
func (s *Store) busy(ctx context.Context, file string, err error) (*Store, error) {
	_, perr := os.Stat(s.path)
	if !strings.Contains(err.Error(), "lock") && perr != nil {
		return nil, fmt.Errorf("%s: %w", file, err)
	}
	return s.openReadOnly(ctx)
}

// resume opens the work file a crashed run left and publishes it, since
// it may be newer than the table file.
func (s *Store) resume(ctx context.Context) (*Store, error) {
	if _, err := s.openDB(ctx, s.work); err != nil {
		return s.busy(ctx, s.work, err)
	}
	if err := s.checkPublished(ctx); err != nil {
		s.db.Close() // keeps the work file: its changes are the user's to choose
		return nil, err
	}
	if err := s.loadSchema(ctx); err != nil {
		s.db.Close()
		return nil, err
	}
	if !s.hasTable {
		s.db.Close()
		return nil, errNoWorkTable
	}
	if err := s.replay(ctx); err != nil {
		s.db.Close() // keeps the work file and its journal
		return nil, err
	}
	s.dirty = true
	if err := s.flushLocked(ctx); err != nil {
		s.Close()
		return nil, err
	}
	return s, nil
}

// build makes a new work file under its building name: with the table
// file's rows, renamed to the work file at once; without a table file,
// empty until Init makes the table.
func (s *Store) build(ctx context.Context) (*Store, error) {
	tmp := buildingName(s.work)
	_, err := s.openDB(ctx, tmp)
	if err != nil && !strings.Contains(err.Error(), "lock") {
		// A kill as DuckDB created the file can leave one it cannot
		// read: nothing in it is worth keeping.
		if removeDB(tmp) == nil {
			_, err = s.openDB(ctx, tmp)
		}
	}
	if err != nil {
		return s.busy(ctx, tmp, err)
	}
	s.building = tmp
	// A journal without a work file was folded into the table before the
	// work file was removed (Close removes it first).
	if err := removeFile(journalName(s.work)); err != nil {
		s.discard()
		return nil, err
	}
	// A build a crash cut short may have left tables behind: start over.
	for _, q := range []string{"DROP TABLE IF EXISTS jobs", "DROP TABLE IF EXISTS jobs_in", "DROP TABLE IF EXISTS _published", "DROP TABLE IF EXISTS _crs"} {
		if _, err := s.db.ExecContext(ctx, q); err != nil {
			s.discard()
			return nil, fmt.Errorf("%s: %w", tmp, err)
		}
	}
	crashpoint.Hit("duckdb: building")
	if err := s.importTable(ctx); err != nil {
		s.discard()
		return nil, err
	}
	if err := s.loadSchema(ctx); err != nil {
		s.discard()
		return nil, err
	}
	if s.hasTable {
		crashpoint.Hit("duckdb: imported, not renamed")
		if err := s.commitWork(ctx); err != nil {
			s.discard()
			return nil, err
		}
	}
	return s, nil
}

// commitWork gives the work file being built its name, once its table has
// committed: DuckDB checkpoints it into the file and closes it, the file
// is renamed, and opened again under its name.
func (s *Store) commitWork(ctx context.Context) error {
	tmp := s.building
	if _, err := s.db.ExecContext(ctx, "CHECKPOINT"); err != nil {
		return fmt.Errorf("%s: %w", tmp, err)
	}
	if err := s.db.Close(); err != nil {
		return fmt.Errorf("%s: %w", tmp, err)
	}
	if _, err := os.Stat(tmp + ".wal"); err == nil {
		return fmt.Errorf("%s: still has a write-ahead log after a checkpoint", tmp)
	}
	if err := atomicfile.Commit(tmp, s.work); err != nil {
		return err
	}
	// The folder DuckDB spills to beside the file built (tmp.tmp): DuckDB
	// leaves it when it was there before, as after a kill during an
	// earlier build, and the file it served is gone now.
	if err := os.RemoveAll(tmp + ".tmp"); err != nil {
		return err
	}
	s.building = ""
	crashpoint.Hit("duckdb: renamed")
	if _, err := s.openDB(ctx, s.work); err != nil {
		return fmt.Errorf("%s: %w", s.work, err)
	}
	if s.unlimited {
		if _, err := s.db.ExecContext(ctx, "SET memory_limit = "+literal(s.full)); err != nil {
			return err
		}
	}
	return nil
}

// discard closes and removes a work file being built.
func (s *Store) discard() {
	s.db.Close()
	if s.building != "" {
		removeDB(s.building)
		s.building = ""
	}
}

// removeDB removes a DuckDB file, its write-ahead log and the folder it
// spills to (file.tmp, DuckDB's default), which a kill can leave behind.
func removeDB(file string) error {
	var errs []error
	for _, f := range []string{file, file + ".wal"} {
		if err := os.Remove(f); err != nil && !errors.Is(err, os.ErrNotExist) {
			errs = append(errs, err)
		}
	}
	if err := os.RemoveAll(file + ".tmp"); err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

// Remove removes the table at path with the files the store keeps beside
// it: the work file, one being built, and their write-ahead logs. It is
// the driver's driver.Driver.Remove, for a table that a failed Init left.
func Remove(path string) error {
	work := newStore(path).work
	return errors.Join(removeDB(buildingName(work)), removeFile(journalName(work)), removeDB(work), removeFile(path))
}

func removeFile(path string) error {
	if err := os.Remove(path); err != nil && !errors.Is(err, os.ErrNotExist) {
		return err
	}
	return nil
}

// openReadOnly loads the published snapshot into memory.
func (s *Store) openReadOnly(ctx context.Context) (*Store, error) {
	db, err := sql.Open("duckdb", "")
	if err != nil {
		return nil, err
	}
	db.SetMaxOpenConns(1)
	if err := configure(ctx, db); err != nil {
		db.Close()
		return nil, err
	}
	s.db, s.readOnly = db, true
	if err := s.importTable(ctx); err != nil {
		db.Close()
		return nil, err
	}
	if err := s.loadSchema(ctx); err != nil {
		db.Close()
		return nil, err
	}
	return s, nil
}

// configure keeps an open store's memory small and flat. A job table needs
// no parallel queries, and each extra thread holds buffers of its own (a
// Parquet row group each while writing a snapshot: 276 against 58 MB at 1M
// rows). The allocator's background thread hands freed memory back to the
// system; without it, the 50 to 90 MB an import frees stay resident.
func configure(ctx context.Context, db *sql.DB) error {
	for _, q := range []string{"SET threads = 1", "SET allocator_background_threads = true"} {
		if _, err := db.ExecContext(ctx, q); err != nil {
			return fmt.Errorf("duckdb: %s: %w", q, err)
		}
	}
	return nil
}

// renamedError is err with another message (the table's name in place of
// a pinned copy's), still matching what err matches (driver.InvalidError,
// driver.ErrNoTable).
type renamedError struct {
	msg string
	err error
}

func (e *renamedError) Error() string { return e.msg }
func (e *renamedError) Unwrap() error { return e.err }

// firstLine is the first line of a DuckDB error: the rest repeats our
// SQL with a caret under the spot, which says nothing to a user.
func firstLine(err error) string {
	line, _, _ := strings.Cut(err.Error(), "\n")
	return line
}

// duckDBMagic is what a DuckDB database file holds at byte 8 (DuckDB's
// storage format, MainHeader::MAGIC_BYTES).
const duckDBMagic = "DUCK"

// checkDuckDBFile refuses, as an *driver.InvalidError, a file that is not
// a DuckDB database (too short, or without the magic bytes): DuckDB's own
// error for it is an IO error like that of a lock or a permission.
func checkDuckDBFile(path string) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	head := make([]byte, 12)
	if n, _ := io.ReadFull(f, head); n < len(head) || string(head[8:12]) != duckDBMagic {
		return driver.Invalid(fmt.Errorf("%s: not a DuckDB database file", path))
	}
	return nil
}

func literal(s string) string { return "'" + strings.ReplaceAll(s, "'", "''") + "'" }

func sqlType(k driver.Kind) string {
	switch k {
	case driver.Integer:
		return "BIGINT"
	case driver.Real:
		return "DOUBLE"
	case driver.Bool:
		return "BOOLEAN"
	}
	return "VARCHAR"
}

// importTable copies the published table, if any, into the work database,
// with the manager columns in their types and a row key in file order.
func (s *Store) importTable(ctx context.Context) (err error) {
	if _, err := os.Stat(s.path); errors.Is(err, os.ErrNotExist) {
		return nil
	}
	file := s.path
	if s.readOnly {
		// A writer may rename a new version over the file while this
		// reads it: read one version, whole (see package pin).
		p, err := pin.Pin(s.path)
		if err != nil {
			return fmt.Errorf("%s: %w", s.path, err)
		}
		defer p.Release()
		file = p.Name
		defer func() {
			if err != nil {
				err = &renamedError{msg: strings.ReplaceAll(err.Error(), p.Name, s.path), err: err}
			}
		}()
	}
	// No hive partitioning: a folder named like key=value is not a column.
	source := "read_parquet(" + literal(file) + ", hive_partitioning = false)"
	if !s.parquet {
		if err := checkDuckDBFile(file); err != nil {
			return err
		}
		if _, err := s.db.ExecContext(ctx, "ATTACH "+literal(file)+" AS pub (READ_ONLY)"); err != nil {
			return fmt.Errorf("%s: %s", s.path, firstLine(err))
		}
		defer s.db.ExecContext(ctx, "DETACH pub")
		source = "pub.jobs"
	}
	rows, err := s.db.QueryContext(ctx, "SELECT column_name FROM (DESCRIBE SELECT * FROM "+source+")")
	if err != nil {
		var de *duckdbgo.Error
		switch {
		case !errors.As(err, &de):
			return fmt.Errorf("%s: %w", s.path, err)
		case s.parquet && de.Type == duckdbgo.ErrorTypeInvalidInput:
			return driver.Invalid(fmt.Errorf("%s: not a readable Parquet file: %s", s.path, firstLine(err)))
		case !s.parquet && de.Type == duckdbgo.ErrorTypeCatalog:
			return fmt.Errorf("%s: %w", s.path, driver.ErrNoTable)
		}
		return fmt.Errorf("%s: not a readable table: %s", s.path, firstLine(err))
	}
	var cols []string
	for rows.Next() {
		var c string
		rows.Scan(&c)
		cols = append(cols, c)
	}
	rows.Close()
	var sel []string
	for _, c := range cols {
		if c == keyColumn {
			// Published tables never have one: it is the user's, and
			// would be lost under the row key.
			return fmt.Errorf("%s: column %q: the name is reserved for the row key; rename the column", s.path, c)
		}
		if mc, ok := driver.ManagerColumn(c); ok {
			sel = append(sel, fmt.Sprintf("CAST(%s AS %s) AS %s", sqlbuild.Quote(c), sqlType(mc.Kind), sqlbuild.Quote(c)))
		} else {
			sel = append(sel, sqlbuild.Quote(c))
		}
	}
	for _, mc := range driver.ManagerColumns() {
		if !slices.Contains(cols, mc.Name) {
			sel = append(sel, fmt.Sprintf("CAST(NULL AS %s) AS %s", sqlType(mc.Kind), sqlbuild.Quote(mc.Name)))
		}
	}
	q := fmt.Sprintf("CREATE TABLE jobs AS SELECT row_number() OVER () AS %s, %s FROM %s", keyColumn, strings.Join(sel, ", "), source)
	if err := s.roomy(ctx, func() error {
		_, err := s.db.ExecContext(ctx, q)
		return err
	}); err != nil {
		if berr := s.badCast(ctx, source, cols); berr != nil {
			return berr
		}
		return fmt.Errorf("%s: %w", s.path, err)
	}
	if !s.readOnly {
		fp, err := fingerprint.File(s.path)
		if err != nil {
			return err
		}
		if err := s.recordPublished(ctx, fp, ""); err != nil {
			return err
		}
	}
	// Python tables leave status empty before a run; tables from other
	// programs lack our columns: they get the defaults Init gives.
	for _, q := range []string{
		`UPDATE jobs SET status = 'not_started' WHERE status IS NULL OR trim(status) = ''`,
		`UPDATE jobs SET attempts = 0 WHERE attempts IS NULL`,
		`UPDATE jobs SET download_pending = false WHERE download_pending IS NULL`,
	} {
		if _, err := s.db.ExecContext(ctx, q); err != nil {
			return fmt.Errorf("%s: %w", s.path, err)
		}
	}
	var bad sql.NullString
	var key sql.NullInt64
	err = s.db.QueryRowContext(ctx, `SELECT status, _key FROM jobs WHERE status NOT IN (`+statusList()+`) ORDER BY _key LIMIT 1`).Scan(&bad, &key)
	if err == nil {
		_, perr := driver.ParseStatus(bad.String)
		return fmt.Errorf("%s: row %d, column %q: %w", s.path, key.Int64, driver.ColStatus, perr)
	}
	if !errors.Is(err, sql.ErrNoRows) {
		return err
	}
	return nil
}

// badCast finds the first cell of a manager column that does not convert
// to the column's type, after the import failed, and returns an error
// naming its row and column; nil if it finds none.
func (s *Store) badCast(ctx context.Context, source string, cols []string) error {
	for _, c := range cols {
		mc, ok := driver.ManagerColumn(c)
		if !ok || mc.Kind == driver.Text {
			continue
		}
		q := sqlbuild.Quote(c)
		var row int64
		var v sql.NullString
		err := s.db.QueryRowContext(ctx, fmt.Sprintf(
			"SELECT n, CAST(v AS VARCHAR) FROM (SELECT row_number() OVER () AS n, %s AS v FROM %s) WHERE v IS NOT NULL AND TRY_CAST(v AS %s) IS NULL ORDER BY n LIMIT 1",
			q, source, sqlType(mc.Kind))).Scan(&row, &v)
		if err != nil {
			continue
		}
		_, nerr := driver.Normalize(c, v.String)
		if nerr == nil {
			nerr = fmt.Errorf("column %q: %q does not convert to %s", c, v.String, sqlType(mc.Kind))
		}
		return fmt.Errorf("%s: row %d, %w", s.path, row, nerr)
	}
	return nil
}

func statusList() string {
	var q []string
	for _, st := range driver.Statuses() {
		q = append(q, literal(string(st)))
	}
	return strings.Join(q, ", ")
}

// loadSchema reads which user columns the table has, and their types.
func (s *Store) loadSchema(ctx context.Context) error {
	rows, err := s.db.QueryContext(ctx, `SELECT column_name, data_type FROM information_schema.columns WHERE table_name = 'jobs' ORDER BY ordinal_position`)
	if err != nil {
		return err
	}
	defer rows.Close()
	s.user, s.geometry, s.crs, s.hasTable = nil, map[string]bool{}, map[string]string{}, false
	for rows.Next() {
		var name, typ string
		if err := rows.Scan(&name, &typ); err != nil {
			return err
		}
		s.hasTable = true
		if _, mc := driver.ManagerColumn(name); mc || name == keyColumn {
			continue
		}
		s.user = append(s.user, name)
		if strings.HasPrefix(strings.ToUpper(typ), "GEOMETRY") {
			s.geometry[name] = true
			if def, ok := crs.OfGeometryType(typ); ok {
				s.crs[name] = def
			}
		}
	}
	if err := rows.Err(); err != nil {
		return err
	}
	rows.Close()
	return s.keepCRS(ctx)
}

// keepCRS records the CRS of the geometry columns in the work file's
// table _crs, or reads them back from it: a work file in DuckDB's default
// storage forgets a column's CRS when it is opened again (after a crash).
func (s *Store) keepCRS(ctx context.Context) error {
	if !s.hasTable {
		return nil
	}
	if len(s.crs) > 0 {
		if s.readOnly {
			return nil
		}
		if _, err := s.db.ExecContext(ctx, "CREATE OR REPLACE TABLE _crs (column_name VARCHAR, crs VARCHAR)"); err != nil {
			return err
		}
		for c, def := range s.crs {
			if _, err := s.db.ExecContext(ctx, "INSERT INTO _crs VALUES (?, ?)", c, def); err != nil {
				return err
			}
		}
		return nil
	}
	var n int
	if err := s.db.QueryRowContext(ctx, "SELECT count(*) FROM information_schema.tables WHERE table_name = '_crs'").Scan(&n); err != nil || n == 0 {
		return err
	}
	rows, err := s.db.QueryContext(ctx, "SELECT column_name, crs FROM _crs")
	if err != nil {
		return err
	}
	defer rows.Close()
	for rows.Next() {
		var c, def string
		if err := rows.Scan(&c, &def); err != nil {
			return err
		}
		if s.geometry[c] {
			s.crs[c] = def
		}
	}
	return rows.Err()
}

// GeometryCRS returns the CRS of geometry column c as the table names it
// (GeoParquet's "crs": PROJJSON text), "" when it names none, which by
// GeoParquet's rule is longitude/latitude (OGC:CRS84).
func (s *Store) GeometryCRS(c string) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.crs[c]
}

// SetGeometryCRS gives the CRS (PROJJSON text) of geometry column c for
// Init, which makes it a GEOMETRY column of that CRS: a Parquet table
// then carries it in its GeoParquet metadata. It fails once the table
// exists.
func (s *Store) SetGeometryCRS(c, projjson string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.hasTable {
		return fmt.Errorf("%s: the CRS of a column is set before the table is made: %w", s.path, driver.ErrExists)
	}
	if s.initCRS == nil {
		s.initCRS = map[string]string{}
	}
	s.initCRS[c] = projjson
	return nil
}

// Close publishes what is pending and releases the work file.
func (s *Store) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return nil
	}
	s.closed = true
	if s.building != "" {
		// No table was made (none to import, or Init failed or never
		// came): nothing to keep.
		s.discard()
		s.release()
		return nil
	}
	var err error
	if !s.readOnly && s.dirty && s.hasTable {
		err = s.flushLocked(context.Background())
	}
	if cerr := s.db.Close(); err == nil {
		err = cerr
	}
	if !s.readOnly && err == nil && s.hasTable {
		// The journal first: a journal is only ever replayed onto its own
		// work file.
		err = s.closeJournal()
		if err == nil {
			err = removeDB(s.work)
		}
	} else if s.journal != nil {
		s.journal.Close() // the next open replays it
	}
	if !s.readOnly {
		s.release()
	}
	return err
}

// flushLocked publishes the table: a temporary file, synced, renamed.
func (s *Store) flushLocked(ctx context.Context) error {
	if err := s.apply(ctx); err != nil {
		return fmt.Errorf("write %s: %w", s.work, err)
	}
	dir := filepath.Dir(s.path)
	tmp := filepath.Join(dir, "."+filepath.Base(s.path)+".tmp")
	defer os.Remove(tmp)
	all := "SELECT * EXCLUDE (" + keyColumn + ")"
	if len(s.crs) > 0 {
		// The column's type may have lost its CRS (see keepCRS).
		var casts []string
		for c, def := range s.crs {
			casts = append(casts, "CAST("+sqlbuild.Quote(c)+" AS GEOMETRY("+literal(def)+")) AS "+sqlbuild.Quote(c))
		}
		slices.Sort(casts)
		all += " REPLACE (" + strings.Join(casts, ", ") + ")"
	}
	all += " FROM jobs"
	if sorted, err := s.storedInKeyOrder(ctx); err != nil {
		return fmt.Errorf("write %s: %w", s.path, err)
	} else if !sorted {
		all += " ORDER BY " + keyColumn
	}
	write := func() error {
		os.Remove(tmp)
		if s.parquet {
			_, err := s.db.ExecContext(ctx, "COPY ("+all+") TO "+literal(tmp)+" (FORMAT parquet, ROW_GROUP_SIZE "+fmt.Sprint(rowGroupSize)+")")
			return err
		}
		attach := "ATTACH " + literal(tmp) + " AS snap"
		if len(s.crs) > 0 {
			// Older storage forgets a GEOMETRY column's CRS; tables
			// without one stay readable by older DuckDB versions.
			attach += " (STORAGE_VERSION " + literal(crsStorage) + ")"
		}
		for _, q := range []string{attach, "CREATE TABLE snap.jobs AS " + all, "DETACH snap"} {
			if _, err := s.db.ExecContext(ctx, q); err != nil {
				s.db.ExecContext(ctx, "DETACH DATABASE IF EXISTS snap")
				return err
			}
		}
		return nil
	}
	if err := s.roomy(ctx, write); err != nil {
		return fmt.Errorf("write %s: %w", s.path, err)
	}
	// The work file learns the new version before it replaces the old,
	// so that a crash in between is no alarm on the next open.
	fp, err := fingerprint.File(tmp)
	if err != nil {
		return err
	}
	if err := s.recordPublished(ctx, s.published, fp); err != nil {
		return err
	}
	crashpoint.Hit("duckdb: snapshot written, not renamed")
	if err := atomicfile.Commit(tmp, s.path); err != nil {
		return fmt.Errorf("write %s: %w", s.path, err)
	}
	crashpoint.Hit("duckdb: snapshot renamed")
	s.dirty = false
	return s.recordPublished(ctx, fp, "")
}

// recordPublished keeps in the work file which version of the table file
// it last published (fingerprint), and the one it is about to (pending).
func (s *Store) recordPublished(ctx context.Context, published, pending string) error {
	if s.recorded {
		// One statement, once the table has its row: a flush records twice.
		if _, err := s.db.ExecContext(ctx, "UPDATE _published SET fingerprint = ?, pending = ?", published, pending); err != nil {
			return err
		}
		s.published = published
		return nil
	}
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	defer tx.Rollback()
	for _, q := range []string{"CREATE TABLE IF NOT EXISTS _published (fingerprint VARCHAR, pending VARCHAR)", "DELETE FROM _published"} {
		if _, err := tx.ExecContext(ctx, q); err != nil {
			return err
		}
	}
	if _, err := tx.ExecContext(ctx, "INSERT INTO _published VALUES (?, ?)", published, pending); err != nil {
		return err
	}
	if err := tx.Commit(); err != nil {
		return err
	}
	s.published, s.recorded = published, true
	return nil
}

// checkPublished refuses to resume a work file over a table file that was
// rewritten since the work file last published it (the Python client
// resumed the table after our run was killed, say): publishing the work
// file would undo that. A work file older than this check has no record
// and resumes.
func (s *Store) checkPublished(ctx context.Context) error {
	var published, pending sql.NullString
	err := s.db.QueryRowContext(ctx, "SELECT fingerprint, pending FROM _published").Scan(&published, &pending)
	if err != nil {
		var n int
		if s.db.QueryRowContext(ctx, "SELECT count(*) FROM information_schema.tables WHERE table_name = '_published'").Scan(&n) == nil && n == 0 {
			return nil
		}
		return err
	}
	s.published = published.String
	now, err := fingerprint.File(s.path)
	if err != nil || now == "" || now == published.String || now == pending.String {
		return err
	}
	return fmt.Errorf("%s was rewritten after the run that left %s stopped, whose changes were never published to it; "+
		"nothing was changed. To go on from %s as it is now, remove %s", s.path, s.work, s.path, s.work)
}

// storedInKeyOrder tells whether a scan returns the rows in key order, so
// that a snapshot needs no sort: a sort holds the whole table in memory
// (100 MB at 1M rows) and takes twice as long. It is the rule: the import
// numbers rows 1..n in file order, Init inserts them sorted, no row is
// added or removed later, updates are made in place, and DuckDB keeps
// insertion order, which is rowid order. A row moved by an update (delete
// and insert) would get a new rowid. The check is one streaming scan of
// the key column; a window function (row_number) ran out of memory here.
// Once the rows are in order they stay so: the check runs once a session.
func (s *Store) storedInKeyOrder(ctx context.Context) (bool, error) {
	if s.keyOrdered {
		return true, nil
	}
	var misplaced int64
	err := s.db.QueryRowContext(ctx, "SELECT count(*) FROM jobs WHERE "+keyColumn+" <> rowid + 1").Scan(&misplaced)
	s.keyOrdered = err == nil && misplaced == 0
	return s.keyOrdered, err
}

// Flush publishes the table if it changed since the last snapshot.
func (s *Store) Flush(ctx context.Context) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return driver.ErrClosed
	}
	if !s.dirty || s.readOnly || !s.hasTable {
		return nil
	}
	return s.flushLocked(ctx)
}

func (s *Store) ready() error {
	if s.closed {
		return driver.ErrClosed
	}
	if !s.hasTable {
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
	if s.readOnly {
		return fmt.Errorf("%s: %w", s.path, ErrReadOnly)
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

// Init creates the table from rows; a column called geometry holding text
// becomes a GEOMETRY column (its cells WKT).
func (s *Store) Init(ctx context.Context, columns []string, rows iter.Seq2[[]any, error]) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return driver.ErrClosed
	}
	if s.hasTable {
		return fmt.Errorf("%s: %w", s.path, driver.ErrExists)
	}
	if s.readOnly {
		return fmt.Errorf("%s: %w", s.path, ErrReadOnly)
	}
	user, err := driver.SplitColumns(columns, keyColumn)
	if err != nil {
		return err
	}
	for i, c := range columns {
		if !utf8.ValidString(c) {
			return driver.Invalid(fmt.Errorf("column %d: name %q is not UTF-8 text, which Parquet and DuckDB tables cannot keep (convert the file to UTF-8)", i+1, c))
		}
	}
	var data [][]any
	n := 0
	for r, err := range rows {
		n++
		if err != nil {
			return err
		}
		if len(r) != len(columns) {
			return fmt.Errorf("row %d: %d values for %d columns", n, len(r), len(columns))
		}
		for i, v := range r {
			// DuckDB would store NULL in place of text that is not UTF-8,
			// and the value would be lost for good.
			if str, ok := v.(string); ok && !utf8.ValidString(str) {
				return driver.Invalid(fmt.Errorf("row %d, column %q: %.40q is not UTF-8 text, which Parquet and DuckDB tables cannot keep (convert the file to UTF-8)", n, columns[i], str))
			}
		}
		data = append(data, r)
	}
	pos := map[string]int{}
	for i, c := range columns {
		pos[c] = i
	}
	types := map[string]string{}
	for _, c := range user {
		types[c] = inferType(data, pos[c], c == "geometry")
	}
	var ddl []string
	// No PRIMARY KEY: DuckDB updates a row of an indexed table by deleting
	// and inserting it again, which would lose the key order snapshots
	// rely on (storedInKeyOrder). Keys are unique by construction.
	ddl = append(ddl, keyColumn+" BIGINT")
	// fullType is a column's type with its CRS: GEOMETRY('<PROJJSON>').
	fullType := func(c string) string {
		if def, ok := s.initCRS[c]; ok && types[c] == "GEOMETRY" {
			return "GEOMETRY(" + literal(def) + ")"
		}
		return types[c]
	}
	for _, c := range user {
		ddl = append(ddl, sqlbuild.Quote(c)+" "+fullType(c))
	}
	for _, mc := range driver.ManagerColumns() {
		ddl = append(ddl, sqlbuild.Quote(mc.Name)+" "+sqlType(mc.Kind))
	}
	all := append([]string{keyColumn}, user...)
	for _, mc := range driver.ManagerColumns() {
		all = append(all, mc.Name)
	}
	// Rows go through DuckDB's appender into a staging table, where
	// geometries are still text; one INSERT ... SELECT casts them.
	staging := slices.Clone(ddl)
	for i, c := range user {
		if types[c] == "GEOMETRY" {
			staging[i+1] = sqlbuild.Quote(c) + " VARCHAR"
		}
	}
	load := func() error {
		conn, err := s.db.Conn(ctx)
		if err != nil {
			return err
		}
		defer conn.Close() // the pool has one connection: give it back before using the pool
		fail := func(err error) error {
			conn.ExecContext(ctx, "DROP TABLE IF EXISTS jobs_in")
			conn.ExecContext(ctx, "DROP TABLE IF EXISTS jobs")
			return err
		}
		for _, q := range []string{"CREATE TABLE jobs (" + strings.Join(ddl, ", ") + ")", "CREATE TABLE jobs_in (" + strings.Join(staging, ", ") + ")"} {
			if _, err := conn.ExecContext(ctx, q); err != nil {
				return fail(err)
			}
		}
		err = conn.Raw(func(dc any) error {
			app, err := duckdbgo.NewAppenderFromConn(dc.(sqldriver.Conn), "", "jobs_in")
			if err != nil {
				return err
			}
			args := make([]sqldriver.Value, len(all))
			for i, r := range data {
				args[0] = int64(i + 1)
				for j, c := range user {
					args[j+1] = appendValue(r[pos[c]], types[c])
				}
				for j, mc := range driver.ManagerColumns() {
					var v any
					if p, ok := pos[mc.Name]; ok {
						v = r[p]
					}
					nv, err := driver.Normalize(mc.Name, v)
					if err != nil {
						app.Close()
						return fmt.Errorf("row %d, %w", i+1, err)
					}
					if nv == nil && mc.Name == driver.ColAttempts {
						nv = int64(0)
					}
					if nv == nil && mc.Name == driver.ColDownloadPending {
						nv = false
					}
					args[1+len(user)+j] = nv
				}
				if err := app.AppendRow(args...); err != nil {
					app.Close()
					return fmt.Errorf("row %d: %w", i+1, err)
				}
			}
			return app.Close()
		})
		if err != nil {
			return fail(err)
		}
		sel := make([]string, len(all))
		for i, c := range all {
			sel[i] = sqlbuild.Quote(c)
			if types[c] == "GEOMETRY" {
				sel[i] = "CAST(" + sqlbuild.Quote(c) + " AS " + fullType(c) + ")"
			}
		}
		if _, err := conn.ExecContext(ctx, "INSERT INTO jobs SELECT "+strings.Join(sel, ", ")+" FROM jobs_in"); err != nil {
			// Name the first row whose geometry is not WKT.
			for _, c := range user {
				if types[c] != "GEOMETRY" {
					continue
				}
				if key, ok := firstBadGeometry(ctx, conn, c); ok {
					return fail(fmt.Errorf("row %d, column %q: not WKT: %w", key, c, err))
				}
			}
			return fail(err)
		}
		if _, err := conn.ExecContext(ctx, "DROP TABLE jobs_in"); err != nil {
			return fail(err)
		}
		return nil
	}
	if err := s.roomy(ctx, load); err != nil {
		return err
	}
	crashpoint.Hit("duckdb: rows loaded, not published")
	if err := s.loadSchema(ctx); err != nil {
		return err
	}
	if err := s.flushLocked(ctx); err != nil {
		return err
	}
	if s.building != "" {
		return s.commitWork(ctx)
	}
	return nil
}

// firstBadGeometry finds the first row of the staging table whose column
// c does not cast to GEOMETRY (TRY_CAST raises for geometries too). Only
// used once the bulk cast failed.
func firstBadGeometry(ctx context.Context, conn *sql.Conn, c string) (int64, bool) {
	rows, err := conn.QueryContext(ctx, "SELECT "+keyColumn+", "+sqlbuild.Quote(c)+" FROM jobs_in WHERE "+sqlbuild.Quote(c)+" IS NOT NULL ORDER BY "+keyColumn)
	if err != nil {
		return 0, false
	}
	type cell struct {
		key int64
		wkt string
	}
	var cells []cell
	for rows.Next() {
		var x cell
		if rows.Scan(&x.key, &x.wkt) == nil {
			cells = append(cells, x)
		}
	}
	rows.Close()
	for _, x := range cells {
		var g any
		if conn.QueryRowContext(ctx, "SELECT CAST(? AS GEOMETRY)", x.wkt).Scan(&g) != nil {
			return x.key, true
		}
	}
	return 0, false
}

// appendValue converts a value to what the appender wants for a column of
// type typ: it does not convert types itself.
func appendValue(v any, typ string) any {
	switch {
	case v == nil:
		return nil
	case typ == "DOUBLE":
		switch x := v.(type) {
		case int64:
			return float64(x)
		case int:
			return float64(x)
		}
	case typ == "BIGINT":
		if x, ok := v.(int); ok {
			return int64(x)
		}
	case typ == "VARCHAR" || typ == "GEOMETRY":
		if _, ok := v.(string); !ok {
			return fmt.Sprint(v)
		}
	}
	return v
}

// inferType picks a column type from its values.
func inferType(data [][]any, i int, geometryName bool) string {
	typ := ""
	for _, r := range data {
		var t string
		switch r[i].(type) {
		case nil:
			continue
		case int64, int:
			t = "BIGINT"
		case float64:
			t = "DOUBLE"
		case bool:
			t = "BOOLEAN"
		default:
			t = "VARCHAR"
		}
		switch {
		case typ == "":
			typ = t
		case typ == t:
		case (typ == "BIGINT" && t == "DOUBLE") || (typ == "DOUBLE" && t == "BIGINT"):
			typ = "DOUBLE"
		default:
			typ = "VARCHAR"
		}
	}
	if typ == "" {
		typ = "VARCHAR"
	}
	if geometryName && typ == "VARCHAR" {
		return "GEOMETRY"
	}
	return typ
}
