package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"strings"

	"github.com/openeo-batch/worker/tableconv"

	_ "github.com/openeo-batch/worker/driver/duckdb"   // .parquet (GeoParquet) and .duckdb tables
	_ "github.com/openeo-batch/worker/driver/postgres" // postgres:// tables that workers on several machines share
	_ "github.com/openeo-batch/worker/driver/sqlite"   // the embedded default store
)

// Exit codes.
const (
	exitOK          = 0
	exitError       = 1
	exitUsage       = 2
	exitInterrupted = 130
)

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
  login    log in to a back-end with OpenID Connect, once, for later runs
  demo     run a small table against a built-in simulated back-end
  version  print the version, commit and main dependencies

Example:
  worker init --from tiles.csv --db jobs.db
  export OPENEO_VITO_USERNAME=me OPENEO_VITO_PASSWORD=secret
  worker run --db jobs.db --backend vito=https://openeo.vito.be,parallel=4 --process evi.json

Run 'worker <command> --help' for the flags of a command. Flags may come
before or after a command's other arguments.
Exit status: 0 done, 1 error, 2 bad usage, 130 stopped by a signal (resumable).
`

// usageError is a mistake in the command line: exit 2.
type usageError struct{ msg string }

func (e usageError) Error() string { return e.msg }

func usagef(format string, args ...any) error { return usageError{fmt.Sprintf(format, args...)} }

// command is one subcommand.
type command struct {
	name  string
	usage string // shown by --help, after the flags line
	run   func(ctx context.Context, fs *flag.FlagSet, args []string, stdout, stderr io.Writer) error
}

var commands = []command{initCmd, runCmd, checkCmd, statusCmd, jobsCmd, logsCmd, retryCmd, cancelCmd, downloadCmd, versionCmd,
	queryCmd, exportCmd, loginCmd, demoCmd, splitCmd}

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
		fs.SetOutput(stderr)
		fs.Usage = func() {
			fmt.Fprintf(fs.Output(), "%s\nFlags:\n", strings.TrimSpace(c.usage))
			fs.PrintDefaults()
		}
		err := c.run(ctx, fs, flagsFirst(c, args[1:]), stdout, stderr)
		return exitCode(err, stderr)
	}
	fmt.Fprintf(stderr, "worker: unknown command %q\n\n%s", args[0], mainUsage)
	return exitUsage
}

func exitCode(err error, stderr io.Writer) int {
	var ue usageError
	var noTable *tableconv.NoTableError
	switch {
	case err == nil:
		return exitOK
	case errors.Is(err, flag.ErrHelp):
		return exitOK
	case errors.As(err, &ue):
		fmt.Fprintf(stderr, "worker: %v\n", err)
		return exitUsage
	case errors.As(err, &noTable):
		fmt.Fprintf(stderr, "worker: %v; create it with: worker init --from FILE.csv --db %s\n", err, noTable.Location)
		return exitError
	case errors.Is(err, context.Canceled):
		fmt.Fprintln(stderr, "worker: stopped; run the same command again to resume")
		return exitInterrupted
	default:
		fmt.Fprintf(stderr, "worker: %v\n", err)
		return exitError
	}
}

// parse parses flags and refuses stray arguments.
func parse(fs *flag.FlagSet, args []string) error {
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return err
		}
		return usageError{err.Error()}
	}
	if fs.NArg() > 0 {
		return usagef("%s: unexpected argument %q", fs.Name(), fs.Arg(0))
	}
	return nil
}

// logFlags adds -v and --log-format and returns a function building the logger.
func logFlags(fs *flag.FlagSet, stderr io.Writer) func() *slog.Logger {
	verbose := fs.Bool("v", false, "log debug messages too")
	format := fs.String("log-format", "text", "log format on stderr: text or json")
	return func() *slog.Logger {
		opts := &slog.HandlerOptions{Level: slog.LevelInfo}
		if *verbose {
			opts.Level = slog.LevelDebug
		}
		if *format == "json" {
			return slog.New(slog.NewJSONHandler(stderr, opts))
		}
		return slog.New(slog.NewTextHandler(stderr, opts))
	}
}

// flagsFirst moves a command's flags before its other arguments, so that
// `worker query "SQL" --db x` parses as `worker query --db x "SQL"` (the
// flag package stops at the first argument that is not a flag). It learns
// which flags the command has, and which of them take no value, by letting
// the command define them on a throw-away FlagSet asked for -h: every
// command defines its flags and parses before it does anything else.
// Arguments after "--" stay arguments; a "-" alone is an argument.
func flagsFirst(c command, args []string) []string {
	probe := flag.NewFlagSet(c.name, flag.ContinueOnError)
	probe.SetOutput(io.Discard)
	probe.Usage = func() {}
	c.run(context.Background(), probe, []string{"-h"}, io.Discard, io.Discard)
	isBool := func(name string) bool {
		f := probe.Lookup(name)
		if f == nil {
			return true // unknown: the real parse reports it; take no value
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
