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

	"github.com/openeo-batch/worker/driver"
	"github.com/openeo-batch/worker/remote"
)

var logsCmd = command{
	name: "logs",
	usage: `
Usage: worker logs ROW-or-JOB-ID --db TABLE --backend [NAME=]URL ... [--level error|warning|info|debug] [--json]

Prints the logs of a job from its back-end (GET /jobs/{id}/logs, every
page): the job of row ROW of the table (its number as worker jobs shows
it), or the job with that id, also an earlier job of a retried row (in
its previous_ids: asked of the row's back-end, then of the other
back-ends given). --level keeps the entries at that level and
above (default info). --backend gives the row's back-end with the
credentials worker run uses; a URL alone is named after its host. Without
--db, give one --backend and a job id.

Example:
  worker logs 17 --db jobs.db --backend vito=https://openeo.vito.be --level error
  worker logs j-2406abc --backend https://openeo.vito.be --json
`,
	run: runLogs,
}

func runLogs(ctx context.Context, fs *flag.FlagSet, args []string, stdout, stderr io.Writer) error {
	var backends backendFlag
	db := fs.String("db", "", "job table")
	fs.Var(&backends, "backend", "back-end `[NAME=]URL` of the job; repeat for several (required)")
	level := fs.String("level", "info", "least `level` shown: error, warning, info or debug")
	asJSON := fs.Bool("json", false, "print the log entries as a JSON array")
	if err := parseArgs(fs, args); err != nil {
		return err
	}
	if fs.NArg() != 1 || len(backends) == 0 {
		return usagef("logs: want one ROW or job id, and --backend")
	}
	switch *level {
	case "error", "warning", "info", "debug":
	default:
		return usagef("logs: --level is error, warning, info or debug, not %q", *level)
	}
	arg := fs.Arg(0)
	var row driver.Job
	switch {
	case *db != "":
		var err error
		if row, err = findRow(ctx, *db, arg); err != nil {
			return err
		}
	case len(backends) == 1:
		row = driver.Job{ID: arg, Backend: backends[0].name}
	default:
		return usagef("logs: without --db, give one --backend: the job's")
	}
	cl := newClients(backends)
	// The row's back-end; for an earlier job of a retried row (found in
	// previous_ids, whose back-end the table does not keep) that one
	// first, then the other back-ends given, until one knows the job.
	tries := []string{row.Backend}
	if row.ID != "" && row.Status == "" {
		tries = nil
		if row.Backend != "" && slices.ContainsFunc(backends, func(b backendSpec) bool { return b.name == row.Backend }) {
			tries = append(tries, row.Backend)
		}
		for _, b := range backends {
			if b.name != row.Backend {
				tries = append(tries, b.name)
			}
		}
	} else if err := cl.check([]driver.Job{row}); err != nil {
		return err
	}
	var logs []remote.LogEntry
	for i, name := range tries {
		c, err := cl.get(ctx, name)
		if err != nil {
			return err
		}
		logs, err = c.Logs(ctx, row.ID, *level)
		if errors.Is(err, remote.ErrJobNotFound) && i < len(tries)-1 {
			continue // an earlier job: maybe on another back-end
		}
		if err != nil {
			return fmt.Errorf("logs of job %s on %s: %w", row.ID, name, err)
		}
		break
	}
	if *asJSON {
		if logs == nil {
			return writeJSON(stdout, []any{})
		}
		return writeJSON(stdout, logs)
	}
	for _, e := range logs {
		line := strings.TrimSpace(strings.Join([]string{e.Time, strings.ToUpper(e.Level), e.Code}, " "))
		fmt.Fprintf(stdout, "%s: %s\n", line, e.Message)
	}
	return nil
}

// findRow returns the row of the table at location whose number is arg,
// else the row whose job id is arg; its job must exist.
func findRow(ctx context.Context, location, arg string) (driver.Job, error) {
	store, err := openToRead(ctx, location)
	if err != nil {
		return driver.Job{}, err
	}
	defer store.Close()
	if k, err := strconv.ParseInt(arg, 10, 64); err == nil {
		j, err := store.Get(ctx, k)
		if err == nil {
			if j.ID == "" {
				return j, fmt.Errorf("%s: row %d has no job yet (status %s)", location, k, j.Status)
			}
			return j, nil
		}
		if !errors.Is(err, driver.ErrNotFound) {
			return j, err
		}
	}
	rows, err := store.Select(ctx, driver.Filter{})
	if err != nil {
		return driver.Job{}, tableError(location, err)
	}
	for _, j := range rows {
		if j.ID == arg {
			return j, nil
		}
	}
	// An earlier job of a retried row: its id is in previous_ids. The
	// result has that id, the row's back-end and no status (see runLogs).
	for _, j := range rows {
		ids, err := previousIDs(j.Data[colPreviousIDs])
		if err == nil && slices.Contains(ids, arg) {
			return driver.Job{Key: j.Key, ID: arg, Backend: j.Backend}, nil
		}
	}
	return driver.Job{}, fmt.Errorf("%s: no row numbered %s and no row with job id %s (current, or in %s)", location, arg, arg, colPreviousIDs)
}
