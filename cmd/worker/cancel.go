package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/openeo-batch/worker/driver"
)

var cancelCmd = command{
	name: "cancel",
	usage: `
Usage: worker cancel --db TABLE --backend [NAME=]URL ... [ROW ...] [--status S[,S]] [--backend-name NAME] [--where SQL] [--json]

Cancels jobs on their back-ends (DELETE /jobs/{id}/results) and records
canceled in their rows: the rows given by number (as worker jobs shows
them), else all active rows (created, queued, running, and
queued_for_start rows that have a job), narrowed by --status,
--backend-name and --where (a DuckDB SQL condition, as in worker query).
Rows that are not active are left alone. Each job's status is asked
first: a job that already ended on the back-end (the table may not show it
yet while a run holds it) is not canceled, and the output says which rows
those were (already_ended in --json).

--backend gives each back-end that the rows are on, with the credentials
worker run uses (see worker run --help); a URL alone is named after its
host. Every back-end is checked before the first request.

During a run the table may be locked for writing (CSV, Parquet, DuckDB):
the jobs are canceled all the same, and the run records canceled at its
next status check. worker retry can then run the rows again.

Example:
  worker cancel --db jobs.db --backend vito=https://openeo.vito.be 12 13
  worker cancel --db jobs.db --backend vito=https://openeo.vito.be --where "year < 2018"
`,
	run: runCancel,
}

// canceled is the outcome for one row.
type canceled struct {
	Row     int64  `json:"row"`
	ID      string `json:"id"`
	Backend string `json:"backend_name"`
	// Recorded says whether the table holds canceled now (false while a
	// run holds a CSV, Parquet or DuckDB table: the run records it).
	Recorded bool `json:"recorded"`
	// Ended is the job's final status on the back-end (finished, error,
	// canceled) when it had ended before the cancel: nothing was
	// canceled, and a run records that status.
	Ended string `json:"already_ended,omitempty"`
	Error string `json:"error,omitempty"`
}

// rowKeys parses positional row numbers.
func rowKeys(args []string) ([]int64, error) {
	var keys []int64
	for _, a := range args {
		k, err := strconv.ParseInt(a, 10, 64)
		if err != nil || k < 0 {
			return nil, usagef("%q is not a row number (see worker jobs)", a)
		}
		keys = append(keys, k)
	}
	return keys, nil
}

