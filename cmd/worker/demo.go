package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/openeo-batch/worker/remote"
	"github.com/openeo-batch/worker/remote/remotetest"
	"github.com/openeo-batch/worker/tableconv"
	"github.com/openeo-batch/worker/udpjob"
	"github.com/openeo-batch/worker/worker"
)

var demoCmd = command{
	name: "demo",
	usage: `
Usage: worker demo [--dir DIR] [--rows N]
       worker demo --serve [--dir DIR] [--rows N]

Runs the whole path on this machine, with no account and no network: starts
two simulated openEO back-ends on 127.0.0.1 that both store a user-defined
process with a GeoJSON parameter, writes a GeoJSON file of areas into DIR,
creates the job table DIR/jobs.db from it, runs every area as a batch job
of the stored process (each job references it and carries its area as a
GeoJSON geometry; one tile is made to fail, to show the error handling),
shows progress, and prints a summary and where the results are.

DIR must be new, empty or a demo's folder: the demo marks the folders it
creates with a file named .worker-demo, and a second demo in such a folder
starts afresh, removing the earlier demo's table and results. A folder
that holds other files and no marker is refused (exit 2): nothing in it is
touched.

With --serve, it prepares DIR the same way (and on the same terms) (the areas, the table, a copy of
the stored process) and starts the two simulated back-ends, but runs
nothing: it prints their URLs, their credentials and the worker run command
that runs the table on them, and serves until Ctrl-C, so that you can try
run, status, serve, jobs, retry, logs or download yourself. The back-ends
keep their jobs in memory: once they stop, start afresh.

Example:
  worker demo --dir demo-output
  worker status --db demo-output/jobs.db
  worker demo --serve --dir try     # then, in another terminal, the run it prints
`,
	run: runDemo,
}

// demoProcess is the user-defined process the simulated back-ends store:
// the main use, one parameterized process over a table of areas.
const demoProcess = `{
  "id": "ndvi_composite",
  "summary": "Median NDVI of a year over an area (demo)",
  "parameters": [
    {"name": "geometry", "description": "Area of interest", "schema": {"type": "object", "subtype": "geojson"}},
    {"name": "year", "description": "Year to composite", "schema": {"type": "integer"}},
    {"name": "max_cloud_cover", "description": "Scenes with more clouds are left out", "schema": {"type": "number"}, "optional": true, "default": 60}
  ],
  "process_graph": {
    "load": {"process_id": "load_collection", "arguments": {
      "id": "SENTINEL2_L2A", "spatial_extent": {"from_parameter": "geometry"},
      "temporal_extent": [{"from_parameter": "year"}, null], "bands": ["B04", "B08"],
      "properties": {"eo:cloud_cover": {"process_graph": {"cc": {"process_id": "lte",
        "arguments": {"x": {"from_parameter": "value"}, "y": {"from_parameter": "max_cloud_cover"}}, "result": true}}}}}},
    "ndvi": {"process_id": "ndvi", "arguments": {"data": {"from_node": "load"}}},
    "median": {"process_id": "reduce_dimension", "arguments": {"data": {"from_node": "ndvi"}, "dimension": "t",
      "reducer": {"process_graph": {"m": {"process_id": "median", "arguments": {"data": {"from_parameter": "data"}}, "result": true}}}}},
    "aggregate": {"process_id": "aggregate_spatial", "arguments": {"data": {"from_node": "median"},
      "geometries": {"from_parameter": "geometry"},
      "reducer": {"process_graph": {"m": {"process_id": "mean", "arguments": {"data": {"from_parameter": "data"}}, "result": true}}}}},
    "save": {"process_id": "save_result", "arguments": {"data": {"from_node": "aggregate"}, "format": "JSON"}, "result": true}
  }
}
`

// demoFailTile is the tile whose jobs the simulated back-ends fail.
const demoFailTile = "31UGV"

// writeDemoInput writes a GeoJSON FeatureCollection of rows areas (small
// polygons) with a tile, a year and a title each.
func writeDemoInput(path string, rows int) error {
	tiles := []string{"31UFS", "31UFT", "31UGS", "31UGT", demoFailTile, "31UFU"}
	var fs []string
	for i := range rows {
		tile := tiles[i%len(tiles)]
		year := 2019 + i/len(tiles)
		w, s := 5.0+float64(i%len(tiles))*0.1, 51.0
		fs = append(fs, fmt.Sprintf(`{"type": "Feature", "properties": {"tile": %q, "year": %d, "title": "NDVI %s %d"},
 "geometry": {"type": "Polygon", "coordinates": [[[%g, %g], [%g, %g], [%g, %g], [%g, %g], [%g, %g]]]}}`,
			tile, year, tile, year, w, s, w+0.1, s, w+0.1, s+0.1, w, s+0.1, w, s))
	}
	doc := `{"type": "FeatureCollection", "features": [` + "\n" + strings.Join(fs, ",\n") + "\n]}\n"
	return os.WriteFile(path, []byte(doc), 0o644)
}

