package main

import (
	"cmp"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"slices"
	"strings"

	"github.com/openeo-batch/worker/driver"
	"github.com/openeo-batch/worker/remote"
	"github.com/openeo-batch/worker/udpjob"
)

var checkCmd = command{
	name: "check",
	usage: `
Usage: worker check --db TABLE (--process DEF.json | --process-id ID [--namespace URL] | --namespace URL) [flags]

Builds the job of every not_started row, as 'worker run' does before it
sends anything, and changes nothing: lists the rows that cannot be made
into jobs (row, column, reason; exit status 2) and prints the job of the
first good row as JSON. A stored user-defined process (--process-id
without --namespace) is read from the back-ends given with --backend.
With --backend, a not_started row whose backend_name names none of them
is bad too (run would refuse it).
--validate also sends that sample job's process to each --backend that
offers POST /validation and prints what it says (exit status 1 when a
back-end finds errors).

Example:
  worker check --db jobs.db --namespace https://example.org/processes/ndvi_stats.json --param spatial_extent=geometry
`,
	run: runCheck,
}

// multiFlag collects a repeated NAME=VALUE flag.
type multiFlag []string

func (m *multiFlag) String() string     { return strings.Join(*m, " ") }
func (m *multiFlag) Set(v string) error { *m = append(*m, v); return nil }

// jobFlags are the flags that say how rows become jobs, shared by run and
// check: the Python client's ProcessBasedJobCreator options.
type jobFlags struct {
	process, processID, namespace, jobOptions string
	params, defaults                          multiFlag
}

func addJobFlags(fs *flag.FlagSet) *jobFlags {
	f := &jobFlags{}
	fs.StringVar(&f.process, "process", "", "local process definition JSON `file`, inlined in each job")
	fs.StringVar(&f.processID, "process-id", "", "`id` of the process: a user-defined process stored on each back-end, or the one at --namespace")
	fs.StringVar(&f.namespace, "namespace", "", "`URL` of a public process definition (fetched once, without credentials)")
	fs.Var(&f.params, "param", "feed parameter NAME from column COLUMN (`NAME=COLUMN`); repeatable")
	fs.Var(&f.defaults, "default", "value of parameter NAME for rows without one (`NAME=JSON`); repeatable")
	fs.StringVar(&f.jobOptions, "job-options", "", "JSON `file` with the jobs' job_options (a job_options column is merged over it)")
	return f
}

// given reports whether any definition source was given.
func (f *jobFlags) given() bool { return f.process != "" || f.processID != "" || f.namespace != "" }

// creator builds the job creator the flags describe; a local definition
// is read now, remote ones later.
func (f *jobFlags) creator(cmd string) (*udpjob.JobCreator, error) {
	c := &udpjob.JobCreator{ProcessID: f.processID, Namespace: f.namespace}
	switch {
	case !f.given():
		return nil, usagef("%s: say which process: --process FILE, --process-id ID, or --namespace URL", cmd)
	case f.process != "" && (f.processID != "" || f.namespace != ""):
		return nil, usagef("%s: --process (a local file) excludes --process-id and --namespace", cmd)
	case f.namespace != "" && !strings.HasPrefix(f.namespace, "http://") && !strings.HasPrefix(f.namespace, "https://"):
		return nil, usagef("%s: --namespace wants the http(s) URL of a process definition, got %q", cmd, f.namespace)
	}
	if f.process != "" {
		d, err := udpjob.Load(f.process)
		if err != nil {
			return nil, err
		}
		c.Definition = d
	}
	for _, p := range f.params {
		name, col, ok := strings.Cut(p, "=")
		if !ok || name == "" || col == "" {
			return nil, usagef("%s: --param wants NAME=COLUMN, got %q", cmd, p)
		}
		if c.ParameterColumnMap == nil {
			c.ParameterColumnMap = map[string]string{}
		}
		c.ParameterColumnMap[name] = col
	}
	for _, d := range f.defaults {
		name, val, ok := strings.Cut(d, "=")
		if !ok || name == "" {
			return nil, usagef("%s: --default wants NAME=JSON, got %q", cmd, d)
		}
		v, err := udpjob.DecodeDefault(val)
		if err != nil {
			return nil, usagef("%s: --default %s: %v (a text value needs JSON quotes: %s='\"text\"')", cmd, name, err, name)
		}
		if c.ParameterDefaults == nil {
			c.ParameterDefaults = map[string]any{}
		}
		c.ParameterDefaults[name] = v
	}
	if f.jobOptions != "" {
		obj, err := readJobOptions(cmd, f.jobOptions)
		if err != nil {
			return nil, err
		}
		c.JobOptions = obj
	}
	return c, nil
}

// readJobOptions reads a --job-options file: a JSON object (numbers as
// written), else bad usage naming the file and what is wrong.
func readJobOptions(cmd, path string) (map[string]any, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, usagef("%s: --job-options: %v", cmd, err)
	}
	v, err := udpjob.DecodeDefault(string(b))
	if err != nil {
		return nil, usagef("%s: --job-options %s: want a JSON object: %v", cmd, path, err)
	}
	obj, ok := v.(map[string]any)
	if !ok {
		return nil, usagef("%s: --job-options %s: want a JSON object, not %s", cmd, path, jsonKind(v))
	}
	return obj, nil
}

