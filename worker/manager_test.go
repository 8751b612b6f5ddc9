package worker_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"testing/synctest"
	"time"

	"github.com/openeo-batch/worker/driver"
	"github.com/openeo-batch/worker/driver/csvfile"
	"github.com/openeo-batch/worker/driver/drivertest"
	"github.com/openeo-batch/worker/driver/sqlite"
	"github.com/openeo-batch/worker/remote"
	"github.com/openeo-batch/worker/remote/remotetest"
	"github.com/openeo-batch/worker/worker"
)

// fixture is a job table and fake back-ends for one test.
type fixture struct {
	store   driver.Store
	root    string
	servers map[string]*remotetest.Server
	cfg     worker.Config
	clock   *stampClock // the servers' clock
}

func newFixture(t *testing.T, rows int, opts remotetest.Options, backends ...string) *fixture {
	t.Helper()
	store, err := sqlite.Open(t.Context(), filepath.Join(t.TempDir(), "jobs.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { store.Close() })
	var data [][]any
	for i := range rows {
		data = append(data, []any{int64(2000 + i), fmt.Sprintf("tile %d", i)})
	}
	if err := store.Init(t.Context(), []string{"year", "title"}, drivertest.Rows(data)); err != nil {
		t.Fatal(err)
	}
	f := &fixture{store: store, root: t.TempDir(), servers: map[string]*remotetest.Server{}}
	if len(backends) == 0 {
		backends = []string{"a"}
	}
	clock := newStampClock()
	f.clock = clock
	for _, name := range backends {
		srv := startServer(t, opts, clock)
		f.servers[name] = srv
		c, err := remote.New(srv.APIURL, &remote.Options{HTTPClient: virtualClient(clock)})
		if err != nil {
			t.Fatal(err)
		}
		c.SetToken(srv.ValidToken())
		f.cfg.Backends = append(f.cfg.Backends, worker.Backend{Name: name, Client: c, ParallelJobs: 2})
	}
	f.cfg.Store = store
	f.cfg.RootDir = f.root
	f.cfg.PollInterval = 5 * time.Millisecond
	f.cfg.MinBackoff, f.cfg.MaxBackoff = time.Millisecond, 10*time.Millisecond
	f.cfg.Logger = slog.New(slog.DiscardHandler)
	f.cfg.StartJob = startJob
	return f
}

// startJob creates a job that adds the row's year to 1.
func startJob(ctx context.Context, row driver.Job, conn *remote.Client) (string, error) {
	return conn.CreateJob(ctx, &remote.JobRequest{
		Title: fmt.Sprint(row.Data["title"]),
		Process: remote.Process{ProcessGraph: map[string]any{
			"add": map[string]any{"process_id": "add", "arguments": map[string]any{"x": row.Data["year"], "y": 1}, "result": true},
		}},
	})
}

func (f *fixture) run(t *testing.T) *worker.Manager {
	t.Helper()
	m, err := worker.New(f.cfg)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	if err := m.Run(ctx); err != nil {
		t.Fatalf("Run: %v", err)
	}
	return m
}

func (f *fixture) rows(t *testing.T) []driver.Job {
	t.Helper()
	rows, err := f.store.Select(t.Context(), driver.Filter{})
	if err != nil {
		t.Fatal(err)
	}
	return rows
}

// backendJobs counts back-end jobs per title over all servers.
func (f *fixture) backendJobs() map[string]int {
	n := map[string]int{}
	for _, srv := range f.servers {
		for _, j := range srv.Jobs() {
			n[j.Title]++
		}
	}
	return n
}

func TestRunToCompletion(t *testing.T) { synctest.Test(t, runToCompletion) }

func runToCompletion(t *testing.T) {
	opts := remotetest.Options{
		QueueTime: 5 * time.Millisecond, RunTime: 10 * time.Millisecond, AssetSize: 300,
		Outcome: func(j *remote.JobRequest) error {
			if j.Title == "tile 3" {
				return errors.New("tile 3 has no data")
			}
			return nil
		},
	}
	f := newFixture(t, 12, opts, "a", "b")
	m := f.run(t)

	perBackend := map[string]int{}
	for _, r := range f.rows(t) {
		perBackend[r.Backend]++
		want := driver.Finished
		if r.Data["title"] == "tile 3" {
			want = driver.Error
		}
		if r.Status != want || r.ID == "" || r.DownloadPending {
			t.Errorf("row %v: status %q id %q pending %v, want %q", r.Data["title"], r.Status, r.ID, r.DownloadPending, want)
			continue
		}
		// running_start_time is set when a job is seen running or finished
		// (as in the Python tool): a job may fail between two polls unseen.
		if r.StartTime == "" || (want == driver.Finished && r.RunningStartTime == "") || r.Costs == nil ||
			!strings.HasSuffix(r.CPU, " cpu-seconds") || !strings.HasSuffix(r.Memory, " mb-seconds") || !strings.HasSuffix(r.Duration, " seconds") {
			t.Errorf("row %v: usage not recorded: %+v", r.Data["title"], r)
		}
		if want == driver.Error {
			b, err := os.ReadFile(worker.ErrorLogPath(f.root, r.ID))
			if err != nil || !bytes.Contains(b, []byte("tile 3 has no data")) {
				t.Errorf("error log of %s: %s, %v", r.ID, b, err)
			}
			if !strings.Contains(r.LastError, "tile 3 has no data") {
				t.Errorf("last_error of the failed job = %q, want its error log", r.LastError)
			}
			continue
		}
		got, err := os.ReadFile(filepath.Join(worker.JobDir(f.root, r.ID), "result.tif"))
		if err != nil || !bytes.Equal(got, remotetest.AssetBytes(r.ID, "result.tif", 300)) {
			t.Errorf("result of %s: %d bytes, %v", r.ID, len(got), err)
		}
		var meta map[string]any
		b, err := os.ReadFile(worker.MetadataPath(f.root, r.ID))
		if err != nil || json.Unmarshal(b, &meta) != nil || meta["id"] != r.ID || meta["usage"] == nil {
			t.Errorf("metadata of %s: %s, %v", r.ID, b, err)
		}
	}
	if perBackend["a"] == 0 || perBackend["b"] == 0 {
		t.Errorf("rows per back-end = %v, want both used", perBackend)
	}
	for title, n := range f.backendJobs() {
		if n != 1 {
			t.Errorf("%d back-end jobs for %q, want 1", n, title)
		}
	}
	for name, srv := range f.servers {
		if p := srv.PeakActive(); p > 2 {
			t.Errorf("back-end %s had %d active jobs at once, parallel_jobs is 2", name, p)
		}
	}
	st := m.Stats()
	if st["job finished"] != 11 || st["job failed"] != 1 || st["job start"] != 12 || st["job download"] != 11 {
		t.Errorf("stats = %v", st)
	}
}

// A crash between creating a job and recording its id leaves a claimed row
// without id; the job carries the row's tag. The next run adopts it.
func TestResumeAdoptsCreatedJob(t *testing.T) { synctest.Test(t, resumeAdoptsCreatedJob) }

func resumeAdoptsCreatedJob(t *testing.T) {
	f := newFixture(t, 3, remotetest.Options{})
	ctx := t.Context()
	claimed, err := f.store.Claim(ctx, driver.Values{driver.ColStatus: driver.QueuedForStart, driver.ColBackend: "a", driver.ColTag: "tag-1"})
	if err != nil {
		t.Fatal(err)
	}
	id, err := startJob(ctx, claimed, f.cfg.Backends[0].Client.WithJobTag("tag-1"))
	if err != nil {
		t.Fatal(err)
	}
	f.run(t)
	row, _ := f.store.Get(ctx, claimed.Key)
	if row.ID != id || row.Status != driver.Finished {
		t.Errorf("row = %+v, want job %s adopted and finished", row, id)
	}
	if jobs := f.servers["a"].Jobs(); len(jobs) != 3 {
		t.Errorf("%d back-end jobs, want 3 (none created twice)", len(jobs))
	}
}

// A crash after creating and recording a job, before starting it.
func TestResumeStartsCreatedJob(t *testing.T) { synctest.Test(t, resumeStartsCreatedJob) }

func resumeStartsCreatedJob(t *testing.T) {
	f := newFixture(t, 1, remotetest.Options{})
	ctx := t.Context()
	claimed, _ := f.store.Claim(ctx, driver.Values{driver.ColStatus: driver.QueuedForStart, driver.ColBackend: "a", driver.ColTag: "t"})
	id, _ := startJob(ctx, claimed, f.cfg.Backends[0].Client.WithJobTag("t"))
	if err := f.store.Update(ctx, driver.Update{Key: claimed.Key, Set: driver.Values{driver.ColID: id}}); err != nil {
		t.Fatal(err)
	}
	f.run(t)
	if row, _ := f.store.Get(ctx, claimed.Key); row.Status != driver.Finished || row.ID != id {
		t.Errorf("row = %+v", row)
	}
	if n := len(f.servers["a"].Jobs()); n != 1 {
		t.Errorf("%d back-end jobs, want 1", n)
	}
}

// A claimed row whose create never reached the back-end is freed and run.
func TestResumeReleasesUncreatedClaim(t *testing.T) { synctest.Test(t, resumeReleasesUncreatedClaim) }

func resumeReleasesUncreatedClaim(t *testing.T) {
	f := newFixture(t, 2, remotetest.Options{})
	if _, err := f.store.Claim(t.Context(), driver.Values{driver.ColStatus: driver.QueuedForStart, driver.ColBackend: "a", driver.ColTag: "lost"}); err != nil {
		t.Fatal(err)
	}
	f.run(t)
	for _, r := range f.rows(t) {
		if r.Status != driver.Finished {
			t.Errorf("row %d: %q", r.Key, r.Status)
		}
	}
	if n := len(f.servers["a"].Jobs()); n != 2 {
		t.Errorf("%d back-end jobs, want 2", n)
	}
}

func TestVanishedJobEndsAsError(t *testing.T) { synctest.Test(t, vanishedJobEndsAsError) }

func vanishedJobEndsAsError(t *testing.T) {
	f := newFixture(t, 1, remotetest.Options{RunTime: time.Hour})
	ctx := t.Context()
	row := f.rows(t)[0]
	if err := f.store.Update(ctx, driver.Update{Key: row.Key, Set: driver.Values{
		driver.ColStatus: driver.Running, driver.ColBackend: "a", driver.ColID: "j-gone",
	}}); err != nil {
		t.Fatal(err)
	}
	f.run(t)
	got, _ := f.store.Get(ctx, row.Key)
	if got.Status != driver.Error || !strings.Contains(got.LastError, "not found") {
		t.Errorf("row = %+v, want error with the reason", got)
	}
}

func TestSkipAndStartFailed(t *testing.T) { synctest.Test(t, skipAndStartFailed) }

func skipAndStartFailed(t *testing.T) {
	f := newFixture(t, 2, remotetest.Options{})
	calls := map[any]int{}
	f.cfg.StartJob = func(ctx context.Context, row driver.Job, conn *remote.Client) (string, error) {
		calls[row.Data["title"]]++
		if row.Data["title"] == "tile 0" {
			return "", nil
		}
		return "", errors.New("no data for this tile")
	}
	f.cfg.Concurrency = 1 // calls is not locked
	f.run(t)
	rows := f.rows(t)
	if rows[0].Status != driver.Skipped {
		t.Errorf("row 0: %q, want skipped", rows[0].Status)
	}
	if rows[1].Status != driver.StartFailed || rows[1].Attempts != 3 || !strings.Contains(rows[1].LastError, "no data") {
		t.Errorf("row 1: %+v, want start_failed after 3 attempts with the reason", rows[1])
	}
	if calls["tile 1"] != 3 {
		t.Errorf("StartJob called %d times for the failing row, want 3", calls["tile 1"])
	}
}

func TestCancelRunningJobAfter(t *testing.T) { synctest.Test(t, cancelRunningJobAfter) }

func cancelRunningJobAfter(t *testing.T) {
	f := newFixture(t, 1, remotetest.Options{RunTime: time.Hour})
	f.cfg.CancelRunningJobAfter = 20 * time.Millisecond
	m := f.run(t)
	if r := f.rows(t)[0]; r.Status != driver.Canceled || !strings.Contains(r.LastError, "running longer than 20ms") {
		t.Errorf("status %q, last_error %q; want canceled, saying why", r.Status, r.LastError)
	}
	if m.Stats()["job cancel"] != 1 {
		t.Errorf("stats = %v", m.Stats())
	}
}

// Stopping a run at any point and running again finishes the table with
// one back-end job per row.
func TestStopAndResume(t *testing.T) { synctest.Test(t, stopAndResume) }

func stopAndResume(t *testing.T) {
	f := newFixture(t, 8, remotetest.Options{QueueTime: 5 * time.Millisecond, RunTime: 20 * time.Millisecond})
	for _, stopAfter := range []time.Duration{3 * time.Millisecond, 15 * time.Millisecond, 40 * time.Millisecond} {
		m, err := worker.New(f.cfg)
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithTimeout(t.Context(), stopAfter)
		err = m.Run(ctx)
		cancel()
		if err != nil && !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("Run: %v", err)
		}
	}
	f.run(t)
	for _, r := range f.rows(t) {
		if r.Status != driver.Finished || r.DownloadPending {
			t.Errorf("row %d: %q pending=%v", r.Key, r.Status, r.DownloadPending)
		}
		if _, err := os.Stat(worker.MetadataPath(f.root, r.ID)); err != nil {
			t.Errorf("row %d: results not on disk: %v", r.Key, err)
		}
	}
	for title, n := range f.backendJobs() {
		if n != 1 {
			t.Errorf("%d back-end jobs for %q", n, title)
		}
	}
}

func TestUnconfiguredBackendIsAnError(t *testing.T) { synctest.Test(t, unconfiguredBackendIsAnError) }

func unconfiguredBackendIsAnError(t *testing.T) {
	f := newFixture(t, 1, remotetest.Options{})
	row := f.rows(t)[0]
	f.store.Update(t.Context(), driver.Update{Key: row.Key, Set: driver.Values{driver.ColStatus: driver.Running, driver.ColBackend: "elsewhere", driver.ColID: "x"}})
	m, _ := worker.New(f.cfg)
	err := m.Run(t.Context())
	if err == nil || !strings.Contains(err.Error(), "elsewhere") {
		t.Errorf("err = %v, want it to name the back-end", err)
	}
}

func TestConfigValidation(t *testing.T) {
	_, err := worker.New(worker.Config{})
	for _, want := range []string{"Store", "StartJob", "back-end"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("err = %v, want it to mention %s", err, want)
		}
	}
}

