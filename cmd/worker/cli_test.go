package main

import (
	"errors"
	"flag"
	"io"
	"os"
	"path/filepath"
	"slices"
	"testing"
)

func TestReadCSVTypesPerColumn(t *testing.T) {
	path := filepath.Join(t.TempDir(), "in.csv")
	os.WriteFile(path, []byte("year,tile,cover,id,flag\n2020,0123,0.5,17,True\n2021,31UFS,,18,False\n"), 0o644)
	tab, err := readCSV(path)
	if err != nil {
		t.Fatal(err)
	}
	want := [][]any{
		{int64(2020), "0123", 0.5, "17", "True"},
		{int64(2021), "31UFS", nil, "18", "False"},
	}
	for i := range want {
		for j := range want[i] {
			if tab.rows[i][j] != want[i][j] {
				t.Errorf("row %d col %s = %#v, want %#v", i, tab.columns[j], tab.rows[i][j], want[i][j])
			}
		}
	}
}

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
	cases := []struct {
		cmd  command
		in   []string
		want []string
	}{
		{queryCmd, []string{"select 1", "--db", "x.db"}, []string{"--db", "x.db", "--", "select 1"}},
		{queryCmd, []string{"--db=x.db", "select 1", "--format", "json"}, []string{"--db=x.db", "--format", "json", "--", "select 1"}},
		{statusCmd, []string{"--json", "--db", "x.db"}, []string{"--json", "--db", "x.db"}},
		// A value that looks like a flag stays the value of its flag.
		{jobsCmd, []string{"--where", "-1 < year", "--db", "x.db"}, []string{"--where", "-1 < year", "--db", "x.db"}},
		// After --, everything is an argument.
		{cancelCmd, []string{"3", "--db", "x.db", "--", "--json"}, []string{"--db", "x.db", "--", "3", "--json"}},
		// A bool flag takes no value: the argument after it stays one.
		{cancelCmd, []string{"--json", "4", "--db", "x.db"}, []string{"--json", "--db", "x.db", "--", "4"}},
	}
	for _, c := range cases {
		if got := flagsFirst(c.cmd, c.in); !slices.Equal(got, c.want) {
			t.Errorf("flagsFirst(%s, %q) = %q, want %q", c.cmd.name, c.in, got, c.want)
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

// TestCommandsParseFirst: flagsFirst learns a command's flags by running it
// with -h, so every command must define its flags and parse before it does
// anything else, answering -h with flag.ErrHelp.
func TestCommandsParseFirst(t *testing.T) {
	for _, c := range commands {
		fs := flag.NewFlagSet(c.name, flag.ContinueOnError)
		fs.SetOutput(io.Discard)
		if err := c.run(t.Context(), fs, []string{"-h"}, io.Discard, io.Discard); !errors.Is(err, flag.ErrHelp) {
			t.Errorf("worker %s -h: %v, want flag.ErrHelp before any work", c.name, err)
		}
	}
}
