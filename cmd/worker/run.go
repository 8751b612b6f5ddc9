package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"math"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"text/tabwriter"
	"time"

	"github.com/openeo-batch/worker/driver"
	"github.com/openeo-batch/worker/remote"
	"github.com/openeo-batch/worker/tableconv"
	"github.com/openeo-batch/worker/worker"
)

var runCmd = command{
	name: "run",
	usage: `
Usage: worker run --db TABLE --backend NAME=URL[,parallel=N][,queue=N][,rps=N][,starts-per-minute=N] ...
                  (--process-id ID [--namespace URL] | --namespace URL | --process DEF.json) [flags]

Runs every not_started row of the table as a batch job of one process, as
the openEO Python client's ProcessBasedJobCreator does: a user-defined
process stored on the back-ends (--process-id, read once per back-end), a
public definition at --namespace URL (read once, never sent the token),
or a local definition file (--process, inlined in each job). Each
parameter takes the row's column of the same name (or the one --param
NAME=COLUMN names; a single GeoJSON parameter takes the single geometry
column), else --default NAME=JSON, else its schema default; optional ones
are otherwise left out. Values are typed and checked by the parameter's
JSON Schema. Every row's job is built before anything is sent: bad rows
are listed and the run stops (exit 2, table unchanged) unless
--skip-invalid marks them skipped. Rows go to whichever back-end has a
free slot. Results land in ROOT/job_<id>/ with job_<id>.json (the job)
and job-results.json (the results metadata); failed jobs get
job_<id>_errors.json.
When results cannot be written (a --root-dir that cannot be written, a
back-end that does not serve them), the rows stay download_pending with
the cause in last_error, the run lists them and exits with status 3, and
the next run (or worker download) fetches them.

--backend may be repeated; a URL without NAME= is named after its host
(https://openeo.vito.be: openeo.vito.be). parallel is the number of active jobs allowed on
the back-end (default 2), queue the number allowed in the queue (default 10),
rps the requests per second sent to it (by default learned from its 429
answers: see README) and starts-per-minute the job starts (no limit by
default; CDSE allows 12 starts a minute).

Requests that fail in a way that is safe to repeat (5xx on reads, 429, 503,
broken connections) are retried with backoff, honouring Retry-After; a job
creation is never repeated blindly. A back-end that keeps failing is paused
while the others go on. At start-up all back-ends are connected at once,
each attempt bounded to 30 s; one that has not answered a second after the
first connected (it accepts connections but does not answer) is connected
in the background, its rows waiting. Expired tokens are renewed.

Credentials, in this order, per back-end NAME (upper-cased, other
characters than letters and digits as _), else shared by all back-ends:
  OPENEO_<NAME>_TOKEN, or OPENEO_<NAME>_USERNAME and OPENEO_<NAME>_PASSWORD
  OPENEO_TOKEN,        or OPENEO_USERNAME and OPENEO_PASSWORD
  the user name and password that the Python client's
    'openeo-auth add-basic URL' stored for the same URL (auth-config.json)
  OpenID Connect, as the openEO Python client does it:
    OPENEO_AUTH_METHOD=client_credentials with OPENEO_AUTH_CLIENT_ID and
    OPENEO_AUTH_CLIENT_SECRET (OPENEO_AUTH_PROVIDER_ID picks the provider),
    else the refresh token stored by 'worker login URL' (or by the Python
    client: the same refresh-tokens.json).
A token is the openEO bearer token, such as basic//abc or oidc/egi/eyJ...
Access tokens are renewed before they expire.

Progress: on a terminal, a block redrawn in place on stderr shows per
back-end the rows created, queued, running, finished and failed of its
rows, the rate, an ETA, when the next poll is, and the last notable events
(a job failed, a back-end paused and why); warnings print above it.
Elsewhere, or with --log-format json, the run logs one "progress" line per
poll instead, with the other logs. At the end a summary (per status and
back-end, requests, downloads, costs, wall time) goes to stdout; --json
prints it as one JSON object.

Budget: --max-costs N starts no more jobs once the costs recorded in the
table (costs and previous_costs) plus those of the active jobs reach N
credits; where a back-end offers estimates (GET /jobs/{id}/estimate), a job
whose estimate would pass N is not started either. --max-jobs N starts at
most N jobs in this run. The rows left stay not_started, and the progress
and the summary say why.

Exit status: 0 every row finished or was skipped; 3 rows ended in error,
start_failed or canceled, or results are missing; 4 --max-costs or
--max-jobs stopped launching with rows left not_started; 1 error; 2 bad
usage or invalid input; 130 stopped by Ctrl-C (SIGINT), 143 by SIGTERM.

Stop with Ctrl-C (or kill): the same command resumes. Several workers may
run on one SQLite table at once (on one machine; PostgreSQL: on several):
they share the rows, and one takes over the work of another that was
killed. A CSV, Parquet or DuckDB table allows one run at a time.

Example:
  export OPENEO_VITO_USERNAME=me OPENEO_VITO_PASSWORD=secret
  worker run --db jobs.db --backend vito=https://openeo.vito.be,parallel=4 --process-id evi --root-dir results
  worker run --db jobs.db --backend cdse=https://openeo.dataspace.copernicus.eu,parallel=2,starts-per-minute=12 --process evi.json
  worker run --db jobs.db --backend vito=https://openeo.vito.be --process evi.json --max-costs 500 --json
`,
	run: runRun,
}