// Asset names come from the back-end: one that would leave the job folder
// is refused and nothing is written outside it.
func TestHostileAssetNameRefused(t *testing.T) { synctest.Test(t, hostileAssetNameRefused) }

func hostileAssetNameRefused(t *testing.T) {
	f := newFixture(t, 1, remotetest.Options{AssetNames: []string{"../../escape.tif"}})
	_, err := f.runErr(t)
	if rows := missing(t, err); len(rows) != 1 || rows[0].Pending || !strings.Contains(rows[0].Err, "refusing asset name") {
		t.Errorf("reported %+v, want the row refused for good", rows)
	}
	r := f.rows(t)[0]
	if r.Status != driver.Finished || r.DownloadPending || !strings.Contains(r.LastError, "refusing asset name") {
		t.Errorf("row = %+v, want finished with the refusal in last_error", r)
	}
	var files []string
	filepath.Walk(filepath.Dir(f.root), func(p string, info os.FileInfo, err error) error {
		if err == nil && !info.IsDir() {
			files = append(files, p)
		}
		return nil
	})
	for _, p := range files {
		if strings.Contains(p, "escape") {
			t.Errorf("hostile asset written to %s", p)
		}
	}
}

// A create whose answer is lost (here: a 502 from a proxy after the job was
// made) is resolved by the job's tag instead of creating the job again.
func TestCreateWithLostAnswerIsAdopted(t *testing.T) { synctest.Test(t, createWithLostAnswerIsAdopted) }

