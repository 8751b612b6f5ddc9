package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"runtime"
	"runtime/debug"
	"strings"
	"text/tabwriter"
)

var versionCmd = command{
	name: "version",
	usage: `
Usage: worker version [--json]

Prints worker's version, the commit it was built from (with "+dirty" when
the working tree had changes), the Go version and the versions of the main
libraries it is built with (DuckDB, SQLite, ...). The commit is known when
worker was built with go build from a git checkout, without
-buildvcs=false (in GOFLAGS, say), which leaves the VCS information out.

Example:
  worker version
  worker version --json
`,
	run: runVersion,
}

// mainDeps are the modules whose versions version prints.
var mainDeps = []string{
	"github.com/duckdb/duckdb-go/v2",
	"github.com/duckdb/duckdb-go-bindings",
	"modernc.org/sqlite",
	"github.com/failsafe-go/failsafe-go",
	"github.com/paulmach/orb",
	"github.com/gofrs/flock",
	"golang.org/x/oauth2",
}

// versionInfo is what version prints.
type versionInfo struct {
	Version  string            `json:"version"`
	Commit   string            `json:"commit,omitempty"`
	Modified bool              `json:"modified"`
	Time     string            `json:"commit_time,omitempty"`
	Go       string            `json:"go"`
	Platform string            `json:"platform"`
	Deps     map[string]string `json:"dependencies"`
}

func readVersion() versionInfo {
	v := versionInfo{Version: "(unknown)", Go: runtime.Version(), Platform: runtime.GOOS + "/" + runtime.GOARCH, Deps: map[string]string{}}
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		return v
	}
	v.Version = bi.Main.Version
	for _, s := range bi.Settings {
		switch s.Key {
		case "vcs.revision":
			v.Commit = s.Value
		case "vcs.modified":
			v.Modified = s.Value == "true"
		case "vcs.time":
			v.Time = s.Value
		}
	}
	for _, d := range bi.Deps {
		for _, want := range mainDeps {
			if d.Path == want {
				version := d.Version
				if d.Replace != nil {
					version += " => " + d.Replace.Path + " " + d.Replace.Version
				}
				v.Deps[d.Path] = version
			}
		}
	}
	return v
}

func runVersion(ctx context.Context, fs *flag.FlagSet, args []string, stdout, stderr io.Writer) error {
	asJSON := fs.Bool("json", false, "print JSON")
	if err := parse(fs, args); err != nil {
		return err
	}
	v := readVersion()
	if *asJSON {
		return writeJSON(stdout, v)
	}
	commit := v.Commit
	if commit == "" {
		commit = "unknown: no VCS information in the build (built outside a git checkout, or with -buildvcs=false)"
	} else if v.Modified {
		commit += "+dirty"
	}
	tw := tabwriter.NewWriter(stdout, 0, 0, 2, ' ', 0)
	fmt.Fprintf(tw, "worker\t%s\n", v.Version)
	fmt.Fprintf(tw, "commit\t%s\n", strings.TrimSpace(commit+" "+v.Time))
	fmt.Fprintf(tw, "go\t%s %s\n", v.Go, v.Platform)
	for _, d := range mainDeps {
		if ver, ok := v.Deps[d]; ok {
			fmt.Fprintf(tw, "%s\t%s\n", d, ver)
		}
	}
	return tw.Flush()
}
