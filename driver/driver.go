// Package driver defines the job table: its rows (Job), their statuses, the
// Store contract every storage back-end implements, and a registry through
// which concrete drivers (SQLite, CSV, DuckDB, ...) make themselves known, in
// the manner of database/sql.
//
// A job table has the user's own columns (any names, any scalar values) plus
// the manager's columns (see ManagerColumns), named as in the openEO Python
// client so that tables can move between the two tools.
package driver

import (
	"cmp"
	"context"
	"database/sql"
	"errors"
	"iter"
	"slices"
	"strings"
)

// Sentinel errors. Drivers wrap them; callers test with errors.Is.
var (
	// ErrNotFound means no row matched: an unknown key, or no row to claim.
	ErrNotFound = errors.New("not found")
	// ErrConflict means an update's precondition (its From statuses) did not hold.
	ErrConflict = errors.New("conflict: row changed concurrently")
	// ErrNoTable means the store holds no job table yet (run init first).
	ErrNoTable = errors.New("no job table")
	// ErrExists means Init was called on a store that already has a table.
	ErrExists = errors.New("job table already exists")
	// ErrClosed means the store was used after Close.
	ErrClosed = errors.New("store closed")
	// ErrCapped means a Cap of ClaimWithin was reached: nothing was claimed.
	ErrCapped = errors.New("claim capped")
)

// Job is one row of the job table.
type Job struct {
	// Key identifies the row within its table; keys grow in table order.
	Key int64

	ID               string // back-end job id, empty before creation
	Backend          string // backend_name
	Status           Status
	StartTime        string // RFC 3339 UTC, when the job was started
	RunningStartTime string // RFC 3339 UTC, when it was first seen running
	CPU              string // usage "value unit", e.g. "40668 cpu-seconds"
	Memory           string
	Duration         string
	Costs            *float64

	Attempts        int    // start attempts so far
	LastError       string // why the last attempt or the job failed
	UpdatedAt       string // RFC 3339 UTC, when a manager last changed the row
	Tag             string // marker put in the back-end job to find it again after a crash
	DownloadPending bool   // results or error logs still to be written to disk
	Worker          string // the process responsible for the row's next step
	// PinnedBackend is the back-end the user gave the row (pinned_backend):
	// its backend_name while not_started, recorded by Claim. Empty when
	// any back-end may take it.
	PinnedBackend string

	// Data holds the user's columns: string, int64, float64, bool or nil.
	Data map[string]any
}

// Filter selects rows. The zero value selects every row.
type Filter struct {
	Statuses []Status // any of these; empty means any status
	Backend  string   // only rows of this back-end; empty means any
	// DownloadPending, when true, keeps only rows whose download is pending.
	DownloadPending bool
	Limit           int // at most this many rows; 0 means no limit
	// After, when positive, keeps only rows whose Key is greater: with
	// Limit, a table is read a page at a time (After = the last key of the
	// page before).
	After int64
}

// Apply returns the rows of jobs, which are in table order, that f
// selects, for a store that cannot select them in its own query language
// (a reader of a table another program wrote). It reuses jobs' array.
func (f Filter) Apply(jobs []Job) []Job {
	out := jobs[:0]
	for _, j := range jobs {
		if f.Limit > 0 && len(out) == f.Limit {
			break
		}
		if (len(f.Statuses) == 0 || slices.Contains(f.Statuses, j.Status)) && (f.Backend == "" || j.Backend == f.Backend) &&
			(!f.DownloadPending || j.DownloadPending) && j.Key > f.After {
			out = append(out, j)
		}
	}
	return out
}

// Count is the number of rows with one status on one back-end.
type Count struct {
	Backend string
	Status  Status
	N       int
}

// CountJobs counts jobs per back-end and status, as Store.Counts does,
// ordered by back-end, then status.
func CountJobs(jobs []Job) []Count {
	n := map[Count]int{}
	for _, j := range jobs {
		n[Count{Backend: j.Backend, Status: j.Status}]++
	}
	out := []Count{}
	for c, k := range n {
		c.N = k
		out = append(out, c)
	}
	slices.SortFunc(out, func(a, b Count) int {
		return cmp.Or(strings.Compare(a.Backend, b.Backend), strings.Compare(string(a.Status), string(b.Status)))
	})
	return out
}

// Values assigns manager columns by name (see ManagerColumns). A nil value
// clears the column. Values of a Status column may be Status or string.
type Values map[string]any

// Update is a partial update of one row.
type Update struct {
	Key int64
	// From, when not empty, is the precondition: the row's status must be one
	// of these or the whole batch fails with ErrConflict.
	From []Status
	Set  Values
}

