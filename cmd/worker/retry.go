package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"maps"
	"slices"
	"strings"
	"time"

	"github.com/openeo-batch/worker/driver"
	"github.com/openeo-batch/worker/tableconv"
	"github.com/openeo-batch/worker/udpjob"
)

var retryCmd = command{
	name: "retry",
	usage: `
Usage: worker retry --db TABLE [--status S[,S]] [--backend-name NAME] [--where SQL] [--job-options FILE.json] [--json]

Puts rows back to not_started so that the next worker run runs them again
with a new job: by default the rows in error, start_failed or canceled;
--status, --backend-name and --where (a DuckDB SQL condition, as in worker
query) choose others. Rows that are active (created, queued_for_start,
queued, running) are never retried: cancel them first.

What happened before is kept in columns of the row's own, added to the
table the first time:
  previous_ids    the earlier job ids of the row, a JSON list, oldest first
  retries         how many times the row was retried
  previous_costs  the costs of the earlier jobs, summed
Their results and logs stay in ROOT/job_<id>/. The manager's columns of the
attempt (id, backend_name, start_time, running_start_time, cpu, memory,
duration, costs, attempts, last_error, job_tag, download_pending, worker_id)
are cleared, as for a row never run, except that a row you gave to a
back-end (backend_name set while not_started, which a run records in
pinned_backend) keeps that backend_name: it goes to that back-end again.

--job-options FILE.json changes what the retried rows run with: the file's
JSON object is merged over each retried row's job_options column (a JSON
object, which worker run merges over its own --job-options and sends as the
job's job_options), key by key, so {"executor-memory": "4G"} gives the
rows more memory and keeps their other options; the column is added when
the table has none. A file that is no JSON object, or a row whose
job_options is no JSON object, is an error naming it, and nothing changes.

The table is rewritten in one atomic step, so retry refuses while a worker
run holds the table, and says so: stop the run, retry, run again.

Example:
  worker retry --db jobs.db
  worker retry --db jobs.db --status error --where "last_error like '%memory%'"
  worker retry --db jobs.db --where "last_error like '%memory%'" --job-options more-memory.json
`,
	run: runRetry,
}

// History columns that retry adds to a table.
const (
	colPreviousIDs   = "previous_ids"
	colRetries       = "retries"
	colPreviousCosts = "previous_costs"
)

var historyColumns = []string{colPreviousIDs, colRetries, colPreviousCosts}

// retried is one row put back to not_started.
type retried struct {
	Row         int64    `json:"row"`
	Status      string   `json:"previous_status"`
	PreviousIDs []string `json:"previous_ids"`
	Retries     int64    `json:"retries"`
	// JobOptions is the row's new job_options column, with --job-options.
	JobOptions json.RawMessage `json:"job_options,omitempty"`
}

// colJobOptions is the user column whose JSON object udpjob sends as a
// row's job_options (merged over run's --job-options).
const colJobOptions = "job_options"

// mergeJobOptions returns a row's job_options cell with opts merged over
// it, key by key, as JSON text. A cell that is not empty must be a JSON
// object (as run reads it); else the error names the column.
func mergeJobOptions(cell any, opts map[string]any) (string, error) {
	merged := map[string]any{}
	if s, ok := cell.(string); cell != nil && (!ok || strings.TrimSpace(s) != "") {
		v, err := udpjob.DecodeDefault(s)
		obj, isObj := v.(map[string]any)
		if !ok || err != nil || !isObj {
			return "", fmt.Errorf("column %s: %.60q is not a JSON object, so --job-options cannot be merged over it", colJobOptions, fmt.Sprint(cell))
		}
		merged = obj
	}
	maps.Copy(merged, opts)
	b, err := json.Marshal(merged)
	return string(b), err
}

