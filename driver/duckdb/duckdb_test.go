package duckdb_test

import (
	"context"
	"database/sql"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/openeo-batch/worker/driver"
	"github.com/openeo-batch/worker/driver/drivertest"
	"github.com/openeo-batch/worker/driver/duckdb"
)

func TestConformanceParquet(t *testing.T) {
	drivertest.Run(t, func(ctx context.Context, path string) (driver.Store, error) {
		return duckdb.Open(ctx, path)
	}, ".parquet")
}

func TestConformanceDuckDB(t *testing.T) {
	drivertest.Run(t, func(ctx context.Context, path string) (driver.Store, error) {
		return duckdb.Open(ctx, path)
	}, ".duckdb")
}

func copyFile(t *testing.T, from, to string) {
	t.Helper()
	b, err := os.ReadFile(from)
	if err != nil {
		t.Skipf("fixture not present: %v", err)
	}
	os.WriteFile(to, b, 0o644)
}

// GeoParquet written by geopandas: geometries come as WKT, and the table
// goes back out as GeoParquet (geo metadata, WKB) with its values.
func TestGeoParquetRoundTrip(t *testing.T) {
	for _, name := range []string{"example.parquet", "polygon-wkb.parquet"} {
		t.Run(name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), name)
			copyFile(t, filepath.Join("..", "..", "..", "shared", "fixtures", "geoparquet", name), path)
			s, err := duckdb.Open(t.Context(), path)
			if err != nil {
				t.Fatal(err)
			}
			rows, err := s.Select(t.Context(), driver.Filter{})
			if err != nil {
				t.Fatal(err)
			}
			if len(rows) == 0 || rows[0].Status != driver.NotStarted {
				t.Fatalf("rows = %+v", rows)
			}
			geom, _ := rows[0].Data["geometry"].(string)
			if !strings.Contains(geom, "POLYGON") {
				t.Errorf("geometry = %q, want WKT", rows[0].Data["geometry"])
			}
			if err := s.Update(t.Context(), driver.Update{Key: rows[0].Key, Set: driver.Values{driver.ColStatus: driver.Finished, driver.ColID: "j-1"}}); err != nil {
				t.Fatal(err)
			}
			if err := s.Close(); err != nil {
				t.Fatal(err)
			}
			db, _ := sql.Open("duckdb", "")
			defer db.Close()
			var geo string
			if err := db.QueryRow("SELECT decode(value) FROM parquet_kv_metadata(?) WHERE decode(key) = 'geo'", path).Scan(&geo); err != nil || !strings.Contains(geo, `"geometry"`) {
				t.Errorf("geo metadata after rewrite: %q %v", geo, err)
			}
			var st, wkt string
			if err := db.QueryRow("SELECT status, ST_AsText(geometry) FROM read_parquet(?) LIMIT 1", path).Scan(&st, &wkt); err != nil || st != "finished" || wkt != geom {
				t.Errorf("after rewrite: status %q geometry %q (%v)", st, wkt, err)
			}
		})
	}
}

func TestBadParquet(t *testing.T) {
	path := filepath.Join(t.TempDir(), "fake.parquet")
	os.WriteFile(path, []byte("year,title\n2020,a\n"), 0o644)
	_, err := duckdb.Open(t.Context(), path)
	if err == nil || !strings.Contains(err.Error(), "fake.parquet") {
		t.Errorf("err = %v, want it to name the file", err)
	}
	if b, _ := os.ReadFile(path); string(b) != "year,title\n2020,a\n" {
		t.Error("the file was changed")
	}
	if _, err := os.Stat(path + ".work.duckdb"); !os.IsNotExist(err) {
		t.Error("a work file was left behind")
	}
}

func TestBadGeometryInit(t *testing.T) {
	s, err := duckdb.Open(t.Context(), filepath.Join(t.TempDir(), "j.parquet"))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	err = s.Init(t.Context(), []string{"name", "geometry"}, drivertest.Rows([][]any{{"a", "POINT (1 2)"}, {"b", "POLYGON ((1 2, 3"}}))
	if err == nil || !strings.Contains(err.Error(), "row 2") {
		t.Errorf("err = %v, want it to name row 2", err)
	}
}

// A table in a folder we may not write in (shared fixtures, a read-only
// mount) opens read-only instead of failing.
func TestReadOnlyFolder(t *testing.T) {
	if os.Geteuid() == 0 {
		t.Skip("root writes anywhere: the folder cannot be made read-only")
	}
	dir := t.TempDir()
	path := filepath.Join(dir, "t.parquet")
	s, _ := duckdb.Open(t.Context(), path)
	s.Init(t.Context(), []string{"x"}, drivertest.Rows([][]any{{int64(1)}}))
	s.Close()
	os.Chmod(dir, 0o555)
	defer os.Chmod(dir, 0o755)
	r, err := duckdb.Open(t.Context(), path)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	if rows, err := r.Select(t.Context(), driver.Filter{}); err != nil || len(rows) != 1 {
		t.Errorf("rows %v, %v", rows, err)
	}
}
