package worker

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/openeo-batch/worker/driver"
	"github.com/openeo-batch/worker/remote"
)

// Backend is an openEO back-end the manager may run jobs on.
type Backend struct {
	// Name is recorded in the backend_name column.
	Name string
	// Client is an authenticated client for the back-end. It may be nil
	// when Connect is set.
	Client *remote.Client
	// Connect, when set, makes the client: the manager calls it when the
	// run starts without a Client, and again, with backoff, while it fails
	// or after the back-end refused the credentials. Meanwhile the
	// back-end is paused and the others take the rows.
	Connect func(ctx context.Context) (*remote.Client, error)
	// URL names the back-end in logs and errors while it has no Client.
	URL string
	// ParallelJobs is the number of active jobs allowed at once (default 2,
	// as in the Python client).
	ParallelJobs int
	// QueueingLimit is the number of jobs allowed in queued or
	// queued_for_start at once (default 10).
	QueueingLimit int
}

// StartJobFunc creates (but need not start) the back-end job for one row,
// on conn, and returns its id. Returning "" and a nil error declines the
// row: it is marked skipped. The manager starts the job afterwards.
//
// An error with a method RowError() bool that returns true (such as
// *udpjob.RowError) says the row itself is at fault (a bad cell): the row
// becomes start_failed at once and the back-end is neither blamed nor
// paused.
//
// conn marks every job it creates so that the manager can find a job whose
// creation was interrupted by a crash: create jobs through conn only.
type StartJobFunc func(ctx context.Context, row driver.Job, conn *remote.Client) (jobID string, err error)

// Event is what a job handler gets when a job reached a final status.
type Event struct {
	// Row is the job's row, already in its final status.
	Row driver.Job
	// Conn is the client of the job's back-end.
	Conn *remote.Client
	// Dir is the job's folder, <root>/job_<id>; handlers create it if they
	// write anything.
	Dir string
	// Job is the back-end's description of the job when the manager has it
	// at hand; nil otherwise (for instance after a restart).
	Job *remote.Job
	// SetError records why the job failed, in a line, as the row's
	// last_error when the handler returns nil; call it before returning.
	// The manager always sets it.
	SetError func(msg string)
}

// HandlerFunc handles a job that reached a final status. An error leaves
// the event pending, with the error in the row's last_error: it is handled
// again on a later tracking cycle, a bounded number of times, and then by
// the next run (Run reports it in a *MissingResultsError). An error marked
// with Permanent is not retried: the row's download_pending is cleared.
type HandlerFunc func(ctx context.Context, ev Event) error

// Config configures a Manager.
type Config struct {
	// Store is the job table.
	Store driver.Store
	// Backends are the back-ends to run jobs on; at least one.
	Backends []Backend
	// StartJob creates the back-end job for a row.
	StartJob StartJobFunc

	// RootDir receives job folders (default ".").
	RootDir string
	// PollInterval is the time between tracking cycles (default 60s).
	PollInterval time.Duration
	// DisableDownloads leaves results on the back-end (Python's
	// download_results=False).
	DisableDownloads bool
	// CancelRunningJobAfter cancels jobs that run longer; 0 means never.
	CancelRunningJobAfter time.Duration
	// MaxStartAttempts bounds the attempts to create and start a row's job
	// before it is marked start_failed (default 3).
	MaxStartAttempts int
	// MaxCancelRequests bounds the cancel requests sent, one per tracking
	// cycle, for a job running longer than CancelRunningJobAfter; when the
	// back-end ignored them all, the row ends canceled with the reason in
	// last_error (default 5). The Python client re-sends the cancel every
	// poll without a limit.
	MaxCancelRequests int
	// ListPageSize is the page size asked for when listing a back-end's
	// jobs (default 100).
	ListPageSize int
	// Concurrency bounds the job creations and downloads in flight, each,
	// per back-end (default 8).
	Concurrency int
	// MinBackoff and MaxBackoff bound the pause of a back-end after it
	// failed or refused a job (429, ConcurrentJobLimit): it doubles with each
	// refusal in a row (default 10s and 10m).
	MinBackoff, MaxBackoff time.Duration

	// OnJobDone handles finished jobs; nil means DownloadResults (unless
	// DisableDownloads is set).
	OnJobDone HandlerFunc
	// OnJobError handles failed jobs; nil means SaveErrorLogs.
	OnJobError HandlerFunc
	// OnJobCanceled handles canceled jobs; nil means nothing.
	OnJobCanceled HandlerFunc

	// MaxCosts, when > 0, is a budget in the back-ends' billing currency
	// (credits): no job is started once the costs recorded in the table
	// (the costs and previous_costs columns of every row) plus those of the
	// active jobs this run started reach it, nor one whose estimate
	// (GET /jobs/{job_id}/estimate, asked where the capabilities list it)
	// would take them past it. An active job counts its estimate, or the
	// costs its back-end reports for it, whichever is larger. Rows left stay
	// not_started and Run returns a *LimitError. Counting the table's costs
	// reads every row once per tracking cycle.
	MaxCosts float64
	// MaxJobs, when > 0, caps the jobs this run starts; rows left stay
	// not_started and Run returns a *LimitError.
	MaxJobs int
	// OnProgress, when set, is called after every cycle of the run (after
	// launches, handlers or a poll) with a snapshot of its progress; see
	// Progress. It runs on the manager's loop: return quickly.
	OnProgress func(Progress)

	// Owner identifies this manager when several processes share the
	// table (see LockOwner); nil means the manager has the table to itself.
	Owner Owner

	// Logger receives the manager's logs; nil means slog.Default().
	Logger *slog.Logger
}

