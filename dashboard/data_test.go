package dashboard

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/paulmach/orb"
	"github.com/paulmach/orb/encoding/wkb"
)

var cols = []string{"tile", "geometry", "id", "backend_name", "status", "start_time", "running_start_time", "cpu", "memory", "duration", "costs", "last_error", "updated_at"}

func square(x, y float64) orb.Polygon {
	return orb.Polygon{{{x, y}, {x + 1, y}, {x + 1, y + 1}, {x, y + 1}, {x, y}}}
}

func testTable(t *testing.T) *Table {
	w, err := wkb.Marshal(square(3, 4))
	if err != nil {
		t.Fatal(err)
	}
	return &Table{Columns: cols, Rows: [][]any{
		{"a", "POLYGON((0 0,1 0,1 1,0 1,0 0))", "j-1", "vito", "finished", "2026-01-01T00:00:00Z", "2026-01-01T00:01:00Z", "10 cpu-seconds", "100 mb-seconds", "60 seconds", 1.5, nil, "2026-01-01T00:10:00Z"},
		{"b", w, "j-2", "cdse", "error", "2026-01-01T00:00:00Z", "2026-01-01T00:02:00Z", "5.5 cpu-seconds", nil, "n/a", int64(2), "out of memory", "2026-01-01T00:05:00Z"},
		{"c", "POINT (1 2)", nil, nil, "not_started", nil, nil, nil, nil, nil, nil, nil, "yesterday"},
		{"d", "not a geometry", nil, nil, "paused", nil, nil, nil, nil, nil, nil, nil, nil},
		{"e", nil, nil, nil, "not_started", nil, nil, nil, nil, nil, nil, nil, nil},
		// WKB handed over as text, as some readers give a GEOMETRY column.
		{"f", string(w), nil, nil, "not_started", nil, nil, nil, nil, nil, nil, nil, nil},
	}}
}

// The data of a table: one feature per drawable row (WKT or WKB), every
// other row named with its reason, counts, totals per unit with what is
// not a number said, progress, and an unknown status in its own colour.
func TestBuild(t *testing.T) {
	d, cache := build(testTable(t), "", time.Date(2026, 1, 2, 0, 0, 0, 0, time.UTC), nil)
	if len(d.Features) != 4 || d.Features[3].ID != 5 {
		t.Fatalf("%d features, want 4: %+v", len(d.Features), d.Features)
	}
	var g struct {
		Type        string        `json:"type"`
		Coordinates [][][]float64 `json:"coordinates"`
	}
	if err := json.Unmarshal(d.Features[1].Geometry, &g); err != nil || g.Type != "Polygon" || g.Coordinates[0][0][0] != 3 {
		t.Errorf("WKB row: %s (%v)", d.Features[1].Geometry, err)
	}
	if d.Features[0].Properties.Color != StatusColors["finished"] || d.Features[1].Properties.Color != StatusColors["error"] {
		t.Errorf("colours %+v", d.Features)
	}
	if len(d.Unmapped) != 2 || d.Unmapped[0].Row != 3 || !strings.Contains(d.Unmapped[0].Reason, "not WKT") ||
		d.Unmapped[1].Row != 4 || !strings.Contains(d.Unmapped[1].Reason, "no geometry") {
		t.Errorf("unmapped %+v", d.Unmapped)
	}
	if d.Counts.Total != 6 || d.Counts.ByStatus["not_started"] != 3 || d.Counts.ByStatus["paused"] != 1 {
		t.Errorf("counts %+v", d.Counts)
	}
	if d.Colors["paused"] != OtherColor || d.Statuses[len(d.Statuses)-1] != "paused" {
		t.Errorf("an unknown status: colours %v, legend %v", d.Colors, d.Statuses)
	}
	if d.Totals.Costs != 3.5 || d.Totals.CPU["cpu-seconds"] != 15.5 || d.Totals.Memory["mb-seconds"] != 100 || d.Totals.Duration["seconds"] != 60 {
		t.Errorf("totals %+v", d.Totals)
	}
	if len(d.Totals.Unparsed) != 1 || !strings.Contains(d.Totals.Unparsed[0], `row 2, column duration: "n/a"`) {
		t.Errorf("unparsed %v", d.Totals.Unparsed)
	}
	// "yesterday" is not a time; it is said, not dropped silently (row 3
	// is not_started, but its updated_at is only read for ended rows:
	// check on a finished row instead).
	tab := testTable(t)
	tab.Rows[0][12] = "yesterday"
	if d2, _ := build(tab, "", time.Now(), nil); len(d2.BadTimes) != 1 || !strings.Contains(d2.BadTimes[0], "row 1, column updated_at") {
		t.Errorf("bad times %v", d2.BadTimes)
	}
	want := []Point{
		{"2026-01-01T00:00:00Z", 2, 0, 0},
		{"2026-01-01T00:01:00Z", 2, 1, 0},
		{"2026-01-01T00:02:00Z", 2, 2, 0},
		{"2026-01-01T00:05:00Z", 2, 2, 1},
		{"2026-01-01T00:10:00Z", 2, 2, 2},
	}
	if len(d.Progress) != len(want) {
		t.Fatalf("progress %+v, want %+v", d.Progress, want)
	}
	for i := range want {
		if d.Progress[i] != want[i] {
			t.Errorf("progress[%d] = %+v, want %+v", i, d.Progress[i], want[i])
		}
	}
	// The next read takes the footprints from the cache, which keeps only
	// this read's: a footprint that changed is parsed again.
	if len(cache) != 4 {
		t.Errorf("%d footprints cached, want 4", len(cache))
	}
	tab = testTable(t)
	tab.Rows[0][1] = "POINT (7 8)"
	d3, cache := build(tab, "", time.Now(), cache)
	if string(d3.Features[0].Geometry) != `{"coordinates":[7,8],"type":"Point"}` || string(d3.Features[1].Geometry) != string(d.Features[1].Geometry) {
		t.Errorf("with the cache: %s, %s", d3.Features[0].Geometry, d3.Features[1].Geometry)
	}
	if key, _ := geometryKey("POLYGON((0 0,1 0,1 1,0 1,0 0))", nil); cache[key] != nil || len(cache) != 4 {
		t.Errorf("the cache keeps %d footprints, the replaced one too: %v", len(cache), cache[key] != nil)
	}
	if d.Rows[1][1] != "Polygon (WKB, 93 bytes)" || d.Rows[5][1] != "Polygon (WKB, 93 bytes)" {
		t.Errorf("WKB cells show as %q and %q", d.Rows[1][1], d.Rows[5][1])
	}
}