// Store is a job table. Implementations are safe for concurrent use, and
// every method that writes is atomic: after a crash the table holds either
// all of a call's changes or none.
//
// A table another program wrote (the user's columns only, or some of the
// Python client's) is opened as Init would have made it: the missing
// manager columns get their defaults. A value no manager column can hold
// (an unknown status, costs that are no number) is an error naming the
// file, row and column, and leaves the file as it was; no value is turned
// into NULL. drivertest checks all of this, and that a crash while a store
// opens, changes or creates a table leaves one the next open reads whole.
type Store interface {
	// Init creates the table from the user's rows. columns names each value
	// of a row; columns that are manager columns (a table written by the
	// Python client) keep their values, the others are the user's. Missing
	// manager columns get their defaults (status not_started). It returns
	// ErrExists if the table is there already, and an error naming the row
	// and column of a bad value.
	Init(ctx context.Context, columns []string, rows iter.Seq2[[]any, error]) error

	// Columns returns the user's column names in table order.
	Columns(ctx context.Context) ([]string, error)

	// Counts returns the number of rows per back-end and status, without
	// reading the rows.
	Counts(ctx context.Context) ([]Count, error)

	// Select returns the rows matching f, in table order.
	Select(ctx context.Context, f Filter) ([]Job, error)

	// Get returns the row with key, or ErrNotFound.
	Get(ctx context.Context, key int64) (Job, error)

	// Update applies all updates atomically: all of them or none. It returns
	// ErrNotFound for an unknown key and ErrConflict when a From
	// precondition does not hold.
	Update(ctx context.Context, updates ...Update) error

	// Claim atomically takes the first not_started row in table order,
	// applies set to it and returns it as changed. Two callers never get the
	// same row. When set assigns a back-end (backend_name), only a row
	// whose backend_name is empty or already that back-end's is taken: the
	// user gave a not_started row with a back-end to that back-end alone.
	// In the same step it records the row's backend_name as it was before
	// the claim in pinned_backend (nil when empty; see ClaimValues), unless
	// set assigns pinned_backend: whoever frees the row later gives it
	// back to that back-end (Job.Unclaimed).
	// It returns ErrNotFound when no row is not_started (for that back-end).
	Claim(ctx context.Context, set Values) (Job, error)

	// Close releases the store, flushing what is pending.
	Close() error
}

// Cap bounds a claim: ClaimWithin claims only while fewer than Max rows
// of Backend have one of Statuses.
type Cap struct {
	Backend  string
	Statuses []Status
	Max      int
}

// CapClaimer is a Store that several processes can share. Each process
// counting the rows of a back-end and then claiming would together take
// a back-end's slots once per process; ClaimWithin checks the counts and
// claims in one atomic step.
type CapClaimer interface {
	// ClaimWithin is Claim, made only if every cap holds; it returns
	// ErrCapped, and changes nothing, when one does not.
	ClaimWithin(ctx context.Context, set Values, caps ...Cap) (Job, error)
}

// WriteChecker is a Store that can find itself read-only: a CSV, Parquet
// or DuckDB table opened while another process writes it. Writable
// returns nil when the store takes writes, else why not; a manager checks
// it before it sends any request.
type WriteChecker interface {
	Writable() error
}

// Flusher is a Store that keeps its changes durable in a journal or a work
// file of its own, and rewrites the table file that other programs read
// (a CSV or Parquet file) only when asked: Flush rewrites it now if
// anything changed, and Close does too. The manager flushes once per
// tracking cycle and when its run ends, as the Python client writes its
// table once per loop.
type Flusher interface {
	Flush(ctx context.Context) error
}

// Owner is one worker's identity among the processes that share a table,
// kept by the store itself (see Liveness). worker.Owner is the part the
// manager uses: ID and Alive.
type Owner interface {
	// ID is this worker's identity, recorded in the worker_id column.
	ID() string
	// Alive reports whether the worker with id still runs. false means
	// its rows are this worker's to take over: never for two callers.
	Alive(id string) bool
	// Lost is closed when this worker can no longer vouch that it is
	// alive (its heartbeat failed for too long, or others took over its
	// rows): it must stop acting on rows at once.
	Lost() <-chan struct{}
	// Close gives up the identity; the rows it owned are taken over.
	Close() error
}

// Liveness is a Store that keeps which workers share it and whether each
// still runs, for workers that do not share a machine (a database
// server). Stores in files leave that to the lock files of
// worker.LockOwner, which the operating system releases when a process
// ends.
type Liveness interface {
	// Register makes this process a worker of the table.
	Register(ctx context.Context) (Owner, error)
	// Workers returns the ids of the workers that run now.
	Workers(ctx context.Context) ([]string, error)
}

// Replacer is a Store whose rows can all be replaced in one transaction
// (a database server, where there is no file to write anew and rename):
// Replace takes columns and rows as Init does, adds the columns the table
// lacks, and leaves either all the new rows, keyed from 1 in their order,
// or the old ones.
type Replacer interface {
	Replace(ctx context.Context, columns []string, rows iter.Seq2[[]any, error]) error
}

// SQLReader is a Store that runs reading SQL itself (a database server):
// ReadSQL runs one statement, with args for its placeholders, over the job
// table called jobs (the user's columns, then the manager's), in a
// transaction that refuses any change. done ends it, once rows are read
// and closed.
type SQLReader interface {
	ReadSQL(ctx context.Context, stmt string, args ...any) (rows *sql.Rows, done func(), err error)
}

// CRSKeeper is a Store that records the coordinate reference system of
// its geometry columns in the table itself (GeoParquet's "crs", a DuckDB
// GEOMETRY column's CRS). Other stores keep it, if at all, in a column
// such as the epsg column worker split writes.
type CRSKeeper interface {
	// GeometryCRS returns the CRS of column c as the table names it
	// (PROJJSON text), "" when it names none (longitude/latitude).
	GeometryCRS(c string) string
	// SetGeometryCRS gives column c's CRS (PROJJSON text) before Init,
	// which records it; after Init it fails.
	SetGeometryCRS(c, projjson string) error
}
