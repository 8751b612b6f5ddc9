package udpjob

import (
	"fmt"
	"testing"

	"github.com/openeo-batch/worker/driver"
)

// BenchmarkCheck measures the check of rows before a run (one geometry,
// one integer per row).
func BenchmarkCheck(b *testing.B) {
	d, err := Parse([]byte(`{"id": "area_stats", "parameters": [
  {"name": "geometry", "description": "area", "schema": {"type": "object", "subtype": "geojson"}},
  {"name": "year", "description": "year", "schema": {"type": "integer"}}],
 "process_graph": {"a": {"process_id": "aggregate_spatial", "arguments": {"geometries": {"from_parameter": "geometry"}}, "result": true}}}`))
	if err != nil {
		b.Fatal(err)
	}
	rows := make([]driver.Job, 1000)
	for i := range rows {
		rows[i] = driver.Job{Key: int64(i + 1), Data: map[string]any{"name": fmt.Sprint("r", i), "year": int64(2000 + i%20),
			"geometry": fmt.Sprintf("POINT (5 %d)", i%80)}}
	}
	c := &JobCreator{Definition: d}
	for b.Loop() {
		bad, err := c.Check([]*Definition{d}, []string{"name", "year", "geometry"}, rows)
		if err != nil || len(bad) > 0 {
			b.Fatal(err, bad)
		}
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*len(rows)), "ns/row")
}
