package crs

import (
	"cmp"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"
	"sync"

	"github.com/paulmach/orb"
	"github.com/paulmach/orb/project"
	"github.com/twpayne/go-proj/v11"
)

// WGS84 is the EPSG code of longitude/latitude on WGS 84, the CRS of
// GeoJSON (RFC 7946) and STAC geometries.
const WGS84 = 4326

// ParseEPSG reads a CRS as an EPSG code: "32631", "EPSG:32631",
// "epsg:32631", "urn:ogc:def:crs:EPSG::32631", or "OGC:CRS84" and its URN
// (longitude/latitude, 4326). It does not check that PROJ knows the code.
func ParseEPSG(s string) (int, error) {
	t := strings.TrimSpace(s)
	u := strings.ToUpper(t)
	switch u {
	case "OGC:CRS84", "CRS84", "URN:OGC:DEF:CRS:OGC:1.3:CRS84", "URN:OGC:DEF:CRS:OGC::CRS84":
		return WGS84, nil
	}
	for _, prefix := range []string{"URN:OGC:DEF:CRS:EPSG::", "URN:OGC:DEF:CRS:EPSG:", "EPSG:"} {
		if strings.HasPrefix(u, prefix) {
			u = strings.TrimPrefix(u, prefix)
			// urn:ogc:def:crs:EPSG:9.9.1:4326 has a version before the code.
			if i := strings.LastIndex(u, ":"); i >= 0 {
				u = u[i+1:]
			}
			break
		}
	}
	n, err := strconv.Atoi(u)
	if err != nil || n <= 0 {
		return 0, fmt.Errorf("%q is not an EPSG code (want e.g. 32631 or EPSG:32631)", s)
	}
	return n, nil
}

// CellEPSG reads the EPSG code in a table cell (a column named epsg, as
// worker split writes it): an integer, an integral float, or text that
// ParseEPSG reads. It returns 0 for an empty cell.
func CellEPSG(v any) (int, error) {
	switch x := v.(type) {
	case nil:
		return 0, nil
	case int64:
		if x > 0 && x <= math.MaxInt32 {
			return int(x), nil
		}
	case int:
		if x > 0 {
			return x, nil
		}
	case int32:
		if x > 0 {
			return int(x), nil
		}
	case float64:
		if x > 0 && x == math.Trunc(x) && x <= math.MaxInt32 {
			return int(x), nil
		}
	case string:
		if strings.TrimSpace(x) == "" {
			return 0, nil
		}
		return ParseEPSG(x)
	case []byte:
		return CellEPSG(string(x))
	}
	return 0, fmt.Errorf("%v is not an EPSG code", v)
}

// InLonLatRange reports whether b lies within longitude -180..180 and
// latitude -90..90.
func InLonLatRange(b orb.Bound) bool {
	return b.Min[0] >= -180 && b.Max[0] <= 180 && b.Min[1] >= -90 && b.Max[1] <= 90
}

// FootprintEPSG decides the CRS of one row's footprint, whose bounding box
// is b, as the dashboard, export --stac and export to GeoJSON read it:
//
//   - table, when not 0: the CRS the table itself names (a GeoParquet
//     column's "crs", a GeoJSON file's "crs" member);
//   - else 4326 when the coordinates lie within longitude/latitude's range
//     (even when the row's epsg cell names a projection, as a grid whose
//     tiles are in longitude/latitude but name their UTM zone does: a
//     projected footprint within 180 m of its projection's origin is no
//     footprint of a job);
//   - else the row's epsg cell (see CellEPSG), as worker split writes it.
//
// Coordinates outside longitude/latitude's range with no CRS named, an
// epsg cell that is no EPSG code, or a table CRS of longitude/latitude
// whose coordinates leave its range, are an error saying so.
func FootprintEPSG(table int, epsgCell any, b orb.Bound) (int, error) {
	lonlat := InLonLatRange(b)
	if table != 0 {
		if !lonlat {
			if c, err := LookupCRS(table); err == nil && strings.HasPrefix(c.Kind, "geographic") {
				return 0, fmt.Errorf("coordinates %v..%v leave longitude/latitude's range although the table names EPSG:%d", b.Min, b.Max, table)
			}
		}
		return table, nil
	}
	if lonlat {
		return WGS84, nil
	}
	n, err := CellEPSG(epsgCell)
	if err != nil {
		return 0, fmt.Errorf("coordinates %v..%v are not longitude/latitude, and the epsg column does not say their CRS: %w", b.Min, b.Max, err)
	}
	if n == 0 {
		return 0, fmt.Errorf("coordinates %v..%v are not longitude/latitude, and neither the table nor an epsg column names their CRS", b.Min, b.Max)
	}
	return n, nil
}

