package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/openeo-batch/worker/driver"
	"github.com/openeo-batch/worker/remote"
	"github.com/openeo-batch/worker/worker"
)

var downloadCmd = command{
	name: "download",
	usage: `
Usage: worker download --db TABLE --backend [NAME=]URL ... [--root-dir DIR] [--where SQL] [--backend-name NAME] [--dry-run] [--json]

Fetches the results of finished rows whose results are missing or
incomplete on disk: for each finished row it asks the back-end for the
job's assets and compares them with ROOT/job_<id>/ (each file present, with
the size the back-end announces, and job_<id>.json and job-results.json,
the results metadata, there); what is missing
is downloaded with the same code as worker run (sizes and checksums
checked, expired links renewed), into the same layout: an asset key with
folders (data/b03.tif) in the same folders under job_<id>/. Names that
would leave the job folder are refused. The rows' download_pending is
cleared once their results are complete; a row whose assets cannot all be
fetched keeps it, with the missing assets named in last_error, for the
next run or download (unless they can never be fetched as the back-end
describes them). --dry-run only says what is missing.

--backend gives each back-end that the rows are on, with the credentials
worker run uses; a URL alone is named after its host. --where (a DuckDB
SQL condition, as in worker query) and --backend-name narrow the rows.

Example:
  worker download --db jobs.db --backend vito=https://openeo.vito.be --root-dir results
  worker download --db jobs.db --backend vito=https://openeo.vito.be --root-dir results --dry-run --json
`,
	run: runDownload,
}

// fetched is the outcome for one row.
type fetched struct {
	Row     int64    `json:"row"`
	ID      string   `json:"id"`
	Missing []string `json:"missing"` // files missing or incomplete before; [] when none, never null
	Done    bool     `json:"downloaded"`
	Error   string   `json:"error,omitempty"`
}

func runDownload(ctx context.Context, fs *flag.FlagSet, args []string, stdout, stderr io.Writer) error {
	var sel selection
	var backends backendFlag
	db := fs.String("db", "", "job table (required)")
	fs.Var(&backends, "backend", "back-end `[NAME=]URL` of the jobs; repeat for several (required)")
	root := fs.String("root-dir", ".", "`folder` of the job folders, as given to worker run")
	sel.flags(fs, "")
	dryRun := fs.Bool("dry-run", false, "only say what is missing")
	asJSON := fs.Bool("json", false, "print the outcome per row as JSON")
	logger := logFlags(fs, stderr)
	if err := parse(fs, args); err != nil {
		return err
	}
	if *db == "" || len(backends) == 0 {
		return usagef("download: --db and --backend are required")
	}
	log := logger()
	sel.statuses = statusFlag{driver.Finished}
	// When a run holds the table (not writable), it clears download_pending itself.
	store, rows, writable, err := openPicked(ctx, *db, &sel)
	if err != nil {
		return err
	}
	defer store.Close()
	cl := newClients(backends)
	if err := cl.check(rows); err != nil {
		return err
	}
	// Connect first, one back-end at a time, so credentials fail early.
	for _, j := range rows {
		if _, err := cl.get(ctx, j.Backend); err != nil {
			return err
		}
	}
	var mu sync.Mutex
	var out []fetched
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(4)
	for _, j := range rows {
		c, _ := cl.get(ctx, j.Backend)
		g.Go(func() error {
			res := fetched{Row: j.Key, ID: j.ID, Missing: []string{}}
			err := func() error {
				missing, err := missingResults(gctx, c, *root, j.ID)
				if missing != nil {
					res.Missing = missing
				}
				if err != nil || len(missing) == 0 || *dryRun {
					return err
				}
				log.Info("downloading", "row", j.Key, "id", j.ID, "missing", len(missing))
				if err := worker.DownloadResults(gctx, worker.Event{Row: j, Conn: c, Dir: worker.JobDir(*root, j.ID)}); err != nil {
					return err
				}
				res.Done = true
				return nil
			}()
			if writable && !*dryRun && gctx.Err() == nil {
				if uerr := recordDownload(gctx, store, j, res, err); uerr != nil {
					err = errors.Join(err, uerr)
				}
			}
			if err != nil {
				res.Error = err.Error()
				log.Error("download", "row", j.Key, "id", j.ID, "err", err)
			}
			mu.Lock()
			out = append(out, res)
			mu.Unlock()
			return gctx.Err()
		})
	}
	if err := g.Wait(); err != nil {
		return err
	}
	sort.Slice(out, func(a, b int) bool { return out[a].Row < out[b].Row })
	failed, missing, done := 0, 0, 0
	for _, r := range out {
		if r.Error != "" {
			failed++
		}
		if len(r.Missing) > 0 {
			missing++
		}
		if r.Done {
			done++
		}
	}
	if *asJSON {
		if out == nil {
			out = []fetched{}
		}
		if err := writeJSON(stdout, map[string]any{"rows": out}); err != nil {
			return err
		}
	} else {
		for _, r := range out {
			if len(r.Missing) > 0 {
				fmt.Fprintf(stdout, "row %d job %s: missing %s\n", r.Row, r.ID, strings.Join(r.Missing, ", "))
			}
		}
		fmt.Fprintf(stdout, "%d finished rows, %d with results missing, %d downloaded, %d failed\n", len(out), missing, done, failed)
	}
	if failed > 0 {
		return fmt.Errorf("%s could not be checked or downloaded (see above)", rowsN(failed))
	}
	return nil
}

