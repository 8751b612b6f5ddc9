package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"slices"
	"strings"
	"syscall"

	"github.com/openeo-batch/worker/driver"
	"github.com/openeo-batch/worker/tableconv"
	"github.com/openeo-batch/worker/udpjob"

	_ "github.com/openeo-batch/worker/driver/csvfile"  // the Python client's CSV tables
	_ "github.com/openeo-batch/worker/driver/duckdb"   // .parquet (GeoParquet) and .duckdb tables
	_ "github.com/openeo-batch/worker/driver/postgres" // postgres:// tables that workers on several machines share
	_ "github.com/openeo-batch/worker/driver/sqlite"   // the embedded default store
)

// Exit codes (documented in mainUsage, the run's --help and README.md).
const (
	exitOK          = 0
	exitError       = 1   // an error stopped the command
	exitUsage       = 2   // bad usage or invalid input
	exitUnfinished  = 3   // run: rows ended in error, start_failed or canceled, or results are missing
	exitLimit       = 4   // run: --max-costs or --max-jobs stopped launching with rows left not_started
	exitInterrupted = 130 // SIGINT (Ctrl-C): run the command again to resume
	exitTerminated  = 143 // SIGTERM: run the command again to resume
)

// exitStatus is an outcome of a command that is no error of the program
// but that a script must tell apart: exit status code, msg on stderr.
type exitStatus struct {
	code int
	msg  string
}

func (e *exitStatus) Error() string { return e.msg }

// signalError is the cause of the context main cancels on a signal.
type signalError struct{ sig os.Signal }

func (e signalError) Error() string { return "stopped by signal " + e.sig.String() }

// Is makes a stop by signal a context.Canceled, as for any canceled context.
func (e signalError) Is(target error) bool { return target == context.Canceled }

func (e signalError) code() int {
	if e.sig == syscall.SIGTERM {
		return exitTerminated
	}
	return exitInterrupted
}

const mainUsage = `worker runs a table of openEO batch jobs across several openEO back-ends.

Each row of the job table becomes one batch job. worker creates and starts
the jobs, never more at once than each back-end allows, follows their status,
downloads their results and error logs, and records everything in the table.
Stop it at any moment (Ctrl-C, or even kill -9) and run the same command
again: it resumes with nothing lost and nothing done twice.

Usage:
  worker <command> [flags]

Commands:
  split    cut an area into a table of tiles (a grid in a projection, or a grid file)
  init     create a job table from a CSV, GeoJSON or Parquet file or another table
           (--append adds the rows of a new input to a table)
  run      run the jobs of a table on one or more back-ends
  check    build every row's job without sending anything, and list bad rows
  status   count the rows of a table per status and back-end
  jobs     list the rows of a table, chosen by status, back-end or SQL
  logs     print a job's logs from its back-end
  retry    put failed or canceled rows back to not_started, keeping their history
  cancel   cancel active jobs on their back-ends
  download fetch the results of finished rows missing on disk
  query    run DuckDB SQL over a table (called jobs), also during a run
  export   write a table as GeoJSON, CSV, Parquet, DuckDB or SQLite, or its
           results as a STAC catalogue (--stac)
  serve    a read-only web dashboard of a table: map, counts, progress, failures
  login    log in to a back-end with OpenID Connect, once, for later runs
  demo     run a small table against a built-in simulated back-end
           (--serve starts the simulated back-ends for your own worker run)
  version  print the version, commit and main dependencies

Example:
  worker init --from tiles.csv --db jobs.db
  export OPENEO_VITO_USERNAME=me OPENEO_VITO_PASSWORD=secret
  worker run --db jobs.db --backend vito=https://openeo.vito.be,parallel=4 --process evi.json

Run 'worker <command> --help' for the flags of a command. Flags may come
before or after a command's other arguments.

Exit status:
  0    done: every row finished or was skipped
  1    error (a message says which)
  2    bad usage or invalid input (nothing was changed)
  3    run ended with rows in error, start_failed or canceled, or results missing
  4    run stopped launching at --max-costs or --max-jobs; rows left not_started
  130  stopped by Ctrl-C (SIGINT), 143 by SIGTERM: run the same command to resume
`

// usageError is a mistake in the command line: exit 2.
type usageError struct{ msg string }

func (e usageError) Error() string { return e.msg }

func usagef(format string, args ...any) error { return usageError{fmt.Sprintf(format, args...)} }

// inputError is invalid input: the content of a file the user names (an
// area, a grid, a table to import or append) or a value read from it.
// Exit 2, as for bad usage; nothing was changed.
type inputError struct{ err error }