// transformers caches the transformations to longitude/latitude by
// source EPSG code.
var transformers = struct {
	sync.Mutex
	byEPSG map[int]*proj.PJ
}{byEPSG: map[int]*proj.PJ{}}

// toLonLat returns PROJ's transformation from EPSG code from to
// longitude/latitude (WGS 84, longitude first); nil for 4326 itself.
func toLonLat(from int) (*proj.PJ, error) {
	if from == WGS84 {
		return nil, nil
	}
	if err := CheckHorizontal(from); err != nil {
		return nil, err
	}
	transformers.Lock()
	defer transformers.Unlock()
	if pj, ok := transformers.byEPSG[from]; ok {
		return pj, nil
	}
	pj, err := proj.NewCRSToCRS("EPSG:"+strconv.Itoa(from), "EPSG:4326", nil)
	if err == nil {
		pj, err = pj.NormalizeForVisualization()
	}
	if err != nil {
		return nil, fmt.Errorf("no transformation from EPSG:%d to longitude/latitude: %w", from, err)
	}
	transformers.byEPSG[from] = pj
	return pj, nil
}

// ToLonLat returns a copy of g with its positions moved from EPSG code
// from to longitude/latitude (WGS 84, longitude first); g itself when from
// is 4326. Only positions are transformed (edges are not densified: a
// footprint's straight edges stay straight). A position that has no place
// in longitude/latitude is an error.
func ToLonLat(g orb.Geometry, from int) (orb.Geometry, error) {
	pj, err := toLonLat(from)
	if err != nil || pj == nil {
		return g, err
	}
	var bad error
	out := project.Geometry(orb.Clone(g), func(p orb.Point) orb.Point {
		x, y, err := Transform(from, p[0], p[1])
		if err != nil {
			bad = cmp.Or(bad, err)
			return p
		}
		return orb.Point{x, y}
	})
	if bad != nil {
		return nil, bad
	}
	return out, nil
}

// MapPositions returns the GeoJSON geometry raw (any type, collections
// included) with f applied to the x and y of each position; a third and
// fourth coordinate are kept as they are. An error of f is returned as it
// is, naming nothing more.
func MapPositions(raw json.RawMessage, f func(x, y float64) (float64, float64, error)) (json.RawMessage, error) {
	var g any
	if err := json.Unmarshal(raw, &g); err != nil {
		return nil, err
	}
	var walk func(v any) error
	walk = func(v any) error {
		switch x := v.(type) {
		case map[string]any:
			for _, k := range []string{"coordinates", "geometries"} {
				if c, ok := x[k]; ok {
					if err := walk(c); err != nil {
						return err
					}
				}
			}
		case []any:
			if len(x) >= 2 {
				if px, ok := x[0].(float64); ok {
					py, _ := x[1].(float64)
					nx, ny, err := f(px, py)
					if err != nil {
						return err
					}
					x[0], x[1] = nx, ny
					return nil
				}
			}
			for _, e := range x {
				if err := walk(e); err != nil {
					return err
				}
			}
		}
		return nil
	}
	if err := walk(g); err != nil {
		return nil, err
	}
	return json.Marshal(g)
}

// PositionsBound returns the bounding box of the positions of the GeoJSON
// geometry raw (x and y), and false when it has none.
func PositionsBound(raw json.RawMessage) (orb.Bound, bool) {
	b, any := orb.Bound{Min: orb.Point{math.Inf(1), math.Inf(1)}, Max: orb.Point{math.Inf(-1), math.Inf(-1)}}, false
	MapPositions(raw, func(x, y float64) (float64, float64, error) {
		b, any = b.Extend(orb.Point{x, y}), true
		return x, y, nil
	})
	return b, any
}

// Transform moves a position from EPSG code from to longitude/latitude
// (see ToLonLat); x and y unchanged for 4326.
func Transform(from int, x, y float64) (float64, float64, error) {
	pj, err := toLonLat(from)
	if err != nil || pj == nil {
		return x, y, err
	}
	q, err := pj.Forward(proj.NewCoord(x, y, 0, 0))
	if err == nil && (math.IsNaN(q[0]) || math.IsInf(q[0], 0) || math.IsNaN(q[1]) || math.IsInf(q[1], 0)) {
		err = errors.New("no finite longitude/latitude")
	}
	if err != nil {
		return 0, 0, fmt.Errorf("position [%v %v] of EPSG:%d: %w", x, y, from, err)
	}
	return q[0], q[1], nil
}
