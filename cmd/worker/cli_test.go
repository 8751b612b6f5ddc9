package main

import (
	"os"
	"path/filepath"
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