func (e inputError) Error() string { return e.err.Error() }
func (e inputError) Unwrap() error { return e.err }

// badInput marks err, when not nil, as invalid input (exit 2).
func badInput(err error) error {
	if err == nil {
		return nil
	}
	return inputError{err}
}

// isInvalidInput reports whether err, from a package below cmd/worker,
// says the input the user named is at fault (exit 2): a table file a
// store cannot read as one (driver.InvalidError: a corrupt SQLite or
// Parquet file, a CSV header with a column twice, text Parquet cannot
// keep), a file with no job table in it (driver.ErrNoTable), a table
// that is there already for init (driver.ErrExists), a process
// definition that is missing or no definition (udpjob.DefinitionError:
// --process, --namespace or --process-id).
func isInvalidInput(err error) bool {
	var inv *driver.InvalidError
	var def *udpjob.DefinitionError
	return errors.As(err, &inv) || errors.As(err, &def) ||
		errors.Is(err, driver.ErrNoTable) || errors.Is(err, driver.ErrExists)
}

// command is one subcommand.
type command struct {
	name  string
	usage string // shown by --help, after the flags line
	run   func(ctx context.Context, fs *flag.FlagSet, args []string, stdout, stderr io.Writer) error
}

var commands = []command{initCmd, runCmd, checkCmd, statusCmd, jobsCmd, logsCmd, retryCmd, cancelCmd, downloadCmd, versionCmd,
	queryCmd, exportCmd, serveCmd, loginCmd, demoCmd, splitCmd}

func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 || args[0] == "-h" || args[0] == "--help" || args[0] == "help" {
		fmt.Fprint(stdout, mainUsage)
		if len(args) == 0 {
			return exitUsage
		}
		return exitOK
	}
	for _, c := range commands {
		if c.name != args[0] {
			continue
		}
		fs := flag.NewFlagSet("worker "+c.name, flag.ContinueOnError)
		fs.SetOutput(&heldOutput{to: stderr})
		fs.Usage = func() {
			fmt.Fprintf(fs.Output(), "%s\nFlags:\n", strings.TrimSpace(c.usage))
			fs.PrintDefaults()
		}
		err := c.run(ctx, fs, args[1:], stdout, stderr)
		return exitCode(ctx, err, stderr)
	}
	fmt.Fprintf(stderr, "worker: unknown command %q\n\n%s", args[0], mainUsage)
	return exitUsage
}

// exitCode prints err and returns the exit status for it. A command
// stopped by a signal exits 128 + the signal's number, whether it returns
// the context's cause or context.Canceled.
func exitCode(ctx context.Context, err error, stderr io.Writer) int {
	var ue usageError
	var ie inputError
	var es *exitStatus
	var se signalError
	var noTable *tableconv.NoTableError
	switch {
	case errors.As(err, &es):
		fmt.Fprintf(stderr, "worker: %s\n", es.msg)
		return es.code
	case errors.Is(err, context.Canceled) && (errors.As(err, &se) || errors.As(context.Cause(ctx), &se)):
		fmt.Fprintf(stderr, "worker: %v; run the same command again to resume\n", se)
		return se.code()
	case err == nil:
		return exitOK
	case errors.Is(err, flag.ErrHelp):
		return exitOK
	case errors.As(err, &ue), errors.As(err, &ie), isInvalidInput(err):
		fmt.Fprintf(stderr, "worker: %v\n", err)
		return exitUsage
	case errors.As(err, &noTable):
		fmt.Fprintf(stderr, "worker: %v; create it with: worker init --from FILE.csv --db %s\n", err, shellQuote(noTable.Location))
		return exitError
	case errors.Is(err, context.Canceled):
		fmt.Fprintln(stderr, "worker: stopped; run the same command again to resume")
		return exitInterrupted
	default:
		fmt.Fprintf(stderr, "worker: %v\n", err)
		return exitError
	}
}

// parse parses the flags a command declared on fs, wherever they stand
// among args (see flagsFirst), and refuses other arguments. Every command
// parses with it or parseArgs, so that a mistake is bad usage (exit 2).
func parse(fs *flag.FlagSet, args []string) error {
	if err := parseArgs(fs, args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return usagef("%s: unexpected argument %q", fs.Name(), fs.Arg(0))
	}
	return nil
}

