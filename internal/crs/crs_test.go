package crs_test

import (
	"errors"
	"math"
	"strings"
	"testing"

	"github.com/paulmach/orb"

	"github.com/openeo-batch/worker/internal/crs"
)

func TestLookupCRS(t *testing.T) {
	for _, c := range []struct {
		epsg       int
		kind       string
		horizontal bool
	}{
		{4326, "geographic 2D", true},
		{32631, "projected", true},
		{3857, "projected", true},
		{5714, "vertical", false},
		{4978, "geocentric", false},
		{4979, "geographic 3D", false},
		{9518, "compound", false},
	} {
		got, err := crs.LookupCRS(c.epsg)
		if err != nil || got.Kind != c.kind || got.Horizontal2D() != c.horizontal {
			t.Errorf("EPSG:%d: %+v %v, want kind %q, horizontal %v", c.epsg, got.Kind, err, c.kind, c.horizontal)
		}
		if err := crs.CheckHorizontal(c.epsg); (err == nil) != c.horizontal || (err != nil && !errors.Is(err, crs.ErrNotHorizontal)) {
			t.Errorf("CheckHorizontal(%d) = %v", c.epsg, err)
		}
		// PROJJSON names its own EPSG code back.
		if n, err := crs.EPSGOfPROJJSON(got.PROJJSON); n != c.epsg || err != nil {
			t.Errorf("EPSG:%d: PROJJSON names %d, %v", c.epsg, n, err)
		}
	}
	if _, err := crs.LookupCRS(999999); !errors.Is(err, crs.ErrUnknownProjection) {
		t.Errorf("unknown code: %v", err)
	}
	if n, err := crs.EPSGOfPROJJSON(`{"type":"GeographicCRS","id":{"authority":"OGC","code":"CRS84"}}`); n != 4326 || err != nil {
		t.Errorf("OGC:CRS84: %d %v", n, err)
	}
	if _, err := crs.EPSGOfPROJJSON(`not json`); err == nil {
		t.Error("no error for text that is no PROJJSON")
	}
	if n, err := crs.EPSGOfPROJJSON("EPSG:32631"); n != 32631 || err != nil {
		t.Errorf("EPSG:32631 as DuckDB names it: %d %v", n, err)
	}
	for typ, want := range map[string]string{
		"GEOMETRY('OGC:CRS84')":     "",
		"GEOMETRY":                  "",
		"VARCHAR":                   "",
		`GEOMETRY('{"a": "b''c"}')`: `{"a": "b'c"}`,
	} {
		if got, _ := crs.OfGeometryType(typ); got != want {
			t.Errorf("OfGeometryType(%s) = %q, want %q", typ, got, want)
		}
	}
}

// TestToLonLat: a UTM 31N position goes to the longitude/latitude PROJ
// gives for it (the zone's central meridian is 3 degrees east).
func TestToLonLat(t *testing.T) {
	g, err := crs.ToLonLat(orb.Polygon{{{500000, 5600000}, {510000, 5600000}, {510000, 5610000}, {500000, 5600000}}}, 32631)
	if err != nil {
		t.Fatal(err)
	}
	p := g.(orb.Polygon)[0][0]
	if math.Abs(p[0]-3) > 1e-9 || math.Abs(p[1]-50.5519) > 1e-4 {
		t.Errorf("500000, 5600000 in UTM 31N is %v, want about 3, 50.5519", p)
	}
	x, y, err := crs.Transform(4326, 3, 50)
	if x != 3 || y != 50 || err != nil {
		t.Errorf("4326 to itself: %v %v %v", x, y, err)
	}
}

func TestFootprintEPSG(t *testing.T) {
	utm := orb.Bound{Min: orb.Point{500000, 5600000}, Max: orb.Point{520000, 5620000}}
	lonlat := orb.Bound{Min: orb.Point{3, 50}, Max: orb.Point{4, 51}}
	for _, c := range []struct {
		table int
		cell  any
		b     orb.Bound
		want  int
		err   string
	}{
		{0, int64(32631), utm, 32631, ""},
		{0, "EPSG:32631", utm, 32631, ""},
		{0, float64(32631), utm, 32631, ""},
		{32631, nil, utm, 32631, ""},
		{0, int64(32631), lonlat, 4326, ""}, // a grid of lon/lat tiles naming their UTM zone
		{0, nil, lonlat, 4326, ""},
		{0, nil, utm, 0, "neither the table nor an epsg column"},
		{0, "utm", utm, 0, "not an EPSG code"},
		{4326, nil, utm, 0, "although the table names EPSG:4326"},
	} {
		got, err := crs.FootprintEPSG(c.table, c.cell, c.b)
		if got != c.want || (c.err == "") != (err == nil) || (err != nil && !strings.Contains(err.Error(), c.err)) {
			t.Errorf("FootprintEPSG(%d, %v, %v) = %d, %v; want %d, %q", c.table, c.cell, c.b, got, err, c.want, c.err)
		}
	}
}