func createWithLostAnswerIsAdopted(t *testing.T) {
	f := newFixture(t, 3, remotetest.Options{})
	lost := 0
	f.cfg.Concurrency = 1
	f.cfg.StartJob = func(ctx context.Context, row driver.Job, conn *remote.Client) (string, error) {
		id, err := startJob(ctx, row, conn)
		if err == nil && lost == 0 {
			lost++
			return "", &remote.APIError{StatusCode: 502, Message: "bad gateway"}
		}
		return id, err
	}
	m := f.run(t)
	for title, n := range f.backendJobs() {
		if n != 1 {
			t.Errorf("%d back-end jobs for %q, want 1", n, title)
		}
	}
	for _, r := range f.rows(t) {
		if r.Status != driver.Finished {
			t.Errorf("row %d: %q", r.Key, r.Status)
		}
	}
	if st := m.Stats(); st["start_job error"] != 0 || st["job list"] == 0 {
		t.Errorf("stats = %v, want the lost create resolved by a listing", st)
	}
}

// Result links expire; the download asks for fresh ones and completes.
func TestExpiredResultLinksRenewed(t *testing.T) { synctest.Test(t, expiredResultLinksRenewed) }

func expiredResultLinksRenewed(t *testing.T) {
	f := newFixture(t, 2, remotetest.Options{AssetNames: []string{"a.tif", "b.tif"}, Faults: remotetest.Faults{ExpiredLinks: 3}})
	m := f.run(t)
	for _, r := range f.rows(t) {
		if r.Status != driver.Finished || r.LastError != "" {
			t.Errorf("row %d: %q %q", r.Key, r.Status, r.LastError)
		}
		for _, name := range []string{"a.tif", "b.tif"} {
			if _, err := os.Stat(filepath.Join(worker.JobDir(f.root, r.ID), name)); err != nil {
				t.Errorf("row %d: %v", r.Key, err)
			}
		}
	}
	if n := f.servers["a"].Injected()["expired-links"]; n != 3 {
		t.Errorf("%d expired result documents served, want 3", n)
	}
	if st := m.Stats(); st["job download error"] != 0 {
		t.Errorf("stats = %v", st)
	}
}

