package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strconv"
	"strings"
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
free slot. Results land in ROOT/job_<id>/ with job_<id>.json; failed jobs
get job_<id>_errors.json.
When results cannot be written (a --root-dir that cannot be written, a
back-end that does not serve them), the rows stay download_pending with
the cause in last_error, the run lists them and exits with status 1, and
the next run fetches them.

--backend may be repeated; a URL without NAME= is named after its host
(https://openeo.vito.be: openeo.vito.be). parallel is the number of active jobs allowed on
the back-end (default 2), queue the number allowed in the queue (default 10),
rps the requests per second sent to it and starts-per-minute the job starts
(no limit by default; CDSE allows 12 starts a minute).

Requests that fail in a way that is safe to repeat (5xx on reads, 429, 503,
broken connections) are retried with backoff, honouring Retry-After; a job
creation is never repeated blindly. A back-end that keeps failing is paused
while the others go on. Expired tokens are renewed.

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

Stop with Ctrl-C (or kill): the same command resumes. Several workers may
run on one table at once (on one machine): they share the rows, and one
takes over the work of another that was killed.

Example:
  export OPENEO_VITO_USERNAME=me OPENEO_VITO_PASSWORD=secret
  worker run --db jobs.db --backend vito=https://openeo.vito.be,parallel=4 --process-id evi --root-dir results
  worker run --db jobs.db --backend cdse=https://openeo.dataspace.copernicus.eu,parallel=2,starts-per-minute=12 --process evi.json
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
}

func (b *backendFlag) String() string { return fmt.Sprint(*b) }

func (b *backendFlag) Set(v string) error {
	spec, err := parseBackend(v)
	if err != nil {
		return err
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
	for _, p := range parts[1:] {
		k, val, _ := strings.Cut(p, "=")
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
	logger := logFlags(fs, stderr)
	if err := parse(fs, args); err != nil {
		return err
	}
	if *db == "" || len(backends) == 0 || !jf.given() {
		return usagef("run: --db, --backend and one of --process, --process-id, --namespace are required")
	}
	if *poll <= 0 {
		return usagef("run: --poll must be positive")
	}
	log := logger()
	creator, err := jf.creator("run")
	if err != nil {
		return err
	}
	store, err := openExisting(ctx, *db)
	if err != nil {
		return err
	}
	defer store.Close()
	// Every not_started row's job is built before anything is spent: bad
	// rows stop the run (or, with --skip-invalid, are skipped) before the
	// first job request. A definition stored on the back-ends is read
	// first (once per back-end); otherwise before connecting at all.
	check := func(conns []*remote.Client) error {
		res, err := checkRows(ctx, creator, store, *db, conns)
		if err != nil {
			return err
		}
		if len(res.bad) == 0 {
			return nil
		}
		if !*skipInvalid {
			return badRowsError(*db, res.bad, "Fix these rows, or run with --skip-invalid to mark them skipped and run the rest.")
		}
		return skipRows(ctx, store, res.bad, log)
	}
	if !creator.FromBackend() {
		if err := check(nil); err != nil {
			return err
		}
	}
	var wbs []worker.Backend
	var conns []*remote.Client
	for _, b := range backends {
		c, err := connectBackend(ctx, b, os.Getenv)
		if err != nil {
			return err
		}
		log.Info("connected", "backend", b.name, "api", c.URL())
		wbs = append(wbs, worker.Backend{Name: b.name, Client: c, ParallelJobs: b.parallel, QueueingLimit: b.queue})
		conns = append(conns, c)
	}
	if creator.FromBackend() {
		if err := check(conns); err != nil {
			return err
		}
	}
	owner, err := newOwner(ctx, *db, store)
	if err != nil {
		return fmt.Errorf("%s: %w", *db, err)
	}
	defer owner.Close()
	// A worker that lost its place among the others (its heartbeat went
	// stale and they took its rows over) stops at once.
	ctx, stopLost := context.WithCancelCause(ctx)
	defer stopLost(nil)
	go func() {
		select {
		case <-owner.Lost():
			stopLost(fmt.Errorf("%s: this worker stopped: its heartbeat went stale and other workers took its rows over; start it again", *db))
		case <-ctx.Done():
		}
	}()
	m, err := worker.New(worker.Config{
		Store: store, Backends: wbs, StartJob: creator.StartJob,
		RootDir: *root, PollInterval: *poll, CancelRunningJobAfter: *cancelAfter,
		DisableDownloads: *noDownload, MaxStartAttempts: *attempts, Logger: log, Owner: owner,
	})
	if err != nil {
		return err
	}
	runErr := m.Run(ctx)
	if cause := context.Cause(ctx); cause != nil && ctx.Err() != nil && errors.Is(ctx.Err(), context.Canceled) && !errors.Is(cause, context.Canceled) {
		return cause
	}
	var missing *worker.MissingResultsError
	if runErr != nil && !errors.As(runErr, &missing) {
		return runErr
	}
	counts, err := store.Counts(ctx)
	if err != nil {
		return err
	}
	printCounts(stdout, counts)
	if missing != nil {
		printMissing(stdout, missing)
		return missing // exit status 1
	}
	return nil
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

// connectBackend connects and authenticates with the credentials found in
// the environment (getenv): a token, else a user name and password, else
// OpenID Connect (client credentials, or the login stored by worker login).
func connectBackend(ctx context.Context, b backendSpec, getenv func(string) string) (*remote.Client, error) {
	c, err := remote.Connect(ctx, b.url, &remote.Options{Policy: &remote.Policy{
		RequestsPerSecond: b.rps, StartsPerMinute: b.startsPerMinute,
	}})
	if err != nil {
		return nil, fmt.Errorf("back-end %s: %w", b.name, err)
	}
	for _, prefix := range []string{"OPENEO_" + envName(b.name) + "_", "OPENEO_"} {
		if tok := getenv(prefix + "TOKEN"); tok != "" {
			c.SetToken(tok)
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
				return nil, fmt.Errorf("back-end %s (credentials from %sUSERNAME/%sPASSWORD): %w", b.name, prefix, prefix, err)
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
			return nil, fmt.Errorf("back-end %s (credentials from %s): %w", b.name, authConfig.Path, err)
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
	return nil, fmt.Errorf("back-end %s: no usable credentials (%w).\n"+
		"Set OPENEO_%s_TOKEN, or OPENEO_%s_USERNAME and OPENEO_%s_PASSWORD, or OPENEO_AUTH_METHOD=client_credentials "+
		"with OPENEO_AUTH_CLIENT_ID and OPENEO_AUTH_CLIENT_SECRET, or log in once with: worker login %s", b.name, err, n, n, n, b.url)
}

// mustExist checks that a store's table exists (its file, or its table
// on a database server), so that a typo does not
// create an empty table (a *tableconv.NoTableError: exitCode says how to
// create one).
func mustExist(location string) error { return tableconv.CheckExists(location) }

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

// quietLogger is used where only warnings matter.
func quietLogger(w io.Writer) *slog.Logger {
	return slog.New(slog.NewTextHandler(w, &slog.HandlerOptions{Level: slog.LevelWarn}))
}