// backendFlag collects repeated --backend values.
type backendFlag []backendSpec

type backendSpec struct {
	name, url       string
	parallel, queue int
	rps             float64 // requests per second, 0: no limit
	startsPerMinute int
	log             *slog.Logger // receives the client's retries at debug level; nil: slog.Default()
}

func (b *backendFlag) String() string { return fmt.Sprint(*b) }

func (b *backendFlag) Set(v string) error {
	spec, err := parseBackend(v)
	if err != nil {
		return err
	}
	// Refused here, before any command connects to either.
	if slices.ContainsFunc(*b, func(o backendSpec) bool { return o.name == spec.name }) {
		return fmt.Errorf("back-end %s is listed twice: give each --backend its own NAME=", spec.name)
	}
	*b = append(*b, spec)
	return nil
}

// parseBackend parses [NAME=]URL[,parallel=N][,queue=N][,rps=N][,starts-per-minute=N].
// Without NAME= the name is the URL's host (see backendName).
func parseBackend(v string) (backendSpec, error) {
	v = backendName(v)
	name, rest, ok := strings.Cut(v, "=")
	if !ok || name == "" || rest == "" {
		return backendSpec{}, fmt.Errorf("want NAME=URL[,parallel=N][,queue=N], got %q", v)
	}
	parts := strings.Split(rest, ",")
	spec := backendSpec{name: name, url: parts[0]}
	seen := map[string]bool{}
	for _, p := range parts[1:] {
		k, val, _ := strings.Cut(p, "=")
		if seen[k] {
			return backendSpec{}, fmt.Errorf("back-end %s: option %s is given twice: give it once", name, k)
		}
		seen[k] = true
		if k == "rps" {
			f, err := strconv.ParseFloat(val, 64)
			if err != nil || !(f > 0) || f > 1e6 {
				return backendSpec{}, fmt.Errorf("back-end %s: rps wants a positive number, got %q", name, val)
			}
			spec.rps = f
			continue
		}
		n, err := strconv.Atoi(val)
		if err != nil || n < 1 {
			return backendSpec{}, fmt.Errorf("back-end %s: %s wants a positive whole number, got %q", name, k, val)
		}
		switch k {
		case "parallel":
			spec.parallel = n
		case "queue":
			spec.queue = n
		case "starts-per-minute":
			spec.startsPerMinute = n
		default:
			return backendSpec{}, fmt.Errorf("back-end %s: unknown option %q (known: parallel, queue, rps, starts-per-minute)", name, k)
		}
	}
	return spec, nil
}