// Back-end limits are back-pressure: a ConcurrentJobLimit refusal makes the
// row wait, costs no attempt, and the run completes within the limit.
func TestConcurrentJobLimitIsBackPressure(t *testing.T) {
	synctest.Test(t, concurrentJobLimitIsBackPressure)
}

func concurrentJobLimitIsBackPressure(t *testing.T) {
	f := newFixture(t, 6, remotetest.Options{RunTime: 20 * time.Millisecond, Faults: remotetest.Faults{ConcurrentJobLimit: 1}})
	f.cfg.Backends[0].ParallelJobs = 4 // more than the back-end really allows
	m := f.run(t)
	for _, r := range f.rows(t) {
		if r.Status != driver.Finished {
			t.Errorf("row %d: %q %q", r.Key, r.Status, r.LastError)
		}
		if r.Attempts != 1 {
			t.Errorf("row %d: %d attempts, want 1: a refusal is not the row's fault", r.Key, r.Attempts)
		}
	}
	if m.Stats()["job start error"] == 0 {
		t.Error("the back-end never refused: the test tested nothing")
	}
	for title, n := range f.backendJobs() {
		if n != 1 {
			t.Errorf("%d jobs for %q", n, title)
		}
	}
}

// Out of credit on one back-end: it stops taking jobs, the other runs them
// all; with no back-end left the run ends with the reason.
func TestPaymentRequiredStopsBackend(t *testing.T) { synctest.Test(t, paymentRequiredStopsBackend) }