// parseArgs is parse for a command that takes arguments besides its flags
// (fs.Args after it). --help prints the command's usage; a mistake (an
// unknown flag, a bad value) is a usageError of one line plus where to
// read the flags, not the whole usage.
func parseArgs(fs *flag.FlagSet, args []string) error {
	err := fs.Parse(flagsFirst(fs, args))
	if h, ok := fs.Output().(*heldOutput); ok {
		if errors.Is(err, flag.ErrHelp) {
			h.to.Write(h.buf.Bytes())
		}
		fs.SetOutput(h.to)
	}
	switch {
	case errors.Is(err, flag.ErrHelp):
		return err
	case err != nil:
		return usageError{fmt.Sprintf("%v\nRun '%s --help' for its flags.", err, fs.Name())}
	}
	return nil
}

// heldOutput is a flag set's output while it parses: the flag package
// writes its error and the usage there on a mistake as on --help, and
// parseArgs passes them on to the writer to only for --help.
type heldOutput struct {
	buf bytes.Buffer
	to  io.Writer
}

func (h *heldOutput) Write(p []byte) (int, error) { return h.buf.Write(p) }

// writeJSON prints v as indented JSON, as every --json output is, with
// <, > and & as they are: the output is read by people and scripts, not
// put into HTML.
func writeJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	enc.SetEscapeHTML(false)
	return enc.Encode(v)
}

// choiceFlag is a flag whose value is one of choices; another is a
// parse error (bad usage).
type choiceFlag struct {
	value   string
	choices []string
}

func (c *choiceFlag) String() string {
	if c == nil {
		return ""
	}
	return c.value
}

func (c *choiceFlag) Set(v string) error {
	if !slices.Contains(c.choices, v) {
		return fmt.Errorf("want %s, not %q", strings.Join(c.choices, " or "), v)
	}
	c.value = v
	return nil
}

// logFlags adds -v and --log-format and returns a function building the logger.
func logFlags(fs *flag.FlagSet, stderr io.Writer) func() *slog.Logger {
	lf := addLogFlags(fs, stderr)
	return func() *slog.Logger { return slog.New(lf.handler()) }
}

// logSettings are the values of -v and --log-format.
type logSettings struct {
	verbose *bool
	format  *choiceFlag
	stderr  io.Writer
}

func addLogFlags(fs *flag.FlagSet, stderr io.Writer) *logSettings {
	format := &choiceFlag{value: "text", choices: []string{"text", "json"}}
	fs.Var(format, "log-format", "`format` of the logs on stderr: text or json")
	return &logSettings{verbose: fs.Bool("v", false, "log debug messages too"), format: format, stderr: stderr}
}

// level is the least level logged: info, or debug with -v.
func (l *logSettings) level() slog.Level {
	if *l.verbose {
		return slog.LevelDebug
	}
	return slog.LevelInfo
}

func (l *logSettings) handler() slog.Handler {
	opts := &slog.HandlerOptions{Level: l.level(), ReplaceAttr: durationText}
	if l.format.value == "json" {
		return slog.NewJSONHandler(l.stderr, opts)
	}
	return slog.NewTextHandler(l.stderr, opts)
}

// durationText logs durations as Go writes them ("2s", "1m30s") in both
// formats: the JSON handler would give nanoseconds (2000000000).
func durationText(_ []string, a slog.Attr) slog.Attr {
	if a.Value.Kind() == slog.KindDuration {
		a.Value = slog.StringValue(a.Value.Duration().String())
	}
	return a
}

// flagsFirst moves the flags declared on fs before the other arguments,
// so that `worker query "SQL" --db x` parses as `worker query --db x --
// "SQL"` (the flag package stops at the first argument that is not a
// flag). A flag's value is the next argument unless the flag is a bool
// one or has "=value"; an unknown flag takes no value (fs.Parse then
// reports it). Arguments after "--" stay arguments; a "-" alone is an
// argument.
func flagsFirst(fs *flag.FlagSet, args []string) []string {
	isBool := func(name string) bool {
		f := fs.Lookup(name)
		if f == nil {
			return true
		}
		b, ok := f.Value.(interface{ IsBoolFlag() bool })
		return ok && b.IsBoolFlag()
	}
	var flags, rest []string
	for i := 0; i < len(args); i++ {
		a := args[i]
		if a == "--" {
			rest = append(rest, args[i+1:]...)
			break
		}
		if len(a) < 2 || a[0] != '-' {
			rest = append(rest, a)
			continue
		}
		flags = append(flags, a)
		name, _, hasValue := strings.Cut(strings.TrimLeft(a, "-"), "=")
		if !hasValue && !isBool(name) && i+1 < len(args) {
			i++
			flags = append(flags, args[i])
		}
	}
	if len(rest) == 0 {
		return flags
	}
	return append(append(flags, "--"), rest...)
}
