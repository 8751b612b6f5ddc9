package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"slices"
	"text/tabwriter"

	"github.com/openeo-batch/worker/driver"
)

var statusCmd = command{
	name: "status",
	usage: `
Usage: worker status --db TABLE [--json]

Counts the rows of a job table per status and per back-end, without
reading the rows. Safe to use while a run is going on.

Example:
  worker status --db jobs.db
`,
	run: runStatus,
}

func runStatus(ctx context.Context, fs *flag.FlagSet, args []string, stdout, stderr io.Writer) error {
	db := fs.String("db", "", "job table (required)")
	asJSON := fs.Bool("json", false, "print JSON instead of a table")
	if err := parse(fs, args); err != nil {
		return err
	}
	store, err := readDB(ctx, "status", *db)
	if err != nil {
		return err
	}
	defer store.Close()
	counts, err := store.Counts(ctx)
	if err != nil {
		return tableError(*db, err)
	}
	if *asJSON {
		return printCountsJSON(stdout, counts)
	}
	printCounts(stdout, counts)
	return nil
}

// readDB opens the table --db names only to read it (see openToRead), for
// the command cmd; an empty --db is bad usage.
func readDB(ctx context.Context, cmd, db string) (driver.Store, error) {
	if db == "" {
		return nil, usagef("%s: --db is required", cmd)
	}
	return openToRead(ctx, db)
}

func printCountsJSON(w io.Writer, counts []driver.Count) error {
	type row struct {
		Backend string `json:"backend_name"`
		Status  string `json:"status"`
		Count   int    `json:"count"`
	}
	out := struct {
		Total  int            `json:"total"`
		Status map[string]int `json:"by_status"`
		Rows   []row          `json:"by_backend_and_status"`
	}{Status: map[string]int{}, Rows: []row{}}
	for _, c := range counts {
		out.Total += c.N
		out.Status[string(c.Status)] += c.N
		out.Rows = append(out.Rows, row{c.Backend, string(c.Status), c.N})
	}
	return writeJSON(w, out)
}

// printCounts prints one line per status, with a column per back-end.
func printCounts(w io.Writer, counts []driver.Count) {
	var backends []string
	cell := map[driver.Status]map[string]int{}
	total := 0
	for _, c := range counts {
		name := c.Backend
		if name == "" {
			name = "-"
		}
		if !slices.Contains(backends, name) {
			backends = append(backends, name)
		}
		if cell[c.Status] == nil {
			cell[c.Status] = map[string]int{}
		}
		cell[c.Status][name] += c.N
		total += c.N
	}
	slices.Sort(backends)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprint(tw, "status\ttotal\t")
	for _, b := range backends {
		fmt.Fprintf(tw, "%s\t", b)
	}
	fmt.Fprintln(tw)
	for _, s := range driver.Statuses() {
		if cell[s] == nil {
			continue
		}
		sum := 0
		for _, n := range cell[s] {
			sum += n
		}
		fmt.Fprintf(tw, "%s\t%d\t", s, sum)
		for _, b := range backends {
			fmt.Fprintf(tw, "%d\t", cell[s][b])
		}
		fmt.Fprintln(tw)
	}
	fmt.Fprintf(tw, "all\t%d\t", total)
	for range backends {
		fmt.Fprint(tw, "\t")
	}
	fmt.Fprintln(tw)
	tw.Flush()
}
