package test

import (
	"os/exec"
	"strings"
	"testing"
)

const module = "github.com/openeo-batch/worker"

func driverLayer(imp string) bool {
	return imp == "driver" || strings.HasPrefix(imp, "driver/internal/") || leaf(imp)
}

// leaf reports whether imp is one of the module's internal/ utilities
// (atomic file writes, ...): they import no project package, so every
// layer may use them without bending the direction of imports.
func leaf(imp string) bool { return strings.HasPrefix(imp, "internal/") }

// TestImportDirection enforces DESIGN.md's layout: driver imports no project
// package and remote only internal/ utilities, worker, tableconv and query
// import no concrete driver, only cmd/worker (and tests) wire drivers in.
func TestImportDirection(t *testing.T) {
	t.Parallel()
	out, err := exec.Command("go", "list", "-f", `{{.ImportPath}}:{{join .Imports " "}}`, module+"/...").Output()
	if err != nil {
		t.Fatalf("go list: %v", err)
	}
	project := func(imports []string) []string {
		var p []string
		for _, i := range imports {
			if strings.HasPrefix(i, module) {
				p = append(p, strings.TrimPrefix(i, module+"/"))
			}
		}
		return p
	}
	rules := map[string]func(imp string) bool{ // package -> allowed project import
		"driver":              func(string) bool { return false },
		"internal/atomicfile": func(string) bool { return false },
		"internal/csvtext":    func(string) bool { return false },
		"internal/jsonkeys":   func(string) bool { return false },
		"internal/crs":        func(string) bool { return false },
		"internal/wktgeo":     func(string) bool { return false },
		"remote":              leaf,
		"remote/remotetest":   func(imp string) bool { return imp == "remote" || leaf(imp) },
		// Drivers import driver and the driver layer's internal helpers only.
		"driver/sqlite":              driverLayer,
		"driver/duckdb":              driverLayer,
		"driver/csvfile":             driverLayer,
		"driver/postgres":            driverLayer,
		"driver/postgres/pgtest":     func(imp string) bool { return imp == "driver/postgres" },
		"driver/internal/sqlbuild":   func(imp string) bool { return imp == "driver" },
		"driver/internal/crashpoint": func(string) bool { return false },
		// The conformance suite sets the drivers' crash points.
		"driver/drivertest": func(imp string) bool { return imp == "driver" || imp == "driver/internal/crashpoint" },
		"udpjob":            func(imp string) bool { return imp == "driver" || imp == "remote" || leaf(imp) },
		"worker":            func(imp string) bool { return imp == "driver" || imp == "remote" || leaf(imp) },
		// Area splitting knows no jobs; the STAC export reads a table and the
		// manager's job folder layout.
		"split":         leaf,
		"stac":          func(imp string) bool { return imp == "driver" || imp == "worker" || leaf(imp) },
		"stac/stactest": func(string) bool { return false },
		// Conversions and queries work on any store through driver: the
		// program that uses them picks the drivers, as cmd/worker does.
		"tableconv": func(imp string) bool { return imp == "driver" || leaf(imp) },
		"query":     func(imp string) bool { return imp == "driver" || imp == "tableconv" || leaf(imp) },
	}
	checked := 0
	for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		pkg, imps, _ := strings.Cut(line, ":")
		pkg = strings.TrimPrefix(pkg, module+"/")
		allowed, ok := rules[pkg]
		if !ok {
			continue
		}
		checked++
		for _, imp := range project(strings.Fields(imps)) {
			if !allowed(imp) {
				t.Errorf("%s imports %s, against the layout in DESIGN.md", pkg, imp)
			}
		}
	}
	if checked != len(rules) {
		t.Errorf("checked %d packages, want %d: a package moved?", checked, len(rules))
	}
}