func runRun(ctx context.Context, fs *flag.FlagSet, args []string, stdout, stderr io.Writer) error {
	var backends backendFlag
	db := fs.String("db", "", "job table (required)")
	fs.Var(&backends, "backend", "back-end `NAME=URL[,parallel=N][,queue=N]`; repeat for several (required)")
	jf := addJobFlags(fs)
	skipInvalid := fs.Bool("skip-invalid", false, "mark rows that cannot be made into jobs skipped (reason in last_error) and run the rest")
	root := fs.String("root-dir", ".", "`folder` for the job folders with results and logs")
	poll := fs.Duration("poll", 60*time.Second, "time between status checks")
	cancelAfter := fs.Duration("cancel-running-job-after", 0, "cancel jobs running longer than this (0: never)")
	noDownload := fs.Bool("no-download", false, "do not download results")
	attempts := fs.Int("max-start-attempts", 3, "attempts to create and start a job before start_failed")
	maxCosts := fs.Float64("max-costs", 0, "start no job once the costs recorded in the table plus those of active jobs (or a job's estimate) reach `N` credits (0: no limit)")
	maxJobs := fs.Int("max-jobs", 0, "start at most `N` jobs in this run (0: no limit)")
	asJSON := fs.Bool("json", false, "print the summary at the end as one JSON object")
	lf := addLogFlags(fs, stderr)
	if err := parse(fs, args); err != nil {
		return err
	}
	if *db == "" || len(backends) == 0 || !jf.given() {
		return usagef("run: --db, --backend and one of --process, --process-id, --namespace are required")
	}
	if *poll <= 0 {
		return usagef("run: --poll must be positive")
	}
	if *attempts < 1 || *cancelAfter < 0 {
		return usagef("run: --max-start-attempts must be at least 1, and --cancel-running-job-after not negative")
	}
	if *maxCosts < 0 || *maxJobs < 0 || math.IsNaN(*maxCosts) || math.IsInf(*maxCosts, 0) {
		return usagef("run: --max-costs must be a finite number of credits and --max-jobs a whole number, neither negative (got %v and %d)", *maxCosts, *maxJobs)
	}
	start := time.Now()
	log := slog.New(lf.handler())
	creator, err := jf.creator("run")
	if err != nil {
		return err
	}
	store, err := openExisting(ctx, *db)
	if err != nil {
		return err
	}
	defer store.Close()
	if wc, ok := store.(driver.WriteChecker); ok && wc.Writable() != nil {
		// A CSV, Parquet or DuckDB table opened while another process
		// writes it: said before any request is sent.
		return fmt.Errorf("%s: another worker run (or another program) is writing this table, and a CSV, Parquet or DuckDB "+
			"table allows one run at a time: wait for it to end, or keep the table in SQLite or PostgreSQL "+
			"to share it between runs", *db)
	}
	// Every not_started row's job is built before anything is spent: bad
	// rows stop the run (or, with --skip-invalid, are skipped) before the
	// first job request. A definition stored on the back-ends is read
	// first (once per back-end); otherwise before connecting at all.
	names := make([]string, len(backends))
	for i, b := range backends {
		names[i] = b.name
	}
	check := func(conns []*remote.Client) error {
		res, err := checkRows(ctx, creator, store, *db, conns, rowCheck{backends: names, skip: *skipInvalid})
		if err != nil {
			return err
		}
		if res.skipped > 0 {
			log.Warn("rows that cannot be made into jobs marked skipped", "rows", res.skipped)
		}
		if res.nBad > 0 && !*skipInvalid {
			return badRowsError(*db, res.bad, res.nBad, "Fix these rows, or run with --skip-invalid to mark them skipped and run the rest.")
		}
		return nil
	}
	if !creator.FromBackend() {
		if err := check(nil); err != nil {
			return err
		}
	}
	// A back-end that cannot be reached or refuses the credentials at
	// start-up does not stop the run: the manager connects to it again in
	// the background, with backoff, while the others take the rows.
	// All back-ends are connected at once, each bounded by
	// worker.StartupTimeout; one that has not answered shortly after the
	// first connected is connected in the background (worker.ConnectAll),
	// so a back-end that accepts connections but never answers holds up
	// none of the others.
	var wbs []worker.Backend
	var conns []*remote.Client
	var unusable []error
	var failed []backendSpec
	// The summary counts each back-end's requests, also of the clients the
	// manager connects later.
	byName := &connected{clients: map[string]*remote.Client{}}
	for _, b := range backends {
		b.log = log
		connect := func(ctx context.Context) (*remote.Client, error) {
			c, err := connectBackend(ctx, b, os.Getenv)
			if err == nil {
				byName.add(b.name, c)
				log.Info("connected", "backend", b.name, "api", c.URL())
			}
			return c, err
		}
		wbs = append(wbs, worker.Backend{Name: b.name, URL: b.url, Connect: connect, ParallelJobs: b.parallel, QueueingLimit: b.queue})
	}
	waiting := func(names []string) {
		log.Warn("waiting for back-ends to answer", "backends", strings.Join(names, ","), "at_most", worker.StartupTimeout)
	}
	for i, err := range worker.ConnectAll(ctx, wbs, waiting) {
		switch {
		case err == nil:
			conns = append(conns, wbs[i].Client)
		case errors.Is(err, worker.ErrStillConnecting):
			// The manager takes the attempt's result at its first check,
			// and warns (URL and cause) if it fails.
		case ctx.Err() != nil:
			return ctx.Err()
		case !retryLater(err):
			return err
		default:
			unusable = append(unusable, err)
			failed = append(failed, backends[i])
		}
	}
	if len(conns) == 0 && len(failed) > 0 && allNoCredentials(unusable) {
		// Nothing to run on, and nothing mends by itself: say for each
		// back-end what to do.
		return fmt.Errorf("no back-end is usable:\n%w", errors.Join(unusable...))
	}
	// Said once every back-end was tried: whether others run is known.
	for i, b := range failed {
		msg := "back-end unusable at start-up: its rows wait, the other back-ends run; connecting again in the background"
		if len(conns) == 0 {
			msg = "back-end unusable at start-up: its rows wait; connecting again in the background (the run fails if no back-end becomes usable)"
		}
		log.Warn(msg, "backend", b.name, "url", b.url, "err", unusable[i])
	}
	if creator.FromBackend() && len(conns) == 0 {
		return fmt.Errorf("no back-end is usable to read the process definition: %w", errors.Join(unusable...))
	}
	if creator.FromBackend() {
		if err := check(conns); err != nil {
			return err
		}
	}
	owner, err := newOwner(ctx, *db, store)
	if err != nil {
		return tableError(*db, err)
	}
	defer owner.Close()
	// A worker that lost its place among the others (its heartbeat went
	// stale and they took its rows over) stops at once.
	ctx, stopLost := context.WithCancelCause(ctx)
	defer stopLost(nil)
	go func() {
		select {
		case <-owner.Lost():
			stopLost(fmt.Errorf("%s: %w", *db, errWorkerLost))
		case <-ctx.Done():
		}
	}()
	// On a terminal the progress is a block redrawn in place, with the
	// warnings over it; elsewhere a "progress" log line per poll.
	disp := newDisplay(stderr, "worker run "+*db, lf.format.value)
	defer disp.stop()
	level := slog.LevelWarn
	if *lf.verbose {
		level = slog.LevelDebug
	}
	m, err := worker.New(worker.Config{
		Store: store, Backends: wbs, StartJob: creator.StartJob,
		RootDir: *root, PollInterval: *poll, CancelRunningJobAfter: *cancelAfter,
		DisableDownloads: *noDownload, MaxStartAttempts: *attempts, Owner: owner,
		Logger:   slog.New(disp.logHandler(log.Handler(), level)),
		MaxCosts: *maxCosts, MaxJobs: *maxJobs, OnProgress: disp.update,
	})
	if err != nil {
		return err
	}
	runErr := m.Run(ctx)
	if cause := context.Cause(ctx); errors.Is(cause, errWorkerLost) {
		disp.stop()
		return cause // this worker was taken over: it stops, the others go on
	}
	return finishRun(ctx, store, m, runErr, disp, byName.all(), start, stdout, *asJSON)
}