func paymentRequiredStopsBackend(t *testing.T) {
	f := newFixture(t, 6, remotetest.Options{}, "a", "b")
	f.servers["a"].SetFaults(remotetest.Faults{PaymentRequired: true})
	f.run(t)
	for _, r := range f.rows(t) {
		if r.Status != driver.Finished || r.Backend != "b" {
			t.Errorf("row %d: %q on %q", r.Key, r.Status, r.Backend)
		}
	}
	if jobs := f.servers["a"].Jobs(); len(jobs) != 0 {
		t.Errorf("back-end a keeps %d jobs that could not start", len(jobs))
	}

	g := newFixture(t, 3, remotetest.Options{Faults: remotetest.Faults{PaymentRequired: true}})
	m, _ := worker.New(g.cfg)
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	err := m.Run(ctx)
	if err == nil || !strings.Contains(err.Error(), "3 rows left not_started") || !strings.Contains(err.Error(), "PaymentRequired") {
		t.Errorf("err = %v, want the rows left and the reason", err)
	}
}

// A CSV table is rewritten once per tracking cycle and when the run ends,
// never once per row: the Python client rewrites it for every launch.
func TestCSVTableWrittenPerCycle(t *testing.T) { synctest.Test(t, cSVTableWrittenPerCycle) }

