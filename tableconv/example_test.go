package tableconv_test

import (
	"context"
	"fmt"
	"log"
	"os"
	"path/filepath"

	_ "github.com/openeo-batch/worker/driver/csvfile" // jobs.csv tables
	_ "github.com/openeo-batch/worker/driver/sqlite"  // jobs.db tables
	"github.com/openeo-batch/worker/tableconv"
)

// Make a job table from a GeoJSON FeatureCollection, then export it as the
// Python client's CSV job table.
func Example() {
	ctx := context.Background()
	dir, err := os.MkdirTemp("", "tableconv-example")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(dir)
	aois := filepath.Join(dir, "aois.geojson")
	os.WriteFile(aois, []byte(`{"type": "FeatureCollection", "features": [
		{"type": "Feature", "properties": {"name": "a", "year": 2020},
		 "geometry": {"type": "Point", "coordinates": [5.5, 51.5]}}]}`), 0o644)

	t, err := tableconv.Read(ctx, aois)
	if err != nil {
		log.Fatal(err)
	}
	if err := tableconv.CheckGeometries(ctx, aois, t); err != nil {
		log.Fatal(err)
	}
	fmt.Println(t.Columns, t.Rows)
	if _, err := tableconv.Create(ctx, filepath.Join(dir, "jobs.db"), t); err != nil {
		log.Fatal(err)
	}

	jobs, err := tableconv.ReadStore(ctx, filepath.Join(dir, "jobs.db"))
	if err != nil {
		log.Fatal(err)
	}
	n, err := tableconv.Create(ctx, filepath.Join(dir, "jobs.csv"), jobs)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println("wrote", n, "rows with columns", jobs.Columns[:6])
	// Output:
	// [name year geometry] [[a 2020 POINT(5.5 51.5)]]
	// wrote 1 rows with columns [name year geometry id backend_name status]
}