// jsonKind names the JSON type of a decoded value.
func jsonKind(v any) string {
	switch v.(type) {
	case nil:
		return "null"
	case []any:
		return "an array"
	case string:
		return "a string"
	case bool:
		return "a boolean"
	case map[string]any:
		return "an object"
	}
	return "a number"
}

// maxListed is how many bad rows the check lists before it counts.
const maxListed = 20

// checkPage is how many rows the check reads at a time: its memory does
// not grow with the table (a million rows read at once took 1.5 GB). A
// variable for tests.
var checkPage = 1000

// checked is the outcome of checkRows.
type checked struct {
	good    int                // rows whose job could be built
	first   driver.Job         // the first of them
	bad     []*udpjob.RowError // the first maxListed rows that cannot be
	nBad    int                // and how many there are
	skipped int                // of them marked skipped
	sample  *remote.JobRequest // the job of the first good row
}

// rowCheck says what else checkRows checks and does.
type rowCheck struct {
	// backends are the back-ends configured: a not_started row given to
	// another one (backend_name) is a bad row. Nil: not checked.
	backends []string
	// skip marks the bad rows skipped, page by page (--skip-invalid).
	skip bool
}

// checkRows builds the job of every not_started row of the table before
// anything is spent, a page of rows at a time. With conns, a stored
// definition is read from each back-end (once). A whole-table error (a
// parameter no row can fill) is a usage error.
func checkRows(ctx context.Context, c *udpjob.JobCreator, store driver.Store, db string, conns []*remote.Client, rc rowCheck) (*checked, error) {
	defs, err := c.Prepare(ctx, conns...)
	if err != nil {
		return nil, definitionError(err)
	}
	cols, err := store.Columns(ctx)
	if err != nil {
		return nil, tableError(db, err)
	}
	out := &checked{}
	for after := int64(0); ; {
		rows, err := store.Select(ctx, driver.Filter{Statuses: []driver.Status{driver.NotStarted}, Limit: checkPage, After: after})
		if err != nil {
			return nil, tableError(db, err)
		}
		if len(rows) == 0 {
			break
		}
		after = rows[len(rows)-1].Key
		bad, err := c.Check(defs, cols, rows)
		if err != nil {
			return nil, usagef("%s: %v", db, err)
		}
		badKeys := map[int64]bool{}
		for _, b := range bad {
			badKeys[b.Key] = true
		}
		if rc.backends != nil {
			for _, r := range rows {
				if r.Backend != "" && !badKeys[r.Key] && !slices.Contains(rc.backends, r.Backend) {
					bad = append(bad, &udpjob.RowError{Key: r.Key, Column: driver.ColBackend,
						Err: fmt.Errorf("back-end %q is not configured (configured: %s)", r.Backend, strings.Join(rc.backends, ", "))})
					badKeys[r.Key] = true
				}
			}
			slices.SortFunc(bad, func(a, b *udpjob.RowError) int { return cmp.Compare(a.Key, b.Key) })
		}
		for _, r := range rows {
			if !badKeys[r.Key] {
				if out.good == 0 {
					out.first = r
				}
				out.good++
			}
		}
		out.nBad += len(bad)
		out.bad = append(out.bad, bad[:min(len(bad), maxListed-len(out.bad))]...)
		if rc.skip {
			if err := skipRows(ctx, store, bad); err != nil {
				return nil, err
			}
			out.skipped += len(bad)
		}
	}
	if out.good > 0 && (len(conns) > 0 || !c.FromBackend()) {
		var conn *remote.Client
		if len(conns) > 0 {
			conn = conns[0]
		}
		if out.sample, err = c.Job(ctx, out.first, conn); err != nil {
			return nil, err
		}
	}
	return out, nil
}

// badRowsError lists bad rows: the first maxListed (bad) and a count (n).
func badRowsError(db string, bad []*udpjob.RowError, n int, hint string) error {
	var b strings.Builder
	fmt.Fprintf(&b, "%s: %d not_started %s cannot be made into jobs; nothing was sent and the table is unchanged:", db, n, plural(n, "row", "rows"))
	for i, e := range bad {
		if i == maxListed {
			break
		}
		fmt.Fprintf(&b, "\n  %s: %v", db, e)
	}
	if n > min(len(bad), maxListed) {
		fmt.Fprintf(&b, "\n  ... and %d more", n-min(len(bad), maxListed))
	}
	if hint != "" {
		b.WriteString("\n" + hint)
	}
	return usageError{b.String()}
}

