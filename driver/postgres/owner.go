package postgres

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/openeo-batch/worker/driver"
)

// Heartbeat timing of an Owner (see OwnerOptions).
const (
	DefaultHeartbeat  = 5 * time.Second
	DefaultStaleAfter = 30 * time.Second
)

// OwnerOptions set the heartbeat of an Owner.
type OwnerOptions struct {
	// Heartbeat is how often the worker renews its row in T_workers
	// (default DefaultHeartbeat). A negative value starts no renewal:
	// the caller calls Beat (tests).
	Heartbeat time.Duration
	// StaleAfter is the age of a heartbeat, by the database's clock,
	// after which others take the worker's rows over (default
	// DefaultStaleAfter). A worker that has not renewed its heartbeat for
	// half of it gives up first (Lost), so that it stops before others
	// start.
	StaleAfter time.Duration
}

// Owner is a worker's identity among the workers on any machine that
// share a table: a row in T_workers whose heartbeat it renews. It is the
// counterpart, across machines, of worker.LockOwner's lock files: both
// are a driver.Owner, and run takes the one its store offers.
//
// Taking over is one transaction per gone worker, under an advisory lock
// on its id: the rows it owned that still need a manager (active, or a
// download pending) get this worker's id, and its row in T_workers is
// deleted. The first caller of Alive that finds the worker gone takes
// every such row and gets false; every later caller, which finds the
// rows owned by a live worker, gets true. So exactly one worker acts on
// a gone worker's rows, whatever stale selection the others hold.
//
// A worker that was only slow (a pause longer than StaleAfter) finds its
// row gone at its next heartbeat, and is Lost: it stops and starts again
// under a new id. It stops by itself, before the others take over, when
// its heartbeat has failed for StaleAfter/2.
type Owner struct {
	s    *Store
	id   string
	opts OwnerOptions

	mu        sync.Mutex
	reaped    map[string]bool      // gone workers whose rows this one took
	fresh     map[string]time.Time // alive at the last look, until
	lastBeat  time.Time
	lost      chan struct{}
	lostErr   error
	stop      chan struct{}
	done      sync.WaitGroup
	closeOnce sync.Once
}

var (
	_ driver.Owner    = (*Owner)(nil)
	_ driver.Liveness = (*Store)(nil)
)

// Register makes this process a worker of the table, with the default
// heartbeat (see RegisterWith).
func (s *Store) Register(ctx context.Context) (driver.Owner, error) {
	return s.RegisterWith(ctx, OwnerOptions{})
}

// RegisterWith inserts this worker's row into T_workers (made if an older
// table lacks it) and starts renewing its heartbeat.
func (s *Store) RegisterWith(ctx context.Context, opts OwnerOptions) (*Owner, error) {
	if _, err := s.userColumns(ctx); err != nil {
		return nil, err
	}
	if opts.Heartbeat == 0 {
		opts.Heartbeat = DefaultHeartbeat
	}
	if opts.StaleAfter <= 0 {
		opts.StaleAfter = DefaultStaleAfter
	}
	var b [8]byte
	rand.Read(b[:])
	host, _ := os.Hostname()
	o := &Owner{s: s, id: hex.EncodeToString(b[:]), opts: opts, reaped: map[string]bool{}, fresh: map[string]time.Time{},
		lost: make(chan struct{}), stop: make(chan struct{}), lastBeat: time.Now()}
	if _, err := s.pool.Exec(ctx, "INSERT INTO "+s.q("_workers")+" (worker_id, host, pid) VALUES ($1, $2, $3)", o.id, host, os.Getpid()); err != nil {
		return nil, s.wrap(fmt.Errorf("register worker: %w", err))
	}
	if opts.Heartbeat > 0 {
		o.done.Add(1)
		go o.beatLoop()
	}
	return o, nil
}

// ID returns this worker's id.
func (o *Owner) ID() string { return o.id }

// Lost is closed when this worker must stop (see Owner); Err says why.
func (o *Owner) Lost() <-chan struct{} { return o.lost }

// Err returns why the worker was lost, or nil.
func (o *Owner) Err() error {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.lostErr
}

func (o *Owner) setLost(err error) {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.lostErr == nil {
		o.lostErr = err
		close(o.lost)
	}
}

func (o *Owner) beatLoop() {
	defer o.done.Done()
	t := time.NewTicker(o.opts.Heartbeat)
	defer t.Stop()
	for {
		select {
		case <-o.stop:
			return
		case <-o.lost:
			return
		case <-t.C:
			ctx, cancel := context.WithTimeout(context.Background(), o.opts.Heartbeat)
			o.Beat(ctx)
			cancel()
		}
	}
}

// ErrLost means other workers took this worker's rows over.
var ErrLost = errors.New("this worker's heartbeat is stale: other workers took its rows over")

