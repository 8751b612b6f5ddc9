package main

import (
	"bytes"
	"errors"
	"flag"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/openeo-batch/worker/driver/drivertest"
)

func TestParseBackend(t *testing.T) {
	spec, err := parseBackend("vito=https://openeo.vito.be/openeo/1.2,parallel=4,queue=3")
	if err != nil || spec.name != "vito" || spec.url != "https://openeo.vito.be/openeo/1.2" || spec.parallel != 4 || spec.queue != 3 {
		t.Errorf("got %+v, %v", spec, err)
	}
	for _, bad := range []string{"novalue", "=http://x", "a=http://x,parallel=-1", "a=http://x,speed=3"} {
		if _, err := parseBackend(bad); err == nil {
			t.Errorf("parseBackend(%q) accepted", bad)
		}
	}
}

func TestEnvName(t *testing.T) {
	if got := envName("cdse-eu.1"); got != "CDSE_EU_1" {
		t.Errorf("envName = %q", got)
	}
}

func TestFlagsFirst(t *testing.T) {
	fs := flag.NewFlagSet("x", flag.ContinueOnError)
	fs.String("db", "", "")
	fs.String("format", "", "")
	fs.String("where", "", "")
	fs.Bool("json", false, "")
	cases := []struct {
		in   []string
		want []string
	}{
		{[]string{"select 1", "--db", "x.db"}, []string{"--db", "x.db", "--", "select 1"}},
		{[]string{"--db=x.db", "select 1", "--format", "json"}, []string{"--db=x.db", "--format", "json", "--", "select 1"}},
		{[]string{"--json", "--db", "x.db"}, []string{"--json", "--db", "x.db"}},
		// A value that looks like a flag stays the value of its flag.
		{[]string{"--where", "-1 < year", "--db", "x.db"}, []string{"--where", "-1 < year", "--db", "x.db"}},
		// After --, everything is an argument.
		{[]string{"3", "--db", "x.db", "--", "--json"}, []string{"--db", "x.db", "--", "3", "--json"}},
		// A bool flag takes no value: the argument after it stays one.
		{[]string{"--json", "4", "--db", "x.db"}, []string{"--json", "--db", "x.db", "--", "4"}},
		{[]string{"--json=true", "4", "-"}, []string{"--json=true", "--", "4", "-"}},
	}
	for _, c := range cases {
		if got := flagsFirst(fs, c.in); !slices.Equal(got, c.want) {
			t.Errorf("flagsFirst(%q) = %q, want %q", c.in, got, c.want)
		}
	}
}

func TestBackendNamedAfterHost(t *testing.T) {
	spec, err := parseBackend("https://openeo.vito.be:8443/openeo/1.2,parallel=4")
	if err != nil || spec.name != "openeo.vito.be" || spec.url != "https://openeo.vito.be:8443/openeo/1.2" || spec.parallel != 4 {
		t.Errorf("got %+v, %v", spec, err)
	}
	spec, err = parseBackend("vito=https://openeo.vito.be/?a=b")
	if err != nil || spec.name != "vito" || spec.url != "https://openeo.vito.be/?a=b" {
		t.Errorf("named: got %+v, %v", spec, err)
	}
}

// TestCommandsParseAnywhere: every command parses its flags with parse or
// parseArgs, so that they may follow its other arguments, and answers -h
// with flag.ErrHelp before doing anything.
func TestCommandsParseAnywhere(t *testing.T) {
	for _, c := range commands {
		fs := flag.NewFlagSet(c.name, flag.ContinueOnError)
		fs.SetOutput(io.Discard)
		if err := c.run(t.Context(), fs, []string{"an-argument", "-h"}, io.Discard, io.Discard); !errors.Is(err, flag.ErrHelp) {
			t.Errorf("worker %s an-argument -h: %v, want flag.ErrHelp before any work", c.name, err)
		}
	}
}