func runCancel(ctx context.Context, fs *flag.FlagSet, args []string, stdout, stderr io.Writer) error {
	var sel selection
	var backends backendFlag
	db := fs.String("db", "", "job table (required)")
	fs.Var(&backends, "backend", "back-end `[NAME=]URL` of the jobs; repeat for several (required)")
	sel.flags(fs, "cancel rows with this `status` (default: the active ones); repeat, or give a comma list")
	asJSON := fs.Bool("json", false, "print the outcome per row as JSON")
	logger := logFlags(fs, stderr)
	if err := parseArgs(fs, args); err != nil {
		return err
	}
	if *db == "" || len(backends) == 0 {
		return usagef("cancel: --db and --backend are required")
	}
	keys, err := rowKeys(fs.Args())
	if err != nil {
		return err
	}
	log := logger()
	if len(sel.statuses) == 0 {
		sel.statuses = statusFlag(driver.ActiveStatuses())
	}
	store, rows, writable, err := openPicked(ctx, *db, &sel)
	if err != nil {
		return err
	}
	defer store.Close()
	if !writable {
		log.Warn("the table is being written by another process (a run?): jobs are canceled, and that run records it", "table", *db)
	}
	if len(keys) > 0 {
		rows = slices.DeleteFunc(rows, func(j driver.Job) bool { return !slices.Contains(keys, j.Key) })
		for _, k := range keys {
			if !slices.ContainsFunc(rows, func(j driver.Job) bool { return j.Key == k }) {
				j, err := store.Get(ctx, k)
				if errors.Is(err, driver.ErrNotFound) {
					return fmt.Errorf("%s: no row %d", *db, k)
				}
				if err != nil {
					return err
				}
				log.Warn("row not canceled: not active, or not selected", "row", k, "status", j.Status)
			}
		}
	}
	rows = slices.DeleteFunc(rows, func(j driver.Job) bool {
		if !j.Status.Active() {
			return true
		}
		if j.ID == "" {
			log.Warn("row not canceled: its job is not created yet; cancel it again in a moment", "row", j.Key, "status", j.Status)
			return true
		}
		return false
	})
	cl := newClients(backends)
	if err := cl.check(rows); err != nil {
		return err
	}
	var out []canceled
	var ended []int64 // rows whose job had ended: not canceled
	failed := 0
	for _, j := range rows {
		res := canceled{Row: j.Key, ID: j.ID, Backend: j.Backend}
		c, err := cl.get(ctx, j.Backend)
		if err == nil {
			// The row may be stale (a run holds the table and records the
			// job's end at its next poll): ask the back-end first, and
			// cancel only a job that has not ended.
			if job, gerr := c.GetJob(ctx, j.ID); gerr == nil && finalJobStatus(job.Status) {
				res.Ended = job.Status
				log.Info("not canceled: the job had already ended", "row", j.Key, "id", j.ID, "backend", j.Backend, "status", job.Status)
				out = append(out, res)
				ended = append(ended, j.Key)
				continue
			}
			err = c.CancelJob(ctx, j.ID)
		}
		if err == nil && writable {
			err = store.Update(ctx, driver.Update{Key: j.Key, From: driver.ActiveStatuses(), Set: driver.Values{
				driver.ColStatus:    driver.Canceled,
				driver.ColUpdatedAt: time.Now().UTC().Format(time.RFC3339),
			}})
			if errors.Is(err, driver.ErrConflict) {
				// A run on the table may have recorded the cancel first.
				if now, gerr := store.Get(ctx, j.Key); gerr == nil && now.Status == driver.Canceled && now.ID == j.ID {
					err = nil
				} else {
					err = fmt.Errorf("canceled on the back-end, but the row changed meanwhile (a run records the job's status)")
				}
			}
			res.Recorded = err == nil
		}
		if err != nil {
			failed++
			res.Error = err.Error()
			log.Error("cancel", "row", j.Key, "id", j.ID, "backend", j.Backend, "err", err)
		} else {
			log.Info("canceled", "row", j.Key, "id", j.ID, "backend", j.Backend)
		}
		out = append(out, res)
		if ctx.Err() != nil {
			return ctx.Err()
		}
	}
	if *asJSON {
		if out == nil {
			out = []canceled{}
		}
		if err := writeJSON(stdout, map[string]any{"canceled": out}); err != nil {
			return err
		}
	} else {
		fmt.Fprintf(stdout, "%d of %d jobs canceled", len(out)-failed-len(ended), len(out))
		if len(ended) > 0 {
			fmt.Fprintf(stdout, "; %d had already ended (%s %s): not canceled", len(ended), plural(len(ended), "row", "rows"), joinKeys(ended))
		}
		fmt.Fprintln(stdout)
	}
	if failed > 0 {
		return fmt.Errorf("%d %s could not be canceled (see above)", failed, plural(failed, "job", "jobs"))
	}
	return nil
}

// finalJobStatus reports whether an openEO job status is final: the job
// ran to its end, failed or was canceled already.
func finalJobStatus(status string) bool {
	return status == string(driver.Finished) || status == string(driver.Error) || status == string(driver.Canceled)
}

// joinKeys lists row numbers as "1, 2, 3".
func joinKeys(keys []int64) string {
	parts := make([]string, len(keys))
	for i, k := range keys {
		parts[i] = strconv.FormatInt(k, 10)
	}
	return strings.Join(parts, ", ")
}