func runRetry(ctx context.Context, fs *flag.FlagSet, args []string, stdout, stderr io.Writer) error {
	var sel selection
	db := fs.String("db", "", "job table (required)")
	sel.flags(fs, "retry rows with this `status` (default error,start_failed,canceled); repeat, or give a comma list")
	asJSON := fs.Bool("json", false, "print the rows retried as JSON")
	optsFile := fs.String("job-options", "", "JSON `file` of job options merged over each retried row's job_options column (more memory, say)")
	if err := parse(fs, args); err != nil {
		return err
	}
	if *db == "" {
		return usagef("retry: --db is required")
	}
	var jobOpts map[string]any
	if *optsFile != "" {
		var err error
		if jobOpts, err = readJobOptions("retry", *optsFile); err != nil {
			return err
		}
	}
	if len(sel.statuses) == 0 {
		sel.statuses = statusFlag{driver.Error, driver.StartFailed, driver.Canceled}
	}
	for _, s := range sel.statuses {
		if s.Active() {
			return usagef("retry: %s rows are active: cancel them first (worker cancel)", s)
		}
	}
	var done []retried
	now := time.Now().UTC().Format(time.RFC3339)
	err := rewriteTable(ctx, *db, "retry", func(user []string, rows []driver.Job) (*tableconv.Table, error) {
		// --where is evaluated while retry holds the table.
		picked, err := sel.filter(ctx, rows, *db, true)
		if err != nil {
			return nil, err
		}
		chosen := map[int64]bool{}
		for _, j := range picked {
			chosen[j.Key] = true
		}
		var extra []string
		for _, c := range historyColumns {
			if !slices.Contains(user, c) {
				extra = append(extra, c)
			}
		}
		if jobOpts != nil && !slices.Contains(user, colJobOptions) {
			extra = append(extra, colJobOptions)
		}
		for i, j := range rows {
			if !chosen[j.Key] {
				continue
			}
			r, err := resetRow(*db, j, now)
			if err != nil {
				return nil, err
			}
			var newOpts json.RawMessage
			if jobOpts != nil {
				text, err := mergeJobOptions(r.Data[colJobOptions], jobOpts)
				if err != nil {
					return nil, badInput(fmt.Errorf("%s: row %d: %w", *db, j.Key, err))
				}
				r.Data[colJobOptions], newOpts = text, json.RawMessage(text)
			}
			rows[i] = r
			ids, _ := previousIDs(r.Data[colPreviousIDs])
			done = append(done, retried{Row: j.Key, Status: string(j.Status), PreviousIDs: ids, Retries: r.Data[colRetries].(int64), JobOptions: newOpts})
		}
		if len(done) == 0 {
			return nil, errNothing
		}
		return tableconv.FromJobs(user, extra, rows), nil
	})
	if err == errNothing {
		err = nil
	}
	if err != nil {
		return err
	}
	if *asJSON {
		if done == nil {
			done = []retried{}
		}
		return writeJSON(stdout, map[string]any{"retried": done})
	}
	if len(done) == 0 {
		fmt.Fprintf(stdout, "no row of %s to retry\n", *db)
		return nil
	}
	var keys []string
	for _, r := range done {
		keys = append(keys, fmt.Sprint(r.Row))
	}
	with := ""
	if jobOpts != nil {
		with = ", with the job options of " + *optsFile + " merged into their job_options"
	}
	fmt.Fprintf(stdout, "%s back to not_started (%s %s)%s; run the table again to run them\n", rowsN(len(done)), plural(len(done), "row", "rows"), strings.Join(keys, ", "), with)
	return nil
}

// errNothing stops a rewrite that would change nothing.
var errNothing = fmt.Errorf("nothing to change")

// previousIDs reads a previous_ids cell: a JSON list of job ids, or empty.
func previousIDs(v any) ([]string, error) {
	s, _ := v.(string)
	if v == nil || strings.TrimSpace(s) == "" {
		return []string{}, nil
	}
	if _, ok := v.(string); !ok {
		return nil, fmt.Errorf("column %s: %v is not a JSON list of job ids", colPreviousIDs, v)
	}
	var ids []string
	if err := json.Unmarshal([]byte(s), &ids); err != nil {
		return nil, fmt.Errorf("column %s: %q is not a JSON list of job ids", colPreviousIDs, s)
	}
	return ids, nil
}

// resetRow returns j as a row never run, with its history added to the
// history columns; a pinned row keeps its back-end.
func resetRow(location string, j driver.Job, now string) (driver.Job, error) {
	ids, err := previousIDs(j.Data[colPreviousIDs])
	if err != nil {
		return j, fmt.Errorf("%s: row %d: %w", location, j.Key, err)
	}
	if j.ID != "" {
		ids = append(ids, j.ID)
	}
	var n int64
	switch x := j.Data[colRetries].(type) {
	case nil:
	case int64:
		n = x
	case float64:
		n = int64(x)
	default:
		return j, fmt.Errorf("%s: row %d: column %s: %v is not a whole number", location, j.Key, colRetries, x)
	}
	costs, _ := j.Data[colPreviousCosts].(float64)
	if c, ok := j.Data[colPreviousCosts].(int64); ok {
		costs = float64(c)
	}
	b, _ := json.Marshal(ids)
	data := map[string]any{}
	for k, v := range j.Data {
		data[k] = v
	}
	data[colPreviousIDs] = string(b)
	data[colRetries] = n + 1
	if j.Costs != nil {
		costs += *j.Costs
	}
	if costs != 0 || j.Costs != nil {
		data[colPreviousCosts] = costs
	}
	// A row the user gave to a back-end stays with it (issue 9).
	return driver.Job{Key: j.Key, Status: driver.NotStarted, UpdatedAt: now, Data: data,
		Backend: j.PinnedBackend, PinnedBackend: j.PinnedBackend}, nil
}