// connected holds the clients of the back-ends connected so far, by name:
// the manager connects those unusable at start-up from its own goroutines.
type connected struct {
	mu      sync.Mutex
	clients map[string]*remote.Client
}

func (c *connected) add(name string, cl *remote.Client) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.clients[name] = cl
}

func (c *connected) all() map[string]*remote.Client {
	c.mu.Lock()
	defer c.mu.Unlock()
	return maps.Clone(c.clients)
}

// finishRun ends the display, prints the summary of a run that ended with
// runErr, and returns the error that gives its exit status.
func finishRun(ctx context.Context, store driver.Store, m *worker.Manager, runErr error, disp *display,
	conns map[string]*remote.Client, start time.Time, stdout io.Writer, asJSON bool) error {
	disp.stop()
	// A run stopped by a signal still says where it stands (with --json
	// too), with the signal's exit status.
	var sig signalError
	interrupted := errors.Is(runErr, context.Canceled) && errors.As(context.Cause(ctx), &sig)
	var missing *worker.MissingResultsError
	if runErr != nil && !interrupted && !errors.As(runErr, &missing) && !errors.Is(runErr, worker.ErrLimitReached) {
		return runErr
	}
	// The summary reads the table even when ctx ended meanwhile.
	ctx = context.WithoutCancel(ctx)
	sumErr := runErr
	if interrupted {
		sumErr = nil
	}
	s, err := summarize(ctx, store, m, conns, start, sumErr)
	if err != nil {
		return err
	}
	if interrupted {
		s.ExitStatus = sig.code()
		left := s.Total - s.ByStatus[string(driver.Finished)] - s.ByStatus[string(driver.Skipped)]
		for _, st := range failedStatuses {
			left -= s.ByStatus[string(st)]
		}
		s.Outcome = fmt.Sprintf("%v: %s not ended yet; run the same command again to resume", sig, rowsN(left))
	}
	counts, err := store.Counts(ctx)
	if err != nil {
		return err
	}
	if err := s.print(stdout, asJSON, counts); err != nil {
		return err
	}
	if interrupted {
		return sig
	}
	return s.exit()
}

