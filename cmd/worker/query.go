package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"

	"github.com/openeo-batch/worker/query"
)

var queryCmd = command{
	name: "query",
	usage: `
Usage: worker query --db TABLE [--format table|csv|json | --json] "SQL"

Runs DuckDB SQL over a job table, whatever its format; the table is called
jobs. It reads a snapshot and writes nothing, so it is safe while a run goes
on: Parquet and DuckDB tables are read in place, SQLite and CSV tables are
read through their store (a CSV table's latest changes included). Geometries
are WKT text (DuckDB's ST_ functions that need no extension work on
geometry columns of Parquet tables). The SQL sees the jobs table only: it
cannot read or write other files (COPY ... TO, read_csv), attach databases,
or install or load extensions. One reading statement at a time (SELECT,
DESCRIBE, SUMMARIZE, SHOW, EXPLAIN, PRAGMA): INSERT, UPDATE, DELETE, CREATE
and the like are refused (exit 2), since the table would not change.
A PostgreSQL table (postgres://...) is queried in PostgreSQL itself, with
its SQL, in a READ ONLY transaction that refuses any change.
Text that is not UTF-8 (a Latin-1 file in a SQLite or CSV table) shows its
other bytes as \xNN, with a warning on stderr. JSON has the columns in the
SELECT's order; DECIMAL is a number with its digits, INTERVAL an ISO 8601
duration, and NaN, Infinity and -Infinity, which JSON has no number for,
are strings.

Example:
  worker query --db jobs.db "select status, count(*) from jobs group by all"
  worker query --db jobs.parquet --json "select id, cpu from jobs where status = 'error'"
`,
	run: runQuery,
}

func runQuery(ctx context.Context, fs *flag.FlagSet, args []string, stdout, stderr io.Writer) error {
	db := fs.String("db", "", "job table (required)")
	format := fs.String("format", "table", "output: table, csv or json")
	asJSON := fs.Bool("json", false, "print a JSON array of objects: --format json, as other commands spell it")
	if err := parseArgs(fs, args); err != nil {
		return err
	}
	if *asJSON {
		formatGiven := false
		fs.Visit(func(f *flag.Flag) { formatGiven = formatGiven || f.Name == "format" })
		if formatGiven && *format != "json" {
			return usagef("query: --json and --format %s disagree", *format)
		}
		*format = "json"
	}
	if *db == "" || fs.NArg() != 1 {
		return usagef("query: want --db TABLE and one SQL statement")
	}
	f, err := query.ParseFormat(*format)
	if err != nil {
		return usagef("query: --format is table, csv or json, not %q", *format)
	}
	snap, err := query.Open(ctx, *db)
	if err != nil {
		return err
	}
	defer snap.Close()
	if esc := snap.Escaped(); len(esc) > 0 {
		slog.New(slog.NewTextHandler(stderr, nil)).Warn(`text that is not UTF-8 shows its other bytes as \xNN`,
			"table", *db, "cells", len(esc), "first", fmt.Sprintf("row %d, column %q", esc[0].Row, esc[0].Column))
	}
	rows, err := snap.Query(ctx, fs.Arg(0))
	if err != nil {
		return queryError(err)
	}
	defer rows.Close()
	return query.Write(stdout, rows, f)
}

// queryError words an error of query.DB.Query for worker query: a refused
// statement is bad usage (exit 2) and says how to change rows instead.
func queryError(err error) error {
	var refused *query.RefusedError
	switch {
	case !errors.As(err, &refused):
		return fmt.Errorf("query: %w", err)
	case refused.Multiple:
		return usagef("query: one statement at a time")
	}
	return usagef("query: worker query only reads the table, and this is %s: "+
		"change rows with worker retry, cancel or init --append, or work on an export of the table", refused.What)
}