// The data answers with an ETag, and an unchanged table costs a 304; the
// read-only server refuses writes; a failed read is a 503 naming it.
func TestDataHandler(t *testing.T) {
	tab := testTable(t)
	fail := false
	srv, err := New(Options{Read: func(context.Context) (*Table, error) {
		if fail {
			return nil, errTest
		}
		return tab, nil
	}})
	if err != nil {
		t.Fatal(err)
	}
	rec := httptest.NewRecorder()
	srv.ServeHTTP(rec, httptest.NewRequest("GET", "/api/data", nil))
	etag := rec.Header().Get("ETag")
	if rec.Code != 200 || etag == "" || !strings.Contains(rec.Body.String(), `"features"`) {
		t.Fatalf("%d %q %s", rec.Code, etag, rec.Body.String())
	}
	req := httptest.NewRequest("GET", "/api/data", nil)
	req.Header.Set("If-None-Match", etag)
	rec = httptest.NewRecorder()
	srv.ServeHTTP(rec, req)
	if rec.Code != http.StatusNotModified {
		t.Errorf("unchanged table: %d, want 304", rec.Code)
	}
	tab.Rows[0][4] = "running"
	rec = httptest.NewRecorder()
	srv.ServeHTTP(rec, req)
	if rec.Code != 200 || rec.Header().Get("ETag") == etag {
		t.Errorf("changed table: %d, ETag %q", rec.Code, rec.Header().Get("ETag"))
	}
	for _, m := range []string{"POST", "PUT", "DELETE", "PATCH"} {
		rec = httptest.NewRecorder()
		srv.ServeHTTP(rec, httptest.NewRequest(m, "/api/data", nil))
		if rec.Code != http.StatusMethodNotAllowed {
			t.Errorf("%s: %d", m, rec.Code)
		}
	}
	fail = true
	rec = httptest.NewRecorder()
	srv.ServeHTTP(rec, httptest.NewRequest("GET", "/api/data", nil))
	if rec.Code != http.StatusServiceUnavailable || !strings.Contains(rec.Body.String(), errTest.Error()) {
		t.Errorf("failed read: %d %s", rec.Code, rec.Body.String())
	}
	// The page and Leaflet are embedded, and nothing may come from another origin.
	for _, p := range []string{"/", "/app.js", "/vendor/leaflet/leaflet.js", "/vendor/leaflet/LICENSE"} {
		rec = httptest.NewRecorder()
		srv.ServeHTTP(rec, httptest.NewRequest("GET", p, nil))
		if rec.Code != 200 || rec.Header().Get("Content-Security-Policy") != "default-src 'self'; img-src 'self' data:" {
			t.Errorf("%s: %d, CSP %q", p, rec.Code, rec.Header().Get("Content-Security-Policy"))
		}
	}
}

type testError struct{}

func (testError) Error() string { return "jobs.db: database is locked" }

var errTest = testError{}

// FuzzGeometryJSON: a geometry cell from a table (WKT text or WKB bytes)
// either becomes GeoJSON that decodes, or an error; never a panic.
func FuzzGeometryJSON(f *testing.F) {
	w, _ := wkb.Marshal(square(1, 2))
	f.Add([]byte("POLYGON((0 0,1 0,1 1,0 0))"), false)
	f.Add([]byte("MULTIPOLYGON (((1 1, 2 2, 3 1, 1 1)))"), false)
	f.Add([]byte("POINT Z (1 2 3)"), false)
	f.Add(w, true)
	f.Add(w[:20], true)
	f.Fuzz(func(t *testing.T, b []byte, asBytes bool) {
		var v any = string(b)
		if asBytes {
			v = b
		}
		g, err := geometryJSON(v)
		if err != nil {
			return
		}
		var out struct {
			Type string `json:"type"`
		}
		if err := json.Unmarshal(g, &out); err != nil || out.Type == "" {
			t.Fatalf("%q gave %s (%v)", b, g, err)
		}
	})
}