// printMissing lists the rows whose results (or error logs) a run could
// not write, and why.
func printMissing(w io.Writer, e *worker.MissingResultsError) {
	fmt.Fprintf(w, "\nResults missing for %d row(s):\n", len(e.Rows))
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "  row\tjob id\tback-end\tstatus\tnext run\treason")
	for _, r := range e.Rows {
		next := "tries again"
		if !r.Pending {
			next = "gives up"
		}
		fmt.Fprintf(tw, "  %d\t%s\t%s\t%s\t%s\t%s\n", r.Key, r.JobID, r.Backend, r.Status, next, r.Err)
	}
	tw.Flush()
}

// envName turns a back-end name into its environment variable part.
func envName(name string) string {
	b := []byte(strings.ToUpper(name))
	for i, c := range b {
		if !(c >= 'A' && c <= 'Z' || c >= '0' && c <= '9') {
			b[i] = '_'
		}
	}
	return string(b)
}

// retryLater reports whether a failure to connect to a back-end may mend
// by itself (no connection, a busy back-end) or by a login in the meantime
// (credentials refused), rather than being a mistake in the command.
func retryLater(err error) bool {
	var apiErr *remote.APIError
	var noCreds *noCredentialsError
	return remote.ConnectionFailed(err) || errors.Is(err, remote.ErrAuth) || errors.Is(err, remote.ErrUnavailable) ||
		errors.Is(err, context.DeadlineExceeded) || errors.Is(err, remote.ErrNotOpenEO) ||
		errors.As(err, &apiErr) && apiErr.StatusCode >= 500 || errors.As(err, &noCreds)
}

// connectBackend connects and authenticates with the credentials found in
// the environment (getenv): a token, else a user name and password, else
// OpenID Connect (client credentials, or the login stored by worker login).
func connectBackend(ctx context.Context, b backendSpec, getenv func(string) string) (*remote.Client, error) {
	c, err := remote.Connect(ctx, b.url, &remote.Options{Policy: &remote.Policy{
		RequestsPerSecond: b.rps, StartsPerMinute: b.startsPerMinute, Logger: b.log,
	}})
	if err != nil {
		return nil, fmt.Errorf("back-end %s: %w", b.name, err)
	}
	for _, prefix := range []string{"OPENEO_" + envName(b.name) + "_", "OPENEO_"} {
		if tok := getenv(prefix + "TOKEN"); tok != "" {
			c.SetToken(tok)
			// A token is not checked by setting it: ask the back-end now, so
			// that a refused one stops the run before it starts.
			if err := c.CheckAccess(ctx); errors.Is(err, remote.ErrAuth) {
				return nil, fmt.Errorf("back-end %s refuses the token in %sTOKEN (%w).\n"+
					"Set a valid token there, or unset it and log in with: worker login %s", b.name, prefix, err, b.url)
			}
			return c, nil
		}
		user, pass := getenv(prefix+"USERNAME"), getenv(prefix+"PASSWORD")
		if (user == "") != (pass == "") {
			set, unset := prefix+"USERNAME", prefix+"PASSWORD"
			if user == "" {
				set, unset = unset, set
			}
			return nil, fmt.Errorf("back-end %s: %s is set but %s is not: set both, or neither", b.name, set, unset)
		}
		if user != "" {
			if err := c.AuthenticateBasic(ctx, user, pass); err != nil {
				return nil, fmt.Errorf("back-end %s (credentials from %sUSERNAME/%sPASSWORD): %w%s", b.name, prefix, prefix, err,
					refusedHint(err, fmt.Sprintf("Check %sUSERNAME and %sPASSWORD, or unset them and log in with: worker login %s", prefix, prefix, b.url)))
			}
			return c, nil
		}
	}
	// What the Python client's openeo-auth stored for this URL.
	authConfig := remote.DefaultAuthConfig(getenv)
	user, pass, err := authConfig.Basic(b.url)
	if err != nil {
		return nil, fmt.Errorf("back-end %s: %w", b.name, err)
	}
	if user != "" {
		if err := c.AuthenticateBasic(ctx, user, pass); err != nil {
			return nil, fmt.Errorf("back-end %s (credentials from %s): %w%s", b.name, authConfig.Path, err,
				refusedHint(err, fmt.Sprintf("Store the right ones with: openeo-auth add-basic %s, or set OPENEO_%s_USERNAME and OPENEO_%s_PASSWORD",
					b.url, envName(b.name), envName(b.name))))
		}
		return c, nil
	}
	store, err := remote.DefaultTokenStore(getenv)
	if err != nil {
		return nil, fmt.Errorf("back-end %s: %w", b.name, err)
	}
	err = c.AuthenticateOIDC(ctx, &remote.OIDCOptions{Store: store, Getenv: getenv,
		Clients: func(provider string) (string, string, error) { return authConfig.OIDCClient(b.url, provider) }})
	if err == nil {
		return c, nil
	}
	n := envName(b.name)
	return nil, &noCredentialsError{fmt.Errorf("back-end %s: no usable credentials (%w).\n"+
		"Set OPENEO_%s_TOKEN, or OPENEO_%s_USERNAME and OPENEO_%s_PASSWORD, or OPENEO_AUTH_METHOD=client_credentials "+
		"with OPENEO_AUTH_CLIENT_ID and OPENEO_AUTH_CLIENT_SECRET, or log in once with: worker login %s", b.name, err, n, n, n, b.url)}
}

