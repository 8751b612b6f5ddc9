package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/openeo-batch/worker/driver"
	"github.com/openeo-batch/worker/remote"
	"github.com/openeo-batch/worker/worker"
)

// runSummary is what a run prints when it ends: the table per status and
// back-end, and what the run did. --json prints it as one object.
type runSummary struct {
	Total    int            `json:"total"`
	ByStatus map[string]int `json:"by_status"`
	Rows     []countRow     `json:"by_backend_and_status"`
	// Requests per back-end name: HTTP requests sent, retries included.
	Requests      map[string]int64 `json:"requests"`
	RequestsTotal int64            `json:"requests_total"`
	JobsStarted   int              `json:"jobs_started"`
	Downloads     int              `json:"downloads"`
	// CostsThisRun sums the costs the back-ends reported for the jobs that
	// ended during the run, in their billing currency (credits).
	CostsThisRun float64        `json:"costs_this_run"`
	Budget       *budgetSummary `json:"budget,omitempty"`
	MaxJobs      int            `json:"max_jobs,omitempty"`
	WallTime     float64        `json:"wall_time_seconds"`
	Stats        map[string]int `json:"stats"`
	// Halted says why launching stopped (--max-costs, --max-jobs) and
	// NotStartedLeft how many rows it left.
	Halted         string          `json:"halted,omitempty"`
	NotStartedLeft int             `json:"not_started_left,omitempty"`
	Missing        []missingResult `json:"missing_results"` // [] when none
	ExitStatus     int             `json:"exit_status"`
	Outcome        string          `json:"outcome"`

	missing *worker.MissingResultsError
}

type countRow struct {
	Backend string `json:"backend_name"`
	Status  string `json:"status"`
	Count   int    `json:"count"`
}

type budgetSummary struct {
	Max      float64 `json:"max_costs"`
	Recorded float64 `json:"recorded"`
	Active   float64 `json:"active"`
}

type missingResult struct {
	Row     int64  `json:"row"`
	ID      string `json:"id"`
	Backend string `json:"backend_name"`
	Status  string `json:"status"`
	Pending bool   `json:"next_run_tries_again"`
	Reason  string `json:"reason"`
}

// summarize builds the summary of a run that ended with runErr (nil, a
// *worker.MissingResultsError and/or a *worker.LimitError; other errors
// are the caller's), and its exit status.
func summarize(ctx context.Context, store driver.Store, m *worker.Manager, conns map[string]*remote.Client, start time.Time, runErr error) (*runSummary, error) {
	counts, err := store.Counts(ctx)
	if err != nil {
		return nil, err
	}
	s := &runSummary{ByStatus: map[string]int{}, Rows: []countRow{}, Requests: map[string]int64{}, Missing: []missingResult{},
		WallTime: time.Since(start).Seconds(), Stats: m.Stats()}
	for _, c := range counts {
		s.Total += c.N
		s.ByStatus[string(c.Status)] += c.N
		s.Rows = append(s.Rows, countRow{c.Backend, string(c.Status), c.N})
	}
	for name, c := range conns {
		s.Requests[name] = c.Requests()
		s.RequestsTotal += c.Requests()
	}
	s.JobsStarted, s.Downloads = s.Stats["job start"], s.Stats["job download"]
	p := m.Progress()
	s.CostsThisRun = p.CostsThisRun
	if p.Costs != nil {
		s.Budget = &budgetSummary{Max: p.Costs.Max, Recorded: p.Costs.Recorded, Active: p.Costs.Active}
	}
	s.MaxJobs = p.MaxJobs

	var limit *worker.LimitError
	if errors.As(runErr, &limit) {
		s.Halted, s.NotStartedLeft = limit.Reason, limit.NotStarted
	}
	if errors.As(runErr, &s.missing) {
		for _, r := range s.missing.Rows {
			s.Missing = append(s.Missing, missingResult{r.Key, r.JobID, r.Backend, string(r.Status), r.Pending, r.Err})
		}
	}
	failed := 0
	for _, st := range failedStatuses {
		failed += s.ByStatus[string(st)]
	}
	switch {
	case limit != nil:
		flag := "--max-costs"
		if limit.Limit == "max-jobs" {
			flag = "--max-jobs"
		}
		s.ExitStatus = exitLimit
		s.Outcome = fmt.Sprintf("%s: %s; %s left not_started: run again (with a higher %s) to run them",
			flag, limit.Reason, rowsN(limit.NotStarted), flag)
	case failed > 0 || s.missing != nil:
		s.ExitStatus = exitUnfinished
		var parts []string
		if failed > 0 {
			parts = append(parts, fmt.Sprintf("%s ended in error, start_failed or canceled "+
				"(worker jobs --status error,start_failed,canceled lists them; worker retry runs them again)", rowsN(failed)))
		}
		if s.missing != nil {
			parts = append(parts, fmt.Sprintf("results missing for %s (run again, or worker download, to fetch them)", rowsN(len(s.missing.Rows))))
		}
		s.Outcome = strings.Join(parts, "; ")
	default:
		s.Outcome = "done: every row finished or was skipped"
	}
	return s, nil
}

// exit returns the error that gives the summary's exit status, or nil.
func (s *runSummary) exit() error {
	if s.ExitStatus == exitOK {
		return nil
	}
	return &exitStatus{code: s.ExitStatus, msg: s.Outcome}
}

// print writes the summary as text, or as one JSON object.
func (s *runSummary) print(w io.Writer, asJSON bool, counts []driver.Count) error {
	if asJSON {
		return json.NewEncoder(w).Encode(s)
	}
	printCounts(w, counts)
	fmt.Fprintln(w)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	names := slices.Sorted(maps.Keys(s.Requests))
	var per []string
	for _, n := range names {
		per = append(per, fmt.Sprintf("%s %d", n, s.Requests[n]))
	}
	fmt.Fprintf(tw, "requests\t%d\t(%s)\n", s.RequestsTotal, strings.Join(per, ", "))
	fmt.Fprintf(tw, "jobs started\t%d\t\n", s.JobsStarted)
	fmt.Fprintf(tw, "downloads\t%d\tresult sets\n", s.Downloads)
	fmt.Fprintf(tw, "costs\t%s\tcredits reported for the jobs that ended in this run\n", fmtNum(s.CostsThisRun))
	if s.Budget != nil {
		fmt.Fprintf(tw, "budget\t%s\tof %s credits (%s recorded in the table, %s for active jobs)\n",
			fmtNum(s.Budget.Recorded+s.Budget.Active), fmtNum(s.Budget.Max), fmtNum(s.Budget.Recorded), fmtNum(s.Budget.Active))
	}
	fmt.Fprintf(tw, "wall time\t%s\t\n", time.Duration(s.WallTime*float64(time.Second)).Round(100*time.Millisecond))
	tw.Flush()
	if s.Halted != "" {
		fmt.Fprintf(w, "\nLaunching stopped: %s; %s left not_started.\n", s.Halted, rowsN(s.NotStartedLeft))
	}
	if s.missing != nil {
		printMissing(w, s.missing)
	}
	if s.ExitStatus == exitOK {
		fmt.Fprintf(w, "\n%s\n", s.Outcome)
	} // else the outcome goes to stderr with the exit status (see exit)
	return nil
}

// rowsN is "1 row" or "N rows".
func rowsN(n int) string { return fmt.Sprintf("%d %s", n, plural(n, "row", "rows")) }
