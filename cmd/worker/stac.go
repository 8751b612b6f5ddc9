package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"strings"

	"github.com/openeo-batch/worker/stac"
)

// stacFlags are export's flags for a STAC catalogue.
type stacFlags struct {
	on   bool
	opts stac.Options
}

func addSTACFlags(fs *flag.FlagSet) *stacFlags {
	f := &stacFlags{}
	fs.BoolVar(&f.on, "stac", false, "write a STAC Collection of the finished jobs' results into the `folder` --to")
	fs.StringVar(&f.opts.RootDir, "root-dir", ".", "with --stac: `folder` of the job folders, as given to worker run")
	fs.StringVar(&f.opts.ID, "collection-id", "", "with --stac: the Collection's `id` (default openeo-batch-results)")
	fs.StringVar(&f.opts.Title, "title", "", "with --stac: the Collection's `title`")
	fs.StringVar(&f.opts.Description, "description", "", "with --stac: the Collection's `text` (default: names the table)")
	fs.StringVar(&f.opts.License, "license", "", "with --stac: the results' license, an SPDX `id` (default other)")
	return f
}

// check refuses the STAC flags without --stac, which would be ignored.
func (f *stacFlags) check(fs *flag.FlagSet) error {
	var err error
	fs.Visit(func(fl *flag.Flag) {
		switch fl.Name {
		case "root-dir", "collection-id", "title", "description", "license":
			if !f.on && err == nil {
				err = usagef("export: --%s goes with --stac", fl.Name)
			}
		}
	})
	return err
}

// exportSTAC writes the STAC Collection of db's finished rows into dir.
// Rows that get no Item, or an incomplete one, are listed on stderr and
// make the exit status 1; the catalogue of the others is written.
func exportSTAC(ctx context.Context, db, dir string, f *stacFlags, stdout, stderr io.Writer) error {
	s, err := openToRead(ctx, db)
	if err != nil {
		return err
	}
	defer s.Close()
	f.opts.Table = db
	res, err := stac.Export(ctx, s, dir, f.opts)
	if err != nil {
		return fmt.Errorf("export %s as STAC to %s: %w", db, dir, err)
	}
	fmt.Fprintf(stdout, "wrote a STAC collection of %d items from %s to %s/collection.json\n", res.Items, db, dir)
	if len(res.Problems) == 0 {
		return nil
	}
	var lines []string
	for _, p := range res.Problems {
		what := "item incomplete"
		if p.Skipped {
			what = "no item"
		}
		lines = append(lines, fmt.Sprintf("  row %d (job %s): %s: %s", p.Key, p.JobID, what, p.Err))
	}
	fmt.Fprintln(stderr, strings.Join(lines, "\n"))
	return fmt.Errorf("%d finished row(s) of %s are missing from the collection or incomplete (listed above)", len(res.Problems), db)
}