// allNoCredentials reports whether every error says no credentials were
// found (noCredentialsError).
func allNoCredentials(errs []error) bool {
	for _, err := range errs {
		var nc *noCredentialsError
		if !errors.As(err, &nc) {
			return false
		}
	}
	return true
}

// noCredentialsError says that no credentials were found for a back-end.
// The run pauses it and connects again in the background, which reads the
// environment files again: a `worker login URL` meanwhile is picked up.
type noCredentialsError struct{ err error }

func (e *noCredentialsError) Error() string { return e.err.Error() }
func (e *noCredentialsError) Unwrap() error { return e.err }

// refusedHint returns ".\n"+hint when err is the back-end refusing the
// credentials (401, 403), else "".
func refusedHint(err error, hint string) string {
	if errors.Is(err, remote.ErrAuth) {
		return ".\n" + hint
	}
	return ""
}

// mustExist checks that a store's table exists (its file, or its table
// on a database server), so that a typo does not
// create an empty table (a *tableconv.NoTableError: exitCode says how to
// create one).
func mustExist(location string) error { return tableconv.CheckExists(location) }

// errWorkerLost stops a run whose worker lost its place among the
// workers that share the table (see driver.Owner's Lost).
var errWorkerLost = errors.New("this worker stopped: its heartbeat went stale and other workers took its rows over; start it again")

// newOwner gives this run its identity among the workers that share the
// table: the store's own (a workers table with heartbeats, for a database
// that workers on several machines share), else a lock file in
// <table>.workers/ beside the table's file, which the system releases when
// the process ends, however it ends.
func newOwner(ctx context.Context, location string, store driver.Store) (driver.Owner, error) {
	if l, ok := store.(driver.Liveness); ok {
		return l.Register(ctx)
	}
	_, path, _ := driver.Lookup(location)
	return worker.NewLockOwner(path + ".workers")
}

// openToRead opens an existing table only to read it: status, query,
// export and init --from never take the writer's role, so they cannot keep
// a run from starting.
func openToRead(ctx context.Context, location string) (driver.Store, error) {
	return tableconv.OpenReader(ctx, location)
}

func openExisting(ctx context.Context, location string) (driver.Store, error) {
	if err := mustExist(location); err != nil {
		return nil, err
	}
	return driver.Open(ctx, location)
}

// tableError prefixes err with the table's location, unless its message
// already starts with it (the drivers name their file themselves): one
// "k.db: ", never "k.db: k.db: ".
func tableError(location string, err error) error {
	if strings.HasPrefix(err.Error(), location+": ") {
		return err
	}
	return fmt.Errorf("%s: %w", location, err)
}