// skipRows marks bad rows skipped, with the reason in last_error.
func skipRows(ctx context.Context, store driver.Store, bad []*udpjob.RowError) error {
	ups := make([]driver.Update, 0, len(bad))
	for _, e := range bad {
		ups = append(ups, driver.Update{Key: e.Key, From: []driver.Status{driver.NotStarted},
			Set: driver.Values{driver.ColStatus: driver.Skipped, driver.ColLastError: e.Error()}})
	}
	if len(ups) == 0 {
		return nil
	}
	if err := store.Update(ctx, ups...); err != nil {
		if errors.Is(err, driver.ErrConflict) {
			return fmt.Errorf("mark %d bad rows skipped: another worker changed them meanwhile; run again: %w", len(ups), err)
		}
		return fmt.Errorf("mark %d bad rows skipped: %w", len(ups), err)
	}
	return nil
}

func runCheck(ctx context.Context, fs *flag.FlagSet, args []string, stdout, stderr io.Writer) error {
	var backends backendFlag
	db := fs.String("db", "", "job table (required)")
	fs.Var(&backends, "backend", "back-end `NAME=URL` to read a stored process from or validate on; repeatable")
	validate := fs.Bool("validate", false, "send the sample job's process to each back-end's POST /validation")
	jf := addJobFlags(fs)
	logger := logFlags(fs, stderr)
	if err := parse(fs, args); err != nil {
		return err
	}
	if *db == "" {
		return usagef("check: --db is required")
	}
	c, err := jf.creator("check")
	if err != nil {
		return err
	}
	if c.FromBackend() && len(backends) == 0 {
		return usagef("check: a stored process (--process-id without --namespace) is read from the back-ends: give --backend")
	}
	if *validate && len(backends) == 0 {
		return usagef("check: --validate needs the back-ends to validate on: give --backend")
	}
	_ = logger()
	store, err := openToRead(ctx, *db)
	if err != nil {
		return err
	}
	defer store.Close()
	var conns []*remote.Client
	if c.FromBackend() || *validate {
		for _, b := range backends {
			cl, err := connectBackend(ctx, b, os.Getenv)
			if err != nil {
				return err
			}
			conns = append(conns, cl)
		}
	}
	var fromBackends []*remote.Client
	if c.FromBackend() {
		fromBackends = conns
	}
	var names []string // with --backend, rows given to another are bad
	for _, b := range backends {
		names = append(names, b.name)
	}
	res, err := checkRows(ctx, c, store, *db, fromBackends, rowCheck{backends: names})
	if err != nil {
		return err
	}
	if res.sample != nil {
		if err := writeJSON(stdout, res.sample); err != nil {
			return err
		}
	}
	if res.nBad > 0 {
		return badRowsError(*db, res.bad, res.nBad, "")
	}
	fmt.Fprintf(stderr, "%s: all %d not_started rows make valid jobs\n", *db, res.good)
	if *validate && res.sample != nil {
		return validateSample(ctx, backends, conns, c, res, stderr)
	}
	return nil
}

// validateSample sends the sample row's job to each back-end that offers
// POST /validation (built for that back-end: a stored process may differ).
func validateSample(ctx context.Context, backends backendFlag, conns []*remote.Client, c *udpjob.JobCreator, res *checked, stderr io.Writer) error {
	var invalid []string
	for i, conn := range conns {
		name := backends[i].name
		caps, err := conn.Capabilities(ctx)
		if err != nil {
			return fmt.Errorf("back-end %s: %w", name, err)
		}
		if !caps.Supports("POST", "/validation") {
			fmt.Fprintf(stderr, "%s: offers no POST /validation; not validated\n", name)
			continue
		}
		job, err := c.Job(ctx, res.first, conn)
		if err != nil {
			return fmt.Errorf("back-end %s: %w", name, err)
		}
		errs, err := conn.Validate(ctx, job.Process)
		if err != nil {
			return fmt.Errorf("back-end %s: validation: %w", name, err)
		}
		if len(errs) == 0 {
			fmt.Fprintf(stderr, "%s: the sample job is valid\n", name)
			continue
		}
		for _, e := range errs {
			fmt.Fprintf(stderr, "%s: %s: %s\n", name, e.Code, e.Message)
		}
		invalid = append(invalid, name)
	}
	if len(invalid) > 0 {
		return fmt.Errorf("the sample job (row %d) is invalid on %s", res.first.Key, strings.Join(invalid, ", "))
	}
	return nil
}

func plural(n int, one, many string) string {
	if n == 1 {
		return one
	}
	return many
}

// definitionError marks the failure to read a process definition as bad
// input (exit 2) when the server says the request is wrong (a 4xx other
// than refused credentials, 408 and 429: no definition at that URL or
// with that id); a network failure or a server error stays an error
// (exit 1).
func definitionError(err error) error {
	var apiErr *remote.APIError
	if errors.As(err, &apiErr) && apiErr.StatusCode >= 400 && apiErr.StatusCode < 500 && !errors.Is(err, remote.ErrAuth) &&
		apiErr.StatusCode != http.StatusRequestTimeout && apiErr.StatusCode != http.StatusTooManyRequests {
		return badInput(err)
	}
	return err
}
