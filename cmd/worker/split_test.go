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

	// A predefined grid: the tiles the area overlaps, whole, with their
	// properties.
	grid := filepath.Join(dir, "grid.geojson")
	os.WriteFile(grid, []byte(`{"type": "FeatureCollection", "features": [
	 {"type": "Feature", "id": "31UES", "properties": {"zone": 31}, "geometry": {"type": "Polygon", "coordinates": [[[3, 50], [4, 50], [4, 51], [3, 51], [3, 50]]]}},
	 {"type": "Feature", "id": "31UFS", "properties": {"zone": 31}, "geometry": {"type": "Polygon", "coordinates": [[[4, 50], [5, 50], [5, 51], [4, 51], [4, 50]]]}},
	 {"type": "Feature", "id": "31UET", "properties": {"zone": 31}, "geometry": {"type": "Polygon", "coordinates": [[[3, 51], [4, 51], [4, 52], [3, 52], [3, 51]]]}}]}`), 0o644)
	gridTiles := filepath.Join(dir, "grid-tiles.csv")
	if code, out := exec("split", "--area", "4.2,50.2,4.8,50.8", "--grid", grid, "--to", gridTiles); code != 0 || !strings.Contains(out, "wrote 1 tiles in EPSG:4326") {
		t.Errorf("split --grid: %d %s", code, out)
	}
	if b, _ := os.ReadFile(gridTiles); !strings.HasPrefix(string(b), "tile_id,zone,epsg,") || !strings.Contains(string(b), "31UFS,31,4326,4.0,50.0,5.0,51.0,") {
		t.Errorf("grid tiles:\n%s", b)
	}

	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"--area", "3,51,4,52", "--grid", grid, "--tile-size", "1"}, "exclude each other"},
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