func cSVTableWrittenPerCycle(t *testing.T) {
	f := newFixture(t, 12, remotetest.Options{}, "a", "b")
	path := filepath.Join(t.TempDir(), "jobs.csv")
	store, err := csvfile.Open(t.Context(), path)
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	rows, _ := f.store.Select(t.Context(), driver.Filter{})
	var data [][]any
	for _, r := range rows {
		data = append(data, []any{r.Data["year"], r.Data["title"]})
	}
	if err := store.Init(t.Context(), []string{"year", "title"}, drivertest.Rows(data)); err != nil {
		t.Fatal(err)
	}
	f.store, f.cfg.Store = store, store
	f.cfg.PollInterval = 20 * time.Millisecond
	stats := f.run(t).Stats()
	if stats["job_db persist"] < 1 || stats["job_db persist"] > stats["track_statuses"]+1 {
		t.Errorf("%d rewrites over %d tracking cycles", stats["job_db persist"], stats["track_statuses"])
	}
	// Written in full before Run returns: Close has nothing left to add.
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if n := strings.Count(string(b), ",finished,"); n != 12 {
		t.Errorf("the file has %d finished rows when Run returns, want 12:\n%s", n, b)
	}
	if err := store.Close(); err != nil {
		t.Fatal(err)
	}
	if after, _ := os.ReadFile(path); string(after) != string(b) {
		t.Errorf("Close still changed the file:\nbefore %s\nafter  %s", b, after)
	}
}

// A table another process writes (the store opened read-only) is refused
// before any request goes out.
func TestReadOnlyTableRefused(t *testing.T) { synctest.Test(t, readOnlyTableRefused) }

func readOnlyTableRefused(t *testing.T) {
	f := newFixture(t, 3, remotetest.Options{}, "a")
	path := filepath.Join(t.TempDir(), "jobs.csv")
	writer, err := csvfile.Open(t.Context(), path)
	if err != nil {
		t.Fatal(err)
	}
	defer writer.Close()
	// The writer's run has a job running.
	if err := writer.Init(t.Context(), []string{"year", "title", "id", "backend_name", "status"},
		drivertest.Rows([][]any{{int64(2020), "a", "j-1", "a", "running"}, {int64(2021), "b", nil, nil, nil}})); err != nil {
		t.Fatal(err)
	}
	reader, err := csvfile.Open(t.Context(), path) // the lock is taken: read-only
	if err != nil {
		t.Fatal(err)
	}
	defer reader.Close()
	f.cfg.Store = reader
	m, err := worker.New(f.cfg)
	if err != nil {
		t.Fatal(err)
	}
	err = m.Run(t.Context())
	if !errors.Is(err, csvfile.ErrReadOnly) {
		t.Errorf("Run on a read-only table: err = %v, want ErrReadOnly", err)
	}
	for route, n := range f.servers["a"].Requests() {
		if n > 0 && route != "GET /" && !strings.HasPrefix(route, "GET /credentials") {
			t.Errorf("%d requests to %s before refusing", n, route)
		}
	}
}

// A back-end that refuses our credentials (a revoked token, a password
// changed) takes no more jobs in this run: its rows go to the others and
// spend no attempt, instead of all ending start_failed. With no back-end
// left, the run ends saying why, and the rows wait for the next run.
func TestRefusedCredentialsStopBackend(t *testing.T) { synctest.Test(t, refusedCredentialsStopBackend) }

func refusedCredentialsStopBackend(t *testing.T) {
	f := newFixture(t, 6, remotetest.Options{}, "a", "b")
	for i := range f.cfg.Backends {
		if f.cfg.Backends[i].Name == "a" {
			f.cfg.Backends[i].Client.SetToken("basic//revoked")
		}
	}
	f.run(t)
	for _, r := range f.rows(t) {
		if r.Status != driver.Finished || r.Backend != "b" || r.Attempts != 1 {
			t.Errorf("row %d: %q on %q after %d attempts", r.Key, r.Status, r.Backend, r.Attempts)
		}
	}

	g := newFixture(t, 3, remotetest.Options{})
	g.cfg.Backends[0].Client.SetToken("basic//revoked")
	m, _ := worker.New(g.cfg)
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	err := m.Run(ctx)
	if err == nil || !strings.Contains(err.Error(), "3 rows left not_started") {
		t.Errorf("err = %v, want the rows left and the reason", err)
	}
	for _, r := range g.rows(t) {
		if r.Status != driver.NotStarted || r.Attempts != 0 {
			t.Errorf("row %d: %q after %d attempts, want not_started and none spent", r.Key, r.Status, r.Attempts)
		}
	}
}