func (c *Config) validate() error {
	var errs []error
	if c.Store == nil {
		errs = append(errs, errors.New("config: Store is required"))
	}
	if c.StartJob == nil {
		errs = append(errs, errors.New("config: StartJob is required"))
	}
	if len(c.Backends) == 0 {
		errs = append(errs, errors.New("config: at least one back-end is required"))
	}
	seen := map[string]bool{}
	for i, b := range c.Backends {
		switch {
		case b.Name == "":
			errs = append(errs, fmt.Errorf("config: Backends[%d].Name is empty", i))
		case seen[b.Name]:
			errs = append(errs, fmt.Errorf("config: back-end %q is listed twice", b.Name))
		}
		seen[b.Name] = true
		if b.Client == nil && b.Connect == nil {
			errs = append(errs, fmt.Errorf("config: back-end %q has neither Client nor Connect", b.Name))
		}
		if b.ParallelJobs < 0 || b.QueueingLimit < 0 {
			errs = append(errs, fmt.Errorf("config: back-end %q: ParallelJobs and QueueingLimit must not be negative", b.Name))
		}
	}
	if c.MaxCosts < 0 || c.MaxJobs < 0 {
		errs = append(errs, errors.New("config: MaxCosts and MaxJobs must not be negative"))
	}
	if c.PollInterval < 0 || c.CancelRunningJobAfter < 0 || c.MaxStartAttempts < 0 || c.MaxCancelRequests < 0 || c.Concurrency < 0 || c.ListPageSize < 0 {
		errs = append(errs, errors.New("config: durations and limits must not be negative"))
	}
	return errors.Join(errs...)
}

func (c *Config) setDefaults() {
	for i := range c.Backends {
		if c.Backends[i].ParallelJobs == 0 {
			c.Backends[i].ParallelJobs = 2
		}
		if c.Backends[i].QueueingLimit == 0 {
			c.Backends[i].QueueingLimit = 10
		}
	}
	if c.RootDir == "" {
		c.RootDir = "."
	}
	if c.PollInterval == 0 {
		c.PollInterval = 60 * time.Second
	}
	if c.MaxStartAttempts == 0 {
		c.MaxStartAttempts = 3
	}
	if c.MaxCancelRequests == 0 {
		c.MaxCancelRequests = 5
	}
	if c.ListPageSize == 0 {
		c.ListPageSize = 100
	}
	if c.Concurrency == 0 {
		c.Concurrency = 8
	}
	if c.MinBackoff == 0 {
		c.MinBackoff = 10 * time.Second
	}
	if c.MaxBackoff == 0 {
		c.MaxBackoff = 10 * time.Minute
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	if c.Owner == nil {
		c.Owner = solo{}
	}
	if c.OnJobDone == nil && !c.DisableDownloads {
		c.OnJobDone = DownloadResults
	}
	if c.OnJobError == nil {
		c.OnJobError = SaveErrorLogs
	}
}