// A plain CSV given as --db: status counts its rows without changing it or
// leaving anything beside it; a bad one is refused by run with the file,
// row and column, exit 1, and nothing left behind.
func TestPlainCSVAsTable(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "t.csv")
	const plain = "year,title\n2000,a\n"
	os.WriteFile(path, []byte(plain), 0o644)
	var stdout, stderr bytes.Buffer
	if code := run(t.Context(), []string{"status", "--db", path}, &stdout, &stderr); code != 0 {
		t.Fatalf("status: exit %d\n%s", code, stderr.String())
	}
	if !strings.Contains(stdout.String(), "not_started") {
		t.Errorf("status printed %q", stdout.String())
	}
	drivertest.OnlyFile(t, path, plain)

	const bad = "year,status\n2000,\n2001,done\n"
	os.WriteFile(path, []byte(bad), 0o644)
	os.WriteFile(filepath.Join(dir, "p.json"), []byte(`{"id": "p", "process_graph": {"n": {"process_id": "add", "arguments": {"x": 1, "y": 2}, "result": true}}}`), 0o644)
	stderr.Reset()
	code := run(t.Context(), []string{"run", "--db", path, "--backend", "x=http://127.0.0.1:1", "--process", filepath.Join(dir, "p.json")}, &stdout, &stderr)
	if code != exitUsage { // the table's content is invalid input
		t.Errorf("run: exit %d, want 2\n%s", code, stderr.String())
	}
	for _, want := range []string{"t.csv", "row 2", "status", "done"} {
		if !strings.Contains(stderr.String(), want) {
			t.Errorf("message %q lacks %q", stderr.String(), want)
		}
	}
	os.Remove(filepath.Join(dir, "p.json"))
	drivertest.OnlyFile(t, path, bad)
}

// The commands that pick rows name their filters alike: --backend-name
// for a back-end's rows (--backend, where a command has it, is a back-end
// to talk to), --where and, but for download, --status.
func TestSelectionFlagsAlike(t *testing.T) {
	for _, c := range []command{jobsCmd, retryCmd, cancelCmd, downloadCmd} {
		fs := flag.NewFlagSet(c.name, flag.ContinueOnError)
		fs.SetOutput(io.Discard)
		c.run(t.Context(), fs, []string{"-h"}, io.Discard, io.Discard)
		for _, name := range []string{"backend-name", "where", "status"} {
			if fs.Lookup(name) == nil && !(name == "status" && c.name == "download") {
				t.Errorf("worker %s has no --%s", c.name, name)
			}
		}
	}
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "in.csv"), []byte("title,backend_name,status,id\na,x,error,j-1\nb,y,error,j-2\n"), 0o644)
	if code, out := cli(t, dir, "init", "--from", "in.csv", "--db", "jobs.db"); code != 0 {
		t.Fatal(out)
	}
	for _, flagName := range []string{"--backend-name", "--backend"} { // --backend: README's older spelling
		code, out := cli(t, dir, "jobs", "--db", "jobs.db", flagName, "x", "--columns", "title")
		if code != 0 || !strings.Contains(out, " a") || strings.Contains(out, " b") {
			t.Errorf("jobs %s x: exit %d:\n%s", flagName, code, out)
		}
	}
	code, out := cli(t, dir, "retry", "--db", "jobs.db", "--backend-name", "y")
	if code != 0 {
		t.Fatalf("retry: exit %d: %s", code, out)
	}
	code, out = cli(t, dir, "jobs", "--db", "jobs.db", "--status", "not_started", "--columns", "title")
	if code != 0 || !strings.Contains(out, " b") || strings.Contains(out, " a") {
		t.Errorf("after retry --backend-name y: exit %d:\n%s", code, out)
	}
}

// Durations read the same in both log formats: "2s", not 2000000000.
func TestLogDurations(t *testing.T) {
	for _, format := range []string{"text", "json"} {
		var buf bytes.Buffer
		fs := flag.NewFlagSet("x", flag.ContinueOnError)
		lf := addLogFlags(fs, &buf)
		if err := fs.Parse([]string{"--log-format", format}); err != nil {
			t.Fatal(err)
		}
		slog.New(lf.handler()).Info("m", "limit", 2*time.Second, slog.Group("g", "eta", 90*time.Second))
		out := buf.String()
		if !strings.Contains(out, "2s") || !strings.Contains(out, "1m30s") || strings.Contains(out, "2000000000") {
			t.Errorf("%s: %s", format, out)
		}
	}
}
