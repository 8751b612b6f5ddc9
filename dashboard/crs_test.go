package dashboard

import (
	"compress/gzip"
	"context"
	"encoding/json"
	"io"
	"math"
	"net/http/httptest"
	"strings"
	"testing"
)

// utmTable is a table as worker split --projection utm writes it: WKT in
// UTM zone 31N and an epsg column; row c has no epsg, row d another zone.
func utmTable() *Table {
	return &Table{Columns: []string{"tile_id", "epsg", "geometry", "status"}, Rows: [][]any{
		{"a", int64(32631), "POLYGON ((500000 5600000, 520000 5600000, 520000 5620000, 500000 5620000, 500000 5600000))", "finished"},
		{"b", "EPSG:32631", "POINT (500000 5600000)", "not_started"},
		{"c", nil, "POINT (500000 5600000)", "not_started"},
		{"d", int64(32632), "POINT (500000 5600000)", "not_started"},
		{"e", int64(32631), "POINT (3.123456789 50.987654321)", "not_started"}, // already longitude/latitude
	}}
}

// getData asks the data handler for the page's data, as the browser does
// (gzip accepted), and decodes it.
func getData(t *testing.T, tab *Table) (*Data, string) {
	t.Helper()
	srv, err := New(Options{Read: func(context.Context) (*Table, error) { return tab, nil }})
	if err != nil {
		t.Fatal(err)
	}
	req := httptest.NewRequest("GET", "/api/data", nil)
	req.Header.Set("Accept-Encoding", "gzip, deflate, br")
	rec := httptest.NewRecorder()
	srv.ServeHTTP(rec, req)
	if rec.Code != 200 {
		t.Fatalf("/api/data: %d %s", rec.Code, rec.Body.String())
	}
	enc := rec.Header().Get("Content-Encoding")
	var body io.Reader = rec.Body
	if enc == "gzip" {
		zr, err := gzip.NewReader(rec.Body)
		if err != nil {
			t.Fatal(err)
		}
		body = zr
	}
	var d Data
	if err := json.NewDecoder(body).Decode(&d); err != nil {
		t.Fatal(err)
	}
	return &d, enc
}

// TestDataUTM is review 3's item 5: footprints in a projected CRS are
// drawn in longitude/latitude, reprojected by their row's epsg column
// (or the CRS the table names); a row whose coordinates are not
// longitude/latitude and whose CRS is unknown is unmapped, saying why.
// Coordinates are rounded to 6 decimals; the answer is gzip-compressed
// for a client that accepts it (item 13).
func TestDataUTM(t *testing.T) {
	d, enc := getData(t, utmTable())
	if enc != "gzip" {
		t.Errorf("Content-Encoding %q, want gzip", enc)
	}
	pos := map[int][]float64{}
	for _, f := range d.Features {
		var g struct {
			Type        string          `json:"type"`
			Coordinates json.RawMessage `json:"coordinates"`
		}
		json.Unmarshal(f.Geometry, &g)
		var p []float64
		if g.Type == "Polygon" {
			var c [][][]float64
			json.Unmarshal(g.Coordinates, &c)
			p = c[0][0]
		} else {
			json.Unmarshal(g.Coordinates, &p)
		}
		pos[f.ID] = p
	}
	near := func(p []float64, lon, lat float64) bool {
		return len(p) == 2 && math.Abs(p[0]-lon) < 1e-4 && math.Abs(p[1]-lat) < 1e-4
	}
	// 500000, 5600000 in UTM 31N is 3 E, 50.5519 N; in 32N 9 E.
	if !near(pos[0], 3, 50.5519) || !near(pos[1], 3, 50.5519) || !near(pos[3], 9, 50.5519) {
		t.Errorf("footprints at %v, want rows 0 and 1 at 3, 50.5519 and row 3 at 9, 50.5519", pos)
	}
	if p := pos[4]; len(p) != 2 || p[0] != 3.123457 || p[1] != 50.987654 {
		t.Errorf("a longitude/latitude point at %v, want 3.123457, 50.987654 (6 decimals)", p)
	}
	if len(d.Unmapped) != 1 || d.Unmapped[0].Row != 2 || !strings.Contains(d.Unmapped[0].Reason, "not longitude/latitude") ||
		!strings.Contains(d.Unmapped[0].Reason, "epsg column") {
		t.Errorf("unmapped %+v, want row 2 with the reason", d.Unmapped)
	}

	// A table that names its CRS (a GeoParquet crs) needs no epsg column.
	tab := utmTable()
	tab.EPSG = 32631
	d, _ = getData(t, tab)
	if len(d.Features) != 5 || len(d.Unmapped) != 0 {
		t.Errorf("table in EPSG:32631: %d features, unmapped %+v", len(d.Features), d.Unmapped)
	}
}