// demoFiles are the paths of a demo's folder.
type demoFiles struct{ db, results, input, process string }

// demoMarker is the file that marks a folder as a demo's: the demo
// removes and rewrites its files only in a folder that has it (or that is
// new or empty, where it writes it first).
const demoMarker = ".worker-demo"

// claimDemoDir makes sure dir is the demo's to change: it creates dir, or
// marks it when empty, and accepts it when marked. A folder with other
// content and no marker is bad usage: nothing in it is touched.
func claimDemoDir(dir string) error {
	marker := filepath.Join(dir, demoMarker)
	if _, err := os.Stat(marker); err == nil {
		return nil
	}
	entries, err := os.ReadDir(dir)
	switch {
	case errors.Is(err, os.ErrNotExist):
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return err
		}
	case err != nil:
		if st, serr := os.Stat(dir); serr == nil && !st.IsDir() {
			return usagef("demo: --dir %s is a file, not a folder", dir)
		}
		return err
	case len(entries) > 0:
		return usagef("demo: --dir %s holds files and is no demo's folder (it has no %s file): "+
			"the demo replaces jobs.db, areas.geojson and results/ in its folder, so give a new or empty folder", dir, demoMarker)
	}
	return os.WriteFile(marker, []byte("This folder was created by worker demo, which may remove and rewrite its files.\n"), 0o644)
}

// prepareDemo (re)creates the demo's folder dir (see claimDemoDir): the
// areas of rows rows, a copy of the stored process and the job table made
// from the areas; an earlier demo's results and tables are removed.
func prepareDemo(ctx context.Context, dir string, rows int, stderr io.Writer) (demoFiles, int, error) {
	f := demoFiles{db: filepath.Join(dir, "jobs.db"), results: filepath.Join(dir, "results"),
		input: filepath.Join(dir, "areas.geojson"), process: filepath.Join(dir, "ndvi_composite.json")}
	if err := claimDemoDir(dir); err != nil {
		return f, 0, err
	}
	for _, p := range []string{f.db, f.db + "-wal", f.db + "-shm", f.db + ".workers", f.results} {
		if err := os.RemoveAll(p); err != nil {
			return f, 0, err
		}
	}
	if err := writeDemoInput(f.input, rows); err != nil {
		return f, 0, err
	}
	if err := os.WriteFile(f.process, []byte(demoProcess), 0o644); err != nil {
		return f, 0, err
	}
	t, err := tableconv.ReadGeoJSON(f.input)
	if err != nil {
		return f, 0, err
	}
	if _, err := createTable(ctx, f.db, t); err != nil {
		return f, 0, err
	}
	fmt.Fprintf(stderr, "demo: created %s with %d rows from %s\n", f.db, len(t.Rows), f.input)
	return f, len(t.Rows), nil
}

// startDemoServers starts the demo's two simulated back-ends on
// 127.0.0.1, which store the demo's process and fail the jobs of one tile,
// as real tiles sometimes do. The caller closes them.
func startDemoServers() []*remotetest.Server {
	fail := func(j *remote.JobRequest) error {
		if strings.Contains(j.Title, demoFailTile) {
			return errors.New("no cloud-free observations over tile " + demoFailTile)
		}
		return nil
	}
	var servers []*remotetest.Server
	for range 2 {
		srv := remotetest.NewServer(remotetest.Options{
			QueueTime: 300 * time.Millisecond, RunTime: 900 * time.Millisecond, MaxRunning: 2,
			Outcome: fail, AssetSize: 64 << 10,
		})
		srv.AddProcess("ndvi_composite", json.RawMessage(demoProcess))
		servers = append(servers, srv)
	}
	return servers
}

// demoEnv holds the credentials the simulated back-ends take.
var demoEnv = map[string]string{"OPENEO_USERNAME": "user", "OPENEO_PASSWORD": "password"}

