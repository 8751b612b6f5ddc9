package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/openeo-batch/worker/driver"
)

// TestSplitCommand: worker split writes a tile table that init and run
// take, and refuses bad input with exit status 2 and no file.
func TestSplitCommand(t *testing.T) {
	dir := t.TempDir()
	exec := func(args ...string) (int, string) {
		var out bytes.Buffer
		code := run(t.Context(), args, &out, &out)
		return code, out.String()
	}
	db := filepath.Join(dir, "tiles.db")
	code, out := exec("split", "--area", "412345,5612345,512345,5712345,EPSG:32631", "--tile-size", "20000", "--projection", "EPSG:32631", "--to", db)
	if code != 0 || !strings.Contains(out, "wrote 25 tiles in EPSG:32631") {
		t.Fatalf("split: %d %s", code, out)
	}
	s, err := driver.OpenReader(t.Context(), db)
	if err != nil {
		t.Fatal(err)
	}
	rows, err := s.Select(t.Context(), driver.Filter{})
	s.Close()
	if err != nil || len(rows) != 25 {
		t.Fatalf("%d rows, %v", len(rows), err)
	}
	if r := rows[0]; r.Status != driver.NotStarted || r.Data["tile_id"] != "0_0" || r.Data["epsg"] != int64(32631) ||
		r.Data["geometry"] != "POLYGON ((412345 5612345, 432345 5612345, 432345 5632345, 412345 5632345, 412345 5612345))" {
		t.Errorf("first row %+v", r)
	}

	// A GeoJSON area, tiled in its UTM zone, to a GeoJSON table that init reads.
	area := filepath.Join(dir, "aoi.geojson")
	os.WriteFile(area, []byte(`{"type": "Polygon", "coordinates": [[[3.2, 50.9], [4.1, 50.9], [4.1, 51.5], [3.2, 51.5], [3.2, 50.9]]]}`), 0o644)
	tiles := filepath.Join(dir, "tiles.geojson")
	if code, out := exec("split", "--area", area, "--tile-size", "20000", "--projection", "utm", "--to", tiles); code != 0 {
		t.Fatalf("split --projection utm: %d %s", code, out)
	}
	if code, out := exec("init", "--from", tiles, "--db", filepath.Join(dir, "jobs.csv")); code != 0 || !strings.Contains(out, "tile_id") {
		t.Errorf("init --from the tiles: %d %s", code, out)
	}

	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"--area", "3,51,3,52", "--tile-size", "1", "--projection", "4326"}, "zero width"},
		{[]string{"--area", "3,51,4,52", "--tile-size", "-5", "--projection", "4326"}, "positive"},
		{[]string{"--area", "3,51,4,52", "--tile-size", "1", "--projection", "999999"}, "unknown projection"},
		{[]string{"--area", "3,51,4,52", "--tile-size", "1", "--projection", "mercator"}, "not an EPSG code"},
		{[]string{"--area", "nowhere.geojson", "--tile-size", "1", "--projection", "4326"}, "neither a file nor a bounding box"},
		{[]string{"--area", "3,51,4,52", "--projection", "4326"}, "--tile-size and --projection, or --grid"},
		{[]string{"--area", "3,51,4,52", "--tile-size", "1", "--projection", "4326", "--align", "left"}, "--align"},
	} {
		to := filepath.Join(dir, "bad.csv")
		code, out := exec(append(append([]string{"split"}, c.args...), "--to", to)...)
		if code != exitUsage || !strings.Contains(out, c.want) {
			t.Errorf("%v: exit %d, %q; want 2 and %q", c.args, code, out, c.want)
		}
		if _, err := os.Stat(to); err == nil {
			t.Errorf("%v: wrote %s", c.args, to)
		}
	}
}
