package worker_test

import (
	"context"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/openeo-batch/worker/driver"
	"github.com/openeo-batch/worker/remote/remotetest"
	"github.com/openeo-batch/worker/worker"
)

// slowStartStore is the real store, except that the write recording a job
// start (status queued) waits until the test lets it through.
type slowStartStore struct {
	driver.Store
	once    sync.Once
	held    chan struct{} // closed when the start write arrived
	release chan struct{}
}

func (s *slowStartStore) Update(ctx context.Context, us ...driver.Update) error {
	for _, u := range us {
		if u.Set[driver.ColStatus] == driver.Queued {
			s.once.Do(func() { close(s.held) })
			<-s.release
		}
	}
	return s.Store.Update(ctx, us...)
}

// TestNoDoubleHandling reproduces the interleaving that makes the Python
// tool count a job finished twice and download it twice: the job finishes
// on the back-end while the write of its start is still on its way, and
// tracking cycles run in between. Here the start's write is held until the
// back-end reports the job finished and many cycles passed.
func TestNoDoubleHandling(t *testing.T) { synctest.Test(t, noDoubleHandling) }

func noDoubleHandling(t *testing.T) {
	f := newFixture(t, 1, remotetest.Options{}) // jobs finish as soon as they start
	s := &slowStartStore{Store: f.store, held: make(chan struct{}), release: make(chan struct{})}
	f.cfg.Store = s
	f.cfg.PollInterval = time.Millisecond
	m, err := worker.New(f.cfg)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
	defer cancel()
	if err := m.Start(ctx); err != nil {
		t.Fatal(err)
	}
	<-s.held
	for f.servers["a"].Jobs()[0].Status != "finished" {
		time.Sleep(time.Millisecond)
	}
	time.Sleep(30 * time.Millisecond) // dozens of 1ms cycles run meanwhile
	close(s.release)
	if err := m.Wait(); err != nil {
		t.Fatal(err)
	}
	st := m.Stats()
	req := f.servers["a"].Requests()
	if st["job finished"] != 1 || st["job download"] != 1 || req["GET /assets/{job_id}/{name}"] != 1 || req["POST /jobs/{job_id}/results"] != 1 {
		t.Errorf("finished %d, downloads %d (stats), asset requests %d, starts %d: want 1 each",
			st["job finished"], st["job download"], req["GET /assets/{job_id}/{name}"], req["POST /jobs/{job_id}/results"])
	}
	if r := f.rows(t)[0]; r.Status != driver.Finished || r.DownloadPending {
		t.Errorf("row = %+v", r)
	}
}