// Beat renews the heartbeat once. It returns ErrLost, and the Owner is
// Lost, when the worker's row is gone (others found it stale and took its
// rows), or when beats have failed for half of StaleAfter.
func (o *Owner) Beat(ctx context.Context) error {
	tag, err := o.s.pool.Exec(ctx, "UPDATE "+o.s.q("_workers")+" SET heartbeat_at = now() WHERE worker_id = $1", o.id)
	o.mu.Lock()
	since := time.Since(o.lastBeat)
	if err == nil && tag.RowsAffected() == 1 {
		o.lastBeat = time.Now()
	}
	o.mu.Unlock()
	switch {
	case err == nil && tag.RowsAffected() == 0:
		err = ErrLost
	case err != nil && since > o.opts.StaleAfter/2:
		err = fmt.Errorf("%w (no heartbeat for %s: %w)", ErrLost, since.Round(time.Second), err)
	case err != nil:
		return o.s.wrap(err) // tried again at the next beat
	default:
		return nil
	}
	o.setLost(err)
	return err
}

// Alive reports whether the worker with id still runs, and when it does
// not, takes its rows over (see Owner): false means they are now this
// worker's. An error of the database counts as alive: nothing is taken
// over that might still be worked on.
func (o *Owner) Alive(id string) bool {
	if id == o.id {
		return true
	}
	o.mu.Lock()
	if o.reaped[id] {
		o.mu.Unlock()
		return false
	}
	if until, ok := o.fresh[id]; ok && time.Now().Before(until) {
		o.mu.Unlock()
		return true
	}
	o.mu.Unlock()
	select {
	case <-o.lost:
		return true // a lost worker takes nothing over
	default:
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	alive, took, err := o.takeOver(ctx, id)
	o.mu.Lock()
	defer o.mu.Unlock()
	switch {
	case err != nil:
		return true
	case alive:
		// Asked again within a heartbeat: it is at least as alive.
		o.fresh[id] = time.Now().Add(o.opts.Heartbeat)
		return true
	case took:
		o.reaped[id] = true
		return false
	}
	return true // gone, but its rows are another worker's now
}

// takeOver checks the worker id and, if it is gone, gives its rows that
// still need a manager to this worker, in one transaction under an
// advisory lock on id.
func (o *Owner) takeOver(ctx context.Context, id string) (alive, took bool, err error) {
	s := o.s
	tx, err := s.pool.Begin(ctx)
	if err != nil {
		return false, false, err
	}
	defer tx.Rollback(context.WithoutCancel(ctx))
	if _, err := tx.Exec(ctx, "SELECT pg_advisory_xact_lock($1)", s.lockKey("worker "+id)); err != nil {
		return false, false, err
	}
	err = tx.QueryRow(ctx, "SELECT heartbeat_at > now() - make_interval(secs => $2) FROM "+s.q("_workers")+" WHERE worker_id = $1",
		id, o.opts.StaleAfter.Seconds()).Scan(&alive)
	if err != nil && !errors.Is(err, pgx.ErrNoRows) {
		return false, false, err
	}
	if alive {
		return true, false, tx.Commit(ctx)
	}
	var owner any = id
	if id == "" {
		owner = nil
	}
	tag, err := tx.Exec(ctx, "UPDATE "+s.q("")+" SET worker_id = $1 WHERE worker_id IS NOT DISTINCT FROM $2 AND (status = ANY($3) OR download_pending)",
		o.id, owner, statusStrings(driver.ActiveStatuses()))
	if err != nil {
		return false, false, err
	}
	if _, err := tx.Exec(ctx, "DELETE FROM "+s.q("_workers")+" WHERE worker_id = $1", id); err != nil {
		return false, false, err
	}
	return false, tag.RowsAffected() > 0, tx.Commit(ctx)
}

// Close stops the heartbeat and deletes the worker's row: the rows it
// owned are taken over by the next worker that looks.
func (o *Owner) Close() error {
	var err error
	o.closeOnce.Do(func() {
		close(o.stop)
		o.done.Wait()
		_, err = o.s.pool.Exec(context.Background(), "DELETE FROM "+o.s.q("_workers")+" WHERE worker_id = $1", o.id)
		err = o.s.wrap(err)
	})
	return err
}

// Workers returns the ids of the workers whose heartbeat is fresh.
func (s *Store) Workers(ctx context.Context) ([]string, error) {
	if _, err := s.userColumns(ctx); err != nil {
		return nil, err
	}
	if s.foreign != nil {
		return nil, nil // a reader of a table no worker adopted yet: no workers table, no worker
	}
	rows, err := s.pool.Query(ctx, "SELECT worker_id FROM "+s.q("_workers")+" WHERE heartbeat_at > now() - make_interval(secs => $1) ORDER BY started_at",
		DefaultStaleAfter.Seconds())
	if err != nil {
		return nil, s.wrap(err)
	}
	ids, err := pgx.CollectRows(rows, pgx.RowTo[string])
	return ids, s.wrap(err)
}
