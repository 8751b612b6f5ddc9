package postgres_test

import (
	"errors"
	"sync"
	"testing"

	"github.com/openeo-batch/worker/driver"
	"github.com/openeo-batch/worker/driver/drivertest"
	"github.com/openeo-batch/worker/driver/postgres"
	"github.com/openeo-batch/worker/driver/postgres/pgtest"
)

// newJobs opens a fresh table of n rows.
func newJobs(t *testing.T, n int) (*postgres.Store, []driver.Job) {
	t.Helper()
	s, err := postgres.Open(t.Context(), pgtest.Location(t))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	var rows [][]any
	for i := range n {
		rows = append(rows, []any{int64(i)})
	}
	if err := s.Init(t.Context(), []string{"n"}, drivertest.Rows(rows)); err != nil {
		t.Fatal(err)
	}
	jobs, err := s.Select(t.Context(), driver.Filter{})
	if err != nil {
		t.Fatal(err)
	}
	return s, jobs
}

func register(t *testing.T, s *postgres.Store) *postgres.Owner {
	t.Helper()
	o, err := s.RegisterWith(t.Context(), postgres.OwnerOptions{Heartbeat: -1})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { o.Close() })
	return o
}

// makeStale ages a worker's heartbeat by an hour, as a machine that died
// an hour ago leaves it: no test waits for a heartbeat to age.
func makeStale(t *testing.T, s *postgres.Store, id string) {
	t.Helper()
	_, err := s.Pool().Exec(t.Context(), `UPDATE "`+s.Table()+`_workers" SET heartbeat_at = now() - interval '1 hour' WHERE worker_id = $1`, id)
	if err != nil {
		t.Fatal(err)
	}
}

func TestOwnerTakeOver(t *testing.T) {
	s, jobs := newJobs(t, 4)
	ctx := t.Context()
	a, b, c := register(t, s), register(t, s), register(t, s)
	// a's rows: one running, one with a download pending, one done.
	if err := s.Update(ctx,
		driver.Update{Key: jobs[0].Key, Set: driver.Values{driver.ColStatus: driver.Running, driver.ColWorker: a.ID()}},
		driver.Update{Key: jobs[1].Key, Set: driver.Values{driver.ColStatus: driver.Finished, driver.ColDownloadPending: true, driver.ColWorker: a.ID()}},
		driver.Update{Key: jobs[2].Key, Set: driver.Values{driver.ColStatus: driver.Finished, driver.ColWorker: a.ID()}},
	); err != nil {
		t.Fatal(err)
	}
	ids, err := s.Workers(ctx)
	if err != nil || len(ids) != 3 {
		t.Fatalf("Workers = %v, %v; want 3", ids, err)
	}
	if !b.Alive(a.ID()) || !c.Alive(a.ID()) {
		t.Fatal("a worker with a fresh heartbeat is not alive")
	}
	if err := a.Beat(ctx); err != nil {
		t.Fatalf("Beat: %v", err)
	}
	makeStale(t, s, a.ID())
	if b.Alive(a.ID()) {
		t.Fatal("b: a stale worker is alive")
	}
	if !c.Alive(a.ID()) {
		t.Error("c: a gone worker whose rows b took is not alive to c: both would act on them")
	}
	if b.Alive(a.ID()) {
		t.Error("b: the worker it took over is alive again")
	}
	for i, want := range []string{b.ID(), b.ID(), a.ID()} {
		j, _ := s.Get(ctx, jobs[i].Key)
		if j.Worker != want {
			t.Errorf("row %d: worker %q, want %q", i, j.Worker, want)
		}
	}
	if err := a.Beat(ctx); !errors.Is(err, postgres.ErrLost) {
		t.Errorf("Beat of a worker taken over: err = %v, want ErrLost", err)
	}
	select {
	case <-a.Lost():
	default:
		t.Error("a worker taken over is not Lost")
	}
}

// TestOwnerTakeOverRace: many workers find one gone worker at once;
// exactly one takes its rows.
func TestOwnerTakeOverRace(t *testing.T) {
	s, jobs := newJobs(t, 3)
	ctx := t.Context()
	gone := register(t, s)
	for _, j := range jobs {
		if err := s.Update(ctx, driver.Update{Key: j.Key, Set: driver.Values{driver.ColStatus: driver.Running, driver.ColWorker: gone.ID()}}); err != nil {
			t.Fatal(err)
		}
	}
	makeStale(t, s, gone.ID())
	var owners []*postgres.Owner
	for range 6 {
		owners = append(owners, register(t, s))
	}
	var wg sync.WaitGroup
	took := make([]bool, len(owners))
	for i, o := range owners {
		wg.Go(func() { took[i] = !o.Alive(gone.ID()) })
	}
	wg.Wait()
	var winner *postgres.Owner
	for i, tk := range took {
		if tk {
			if winner != nil {
				t.Fatal("two workers took over one gone worker")
			}
			winner = owners[i]
		}
	}
	if winner == nil {
		t.Fatal("nobody took over the gone worker")
	}
	all, _ := s.Select(ctx, driver.Filter{})
	for _, j := range all {
		if j.Worker != winner.ID() {
			t.Errorf("row %d: worker %q, want the winner %q", j.Key, j.Worker, winner.ID())
		}
	}
}

// Rows that no worker owns (a run before workers were registered) are
// taken over once too.
func TestOwnerTakesUnowned(t *testing.T) {
	s, jobs := newJobs(t, 2)
	ctx := t.Context()
	if err := s.Update(ctx, driver.Update{Key: jobs[0].Key, Set: driver.Values{driver.ColStatus: driver.Queued}}); err != nil {
		t.Fatal(err)
	}
	a, b := register(t, s), register(t, s)
	if a.Alive("") {
		t.Fatal("rows of no worker were not taken")
	}
	if !b.Alive("") {
		t.Error("rows of no worker taken twice")
	}
	if j, _ := s.Get(ctx, jobs[0].Key); j.Worker != a.ID() {
		t.Errorf("worker %q, want %q", j.Worker, a.ID())
	}
	if j, _ := s.Get(ctx, jobs[1].Key); j.Worker != "" {
		t.Errorf("a not_started row was taken: worker %q", j.Worker)
	}
}

// A worker that closes leaves; its rows are taken over.
func TestOwnerClose(t *testing.T) {
	s, jobs := newJobs(t, 1)
	ctx := t.Context()
	a, b := register(t, s), register(t, s)
	if err := s.Update(ctx, driver.Update{Key: jobs[0].Key, Set: driver.Values{driver.ColStatus: driver.Running, driver.ColWorker: a.ID()}}); err != nil {
		t.Fatal(err)
	}
	if err := a.Close(); err != nil {
		t.Fatal(err)
	}
	if ids, _ := s.Workers(ctx); len(ids) != 1 || ids[0] != b.ID() {
		t.Errorf("Workers after a closed = %v, want [%s]", ids, b.ID())
	}
	if b.Alive(a.ID()) {
		t.Error("a closed worker is alive")
	}
}
