package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"github.com/openeo-batch/worker/stac"
)

// stacFlags are export's flags for a STAC catalogue.
type stacFlags struct {
	on         bool
	incomplete bool
	opts       stac.Options
}

func addSTACFlags(fs *flag.FlagSet) *stacFlags {
	f := &stacFlags{}
	fs.BoolVar(&f.on, "stac", false, "write a STAC Collection of the finished jobs' results into the `folder` --to")
	fs.StringVar(&f.opts.RootDir, "root-dir", ".", "with --stac: `folder` of the job folders, as given to worker run (whose default is the current folder too)")
	fs.BoolVar(&f.incomplete, "allow-incomplete", false, "with --stac: write the catalogue even when finished rows' results are not all on disk (they are listed)")
	fs.StringVar(&f.opts.ID, "collection-id", "", "with --stac: the Collection's `id`: letters, digits, '-', '_', '.' (default openeo-batch-results)")
	fs.StringVar(&f.opts.Title, "title", "", "with --stac: the Collection's `title`")
	fs.StringVar(&f.opts.Description, "description", "", "with --stac: the Collection's `text` (default: names the table)")
	fs.StringVar(&f.opts.License, "license", "", "with --stac: the results' license, an SPDX license `id` such as CC-BY-4.0, or other (the default)")
	return f
}

// check refuses the STAC flags without --stac, which would be ignored,
// and a --collection-id or --license STAC does not take.
func (f *stacFlags) check(fs *flag.FlagSet) error {
	var err error
	fs.Visit(func(fl *flag.Flag) {
		switch fl.Name {
		case "root-dir", "collection-id", "title", "description", "license", "allow-incomplete":
			if !f.on && err == nil {
				err = usagef("export: --%s goes with --stac", fl.Name)
			}
		}
	})
	if err != nil {
		return err
	}
	var oe *stac.OptionError
	if err := stac.CheckOptions(f.opts); errors.As(err, &oe) {
		flagName := map[string]string{"ID": "--collection-id", "License": "--license"}[oe.Field]
		return usagef("export: %s %s: %s", flagName, shellQuote(oe.Value), oe.Why)
	} else if err != nil {
		return err
	}
	return nil
}

// exportSTAC writes the STAC Collection of db's finished rows into dir.
// Finished rows that get no Item, or an incomplete one, are listed on
// stderr, one line each; then nothing is written and the exit status is 1,
// unless --allow-incomplete, which writes the catalogue of the others.
func exportSTAC(ctx context.Context, db, dir string, f *stacFlags, stdout, stderr io.Writer) error {
	s, err := openToRead(ctx, db)
	if err != nil {
		return err
	}
	defer s.Close()
	root := f.opts.RootDir
	if st, err := os.Stat(root); err != nil || !st.IsDir() {
		what := "does not exist"
		if err == nil {
			what = "is a file"
		} else if !errors.Is(err, fs.ErrNotExist) {
			what = err.Error()
		}
		return usagef("export: --root-dir %s %s: give the folder worker run wrote the job folders (job_<id>/) to, its --root-dir", root, what)
	}
	f.opts.Table = db
	f.opts.RequireComplete = !f.incomplete
	res, err := stac.Export(ctx, s, dir, f.opts)
	if err != nil {
		return fmt.Errorf("export %s as STAC to %s: %w", db, dir, err)
	}
	if len(res.Problems) == 0 || f.incomplete {
		fmt.Fprintf(stdout, "wrote a STAC collection of %d items from %s to %s\n", res.Items, db, filepath.Join(dir, "collection.json"))
	}
	if len(res.Problems) == 0 {
		return nil
	}
	var lines []string
	noFolder, missing, geometry := 0, 0, 0
	for _, p := range res.Problems {
		what := "item incomplete"
		if p.Skipped {
			what = "no item"
		}
		if p.NoJobFolder {
			noFolder++
		}
		if p.ResultsMissing {
			missing++
		}
		if p.Geometry {
			geometry++
		}
		lines = append(lines, fmt.Sprintf("  row %d (job %s): %s: %s", p.Key, p.JobID, what, strings.ReplaceAll(p.Err, "\n", "; ")))
	}
	download := fmt.Sprintf("worker download --db %s --backend NAME=URL --root-dir %s", shellQuote(db), shellQuote(root))
	if noFolder == res.Finished {
		// Not one job folder: the results are elsewhere, most likely.
		abs, _ := filepath.Abs(root)
		return fmt.Errorf("none of the %d finished row(s) of %s has its job folder (job_<id>/) in --root-dir %s (%s): "+
			"give the folder worker run wrote them to (its --root-dir), or fetch them with %s; nothing was written",
			res.Finished, db, root, abs, download)
	}
	fmt.Fprintln(stderr, strings.Join(lines, "\n"))
	// Advice for each kind of problem there is, and only for those.
	var advice []string
	if missing > 0 {
		advice = append(advice, fmt.Sprintf("%d with results missing on disk: fetch them with %s", missing, download))
	}
	if geometry > 0 {
		advice = append(advice, fmt.Sprintf("%d left out for their geometry column, which STAC needs as WKT in longitude/latitude (EPSG:4326): "+
			"correct or clear it in the table", geometry))
	}
	if other := len(res.Problems) - missing - geometry; other > 0 {
		advice = append(advice, fmt.Sprintf("%d for another reason given above", other))
	}
	if f.incomplete {
		fmt.Fprintf(stderr, "worker: %d finished row(s) of %s are missing from the collection or incomplete (listed above): %s\n",
			len(res.Problems), db, strings.Join(advice, "; "))
		return nil
	}
	return fmt.Errorf("%d finished row(s) of %s are missing from the collection or incomplete (listed above); nothing was written: "+
		"%s; or give --allow-incomplete to write the catalogue without them",
		len(res.Problems), db, strings.Join(advice, "; "))
}
