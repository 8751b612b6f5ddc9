package worker_test

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"time"

	"github.com/openeo-batch/worker/driver"
	"github.com/openeo-batch/worker/driver/drivertest"
	"github.com/openeo-batch/worker/driver/sqlite"
	"github.com/openeo-batch/worker/remote"
	"github.com/openeo-batch/worker/remote/remotetest"
	"github.com/openeo-batch/worker/worker"
)

// Embedding the manager with a StartJob of your own. A real program opens
// its table with driver.Open and connects with remote.Connect and one of
// the Authenticate methods; this example uses the fake back-end.
func Example() {
	ctx := context.Background()
	dir, _ := os.MkdirTemp("", "example")
	defer os.RemoveAll(dir)

	store, _ := sqlite.Open(ctx, filepath.Join(dir, "jobs.db"))
	defer store.Close()
	store.Init(ctx, []string{"tile", "year"}, drivertest.Rows([][]any{
		{"31UFS", int64(2021)}, {"31UFT", int64(2021)}, {"31UGS", int64(2022)},
	}))

	backend := remotetest.NewServer(remotetest.Options{})
	defer backend.Close()
	conn, _ := remote.Connect(ctx, backend.URL, nil)
	conn.AuthenticateBasic(ctx, "user", "password")

	m, err := worker.New(worker.Config{
		Store:    store,
		Backends: []worker.Backend{{Name: "fake", Client: conn, ParallelJobs: 2}},
		// One job per row. Create it through conn: the manager starts it.
		StartJob: func(ctx context.Context, row driver.Job, conn *remote.Client) (string, error) {
			if row.Data["year"] == int64(2022) {
				return "", nil // not this one: the row becomes skipped
			}
			return conn.CreateJob(ctx, &remote.JobRequest{
				Title: fmt.Sprintf("NDVI %v %v", row.Data["tile"], row.Data["year"]),
				Process: remote.Process{ProcessGraph: map[string]any{
					"ndvi": map[string]any{"process_id": "ndvi", "arguments": map[string]any{"data": row.Data["tile"]}, "result": true},
				}},
			})
		},
		RootDir:      filepath.Join(dir, "results"),
		PollInterval: 10 * time.Millisecond,
		Logger:       slog.New(slog.DiscardHandler),
	})
	if err != nil {
		fmt.Println(err)
		return
	}
	if err := m.Run(ctx); err != nil {
		fmt.Println(err)
		return
	}
	rows, _ := store.Select(ctx, driver.Filter{})
	for _, r := range rows {
		fmt.Println(r.Data["tile"], r.Data["year"], r.Status)
	}
	// Output:
	// 31UFS 2021 finished
	// 31UFT 2021 finished
	// 31UGS 2022 skipped
}

// Running the manager beside other work, and stopping it: the table stays
// consistent and a later Run resumes it.
func ExampleManager_Start() {
	ctx := context.Background()
	dir, _ := os.MkdirTemp("", "example")
	defer os.RemoveAll(dir)
	store, _ := sqlite.Open(ctx, filepath.Join(dir, "jobs.db"))
	defer store.Close()
	store.Init(ctx, []string{"year"}, drivertest.Rows([][]any{{int64(2020)}, {int64(2021)}}))
	backend := remotetest.NewServer(remotetest.Options{RunTime: time.Hour}) // jobs that take long
	defer backend.Close()
	conn, _ := remote.Connect(ctx, backend.URL, nil)
	conn.AuthenticateBasic(ctx, "user", "password")

	m, _ := worker.New(worker.Config{
		Store: store, Backends: []worker.Backend{{Name: "fake", Client: conn}},
		StartJob: func(ctx context.Context, row driver.Job, conn *remote.Client) (string, error) {
			return conn.CreateJob(ctx, &remote.JobRequest{Process: remote.Process{ProcessGraph: map[string]any{
				"n": map[string]any{"process_id": "add", "arguments": map[string]any{"x": row.Data["year"], "y": 1}, "result": true},
			}}})
		},
		RootDir: dir, PollInterval: 10 * time.Millisecond, Logger: slog.New(slog.DiscardHandler),
	})
	m.Start(ctx)
	for { // ... the program does other things; here it waits for both jobs to run
		rows, _ := store.Select(ctx, driver.Filter{Statuses: []driver.Status{driver.Running}})
		if len(rows) == 2 {
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	fmt.Println("stop:", m.Stop())
	rows, _ := store.Select(ctx, driver.Filter{})
	for _, r := range rows {
		fmt.Println(r.Data["year"], r.Status)
	}
	// Output:
	// stop: <nil>
	// 2020 running
	// 2021 running
}