// recordDownload records the outcome err of fetching row j's results as
// worker run does: complete results clear download_pending (and the
// last_error of an earlier failed download); missing ones keep the row
// pending with last_error naming them, so that the next run or download
// tries them again, unless no attempt can fetch them (worker.Permanent),
// which clears download_pending and keeps the reason.
func recordDownload(ctx context.Context, store driver.Store, j driver.Job, res fetched, err error) error {
	set := driver.Values{}
	switch {
	case err == nil && (res.Done || len(res.Missing) == 0):
		if j.DownloadPending {
			set[driver.ColDownloadPending] = false
		}
		if worker.IsHandlerError(j.LastError) {
			set[driver.ColLastError] = nil
		}
	case err != nil && len(res.Missing) > 0:
		// Results missing that could not be fetched (not a failure to
		// compare them: that changes nothing).
		set[driver.ColDownloadPending] = !worker.IsPermanent(err)
		set[driver.ColLastError] = worker.HandlerError(j.Status, err)
	}
	if len(set) == 0 {
		return nil
	}
	set[driver.ColUpdatedAt] = time.Now().UTC().Format(time.RFC3339)
	return store.Update(ctx, driver.Update{Key: j.Key, From: []driver.Status{driver.Finished}, Set: set})
}

// missingResults returns the files of job id's results that are missing
// under root, or whose size differs from what the back-end announces, the
// assets DownloadResults refuses (with the reason), and job_<id>.json and
// job-results.json when they are missing (a folder of an earlier version,
// or of the Python client with include_stac_metadata=False, lacks the
// latter). Files are named by their path in the job folder, with forward
// slashes ("data/b03.tif").
func missingResults(ctx context.Context, c *remote.Client, root, id string) ([]string, error) {
	res, err := c.Results(ctx, id)
	if err != nil {
		return nil, fmt.Errorf("results of job %s: %w", id, err)
	}
	missing, err := worker.MissingAssetFiles(worker.JobDir(root, id), id, res.Assets)
	if err != nil {
		return nil, err
	}
	for _, meta := range []string{worker.MetadataPath(root, id), worker.ResultsPath(root, id)} {
		if _, err := os.Stat(meta); errors.Is(err, os.ErrNotExist) {
			missing = append(missing, filepath.Base(meta))
		}
	}
	return missing, nil
}