func runDemo(ctx context.Context, fs *flag.FlagSet, args []string, stdout, stderr io.Writer) error {
	dir := fs.String("dir", "demo-output", "`folder` for the demo's table, inputs and results")
	rows := fs.Int("rows", 12, "number of rows (jobs)")
	serve := fs.Bool("serve", false, "only start the simulated back-ends, print how to run the table on them, and serve until Ctrl-C")
	if err := parse(fs, args); err != nil {
		return err
	}
	if *rows < 1 || *rows > 10000 {
		return usagef("demo: --rows must be between 1 and 10000")
	}
	files, nRows, err := prepareDemo(ctx, *dir, *rows, stderr)
	if err != nil {
		return err
	}
	dbPath, resultsDir, inputPath, processPath := files.db, files.results, files.input, files.process
	servers := startDemoServers()
	for _, srv := range servers {
		defer srv.Close()
	}
	if *serve {
		return serveDemo(ctx, files, servers, stdout)
	}
	fmt.Fprintf(stderr, "demo: simulated back-ends at %s and %s\n", servers[0].URL, servers[1].URL)
	// Each job references the process stored on the back-ends, read once
	// per back-end; the geometry column feeds its GeoJSON parameter.
	creator := &udpjob.JobCreator{ProcessID: "ndvi_composite"}
	store, err := openExisting(ctx, dbPath)
	if err != nil {
		return err
	}
	defer store.Close()

	var backends []worker.Backend
	var conns []*remote.Client
	for i, srv := range servers {
		spec := backendSpec{name: fmt.Sprintf("sim%d", i+1), url: srv.URL}
		c, err := connectBackend(ctx, spec, func(k string) string { return demoEnv[k] })
		if err != nil {
			return err
		}
		backends = append(backends, worker.Backend{Name: spec.name, Client: c, ParallelJobs: 3})
		conns = append(conns, c)
	}
	res, err := checkRows(ctx, creator, store, dbPath, conns, rowCheck{})
	if err != nil {
		return err
	}
	if res.nBad > 0 {
		return badRowsError(dbPath, res.bad, res.nBad, "")
	}
	if res.sample != nil {
		b, _ := json.Marshal(res.sample.Process.ProcessGraph)
		fmt.Fprintf(stderr, "demo: each job references the stored process, e.g. %s\n", b)
	}
	// The progress shows as in worker run: a block redrawn in place on a
	// terminal, else a "progress" log line per poll (with the warnings).
	disp := newDisplay(stderr, "worker demo", "text")
	defer disp.stop()
	m, err := worker.New(worker.Config{
		Store: store, Backends: backends, StartJob: creator.StartJob,
		RootDir: resultsDir, PollInterval: 250 * time.Millisecond, OnProgress: disp.update,
		Logger: slog.New(disp.logHandler(progressOnly{slog.NewTextHandler(stderr, nil)}, slog.LevelWarn)),
	})
	if err != nil {
		return err
	}

	start := time.Now()
	runErr := m.Run(ctx)
	disp.stop()
	if runErr != nil {
		return runErr
	}
	counts, err := store.Counts(ctx)
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "Ran %d jobs on 2 simulated back-ends in %.1fs.\n\n", nRows, time.Since(start).Seconds())
	printCounts(stdout, counts)
	requests := 0
	for _, s := range servers {
		requests += s.TotalRequests()
	}
	st := m.Stats()
	fmt.Fprintf(stdout, "\nRequests to the back-ends: %d (%.1f per job).\n", requests, float64(requests)/float64(nRows))
	fmt.Fprintf(stdout, "Stats: %d started, %d finished, %d failed, %d result sets downloaded.\n",
		st["job start"], st["job finished"], st["job failed"], st["job download"])
	fmt.Fprintf(stdout, "\nJob table:  %s\nResults:    %s/job_<id>/ (result files, job_<id>.json and job-results.json; job_<id>_errors.json for failed jobs)\n", dbPath, resultsDir)
	fmt.Fprintf(stdout, "Inputs:     %s; the stored process (a copy): %s\n", inputPath, processPath)
	fmt.Fprintf(stdout, "\nTry:  worker status --db %s\n      sqlite3 %s 'select tile, year, status, id, cpu, last_error from jobs'\n", shellQuote(dbPath), shellQuote(dbPath))
	return nil
}

// serveDemo prints how to use the running simulated back-ends and serves
// until ctx ends (Ctrl-C), which is no error.
func serveDemo(ctx context.Context, f demoFiles, servers []*remotetest.Server, stdout io.Writer) error {
	runArgs := []string{"worker", "run", "--db", f.db}
	for i, srv := range servers {
		runArgs = append(runArgs, "--backend", fmt.Sprintf("sim%d=%s,parallel=3", i+1, srv.URL))
	}
	runArgs = append(runArgs, "--process-id", "ndvi_composite", "--root-dir", f.results, "--poll", "1s")
	var quoted []string
	for _, a := range runArgs {
		quoted = append(quoted, shellQuote(a))
	}
	fmt.Fprintf(stdout, "Simulated openEO back-ends (they store the process ndvi_composite; jobs of tile %s fail):\n", demoFailTile)
	for i, srv := range servers {
		fmt.Fprintf(stdout, "  sim%d  %s\n", i+1, srv.URL)
	}
	fmt.Fprintf(stdout, "Job table: %s; the process, a copy: %s\n\n", f.db, f.process)
	fmt.Fprintf(stdout, "In another terminal, run the table on them:\n\n")
	fmt.Fprintf(stdout, "  export OPENEO_USERNAME=%s OPENEO_PASSWORD=%s\n", demoEnv["OPENEO_USERNAME"], demoEnv["OPENEO_PASSWORD"])
	fmt.Fprintf(stdout, "  %s\n\n", strings.Join(quoted, " "))
	fmt.Fprintf(stdout, "Serving until Ctrl-C.\n")
	<-ctx.Done()
	fmt.Fprintf(stdout, "Stopped the simulated back-ends.\n")
	return nil
}

// shellQuote quotes s for a POSIX shell when it holds more than letters,
// digits and -_./:=,@+ .
func shellQuote(s string) string {
	if s != "" && strings.Trim(s, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_./:=,@+") == "" {
		return s
	}
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}
