// Package split cuts an area of interest into a table of tiles, one job
// per tile: the Go counterpart of the openEO Python client's split_area
// (openeo.extra.job_management), with its rules: a grid of square tiles of
// a size given in the unit of a projection (an EPSG code), tiles clipped at
// the edges of the area's bounding box, tiles that do not overlap the area
// dropped, the tile geometries in the grid's projection. A predefined grid
// (a file of tile polygons) can take the place of the size-based one.
//
// Reprojection goes through PROJ (github.com/twpayne/go-proj, cgo; the
// Debian package libproj-dev), the reference implementation, so any EPSG
// code PROJ knows works as a projection.
package split

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"

	"github.com/paulmach/orb"
	"github.com/paulmach/orb/geojson"

	"github.com/openeo-batch/worker/internal/crs"
)

// WGS84 is the EPSG code of longitude/latitude on WGS 84, the CRS of
// GeoJSON (RFC 7946) and of a bounding box without a CRS.
const WGS84 = crs.WGS84

// Area is an area of interest: polygons in one CRS.
type Area struct {
	Polygons orb.MultiPolygon
	EPSG     int // the CRS of the coordinates
}

// Bound is the bounding box of the area.
func (a Area) Bound() orb.Bound { return a.Polygons.Bound() }

// ParseEPSG reads a CRS as an EPSG code: "32631", "EPSG:32631",
// "epsg:32631", "urn:ogc:def:crs:EPSG::32631", or "OGC:CRS84" and its URN
// (longitude/latitude, 4326). It does not check that PROJ knows the code.
func ParseEPSG(s string) (int, error) { return crs.ParseEPSG(s) }

// ParseBBox reads a bounding box "west,south,east,north[,crs]", the order
// of openEO's spatial_extent; the CRS (see ParseEPSG) defaults to
// longitude/latitude (4326). It refuses a box of zero width or height,
// west > east or south > north (a box across the antimeridian is not
// supported), numbers that are not finite, and a longitude/latitude box
// outside -180..180, -90..90.
func ParseBBox(s string) (Area, error) {
	parts := strings.Split(s, ",")
	if len(parts) != 4 && len(parts) != 5 {
		return Area{}, fmt.Errorf("bounding box %q: want west,south,east,north[,crs]", s)
	}
	var v [4]float64
	names := [4]string{"west", "south", "east", "north"}
	for i := range v {
		f, err := strconv.ParseFloat(strings.TrimSpace(parts[i]), 64)
		if err != nil || math.IsNaN(f) || math.IsInf(f, 0) {
			return Area{}, fmt.Errorf("bounding box %q: %s %q is not a finite number", s, names[i], strings.TrimSpace(parts[i]))
		}
		v[i] = f
	}
	epsg := WGS84
	if len(parts) == 5 {
		var err error
		if epsg, err = ParseEPSG(parts[4]); err != nil {
			return Area{}, fmt.Errorf("bounding box %q: %w", s, err)
		}
	}
	w, so, e, n := v[0], v[1], v[2], v[3]
	switch {
	case w == e:
		return Area{}, fmt.Errorf("bounding box %q has zero width (west = east = %v)", s, w)
	case so == n:
		return Area{}, fmt.Errorf("bounding box %q has zero height (south = north = %v)", s, so)
	case w > e:
		return Area{}, fmt.Errorf("bounding box %q: west %v is east of east %v (a box across the antimeridian is not supported: split it in two)", s, w, e)
	case so > n:
		return Area{}, fmt.Errorf("bounding box %q: south %v is north of north %v", s, so, n)
	}
	b := orb.Bound{Min: orb.Point{w, so}, Max: orb.Point{e, n}}
	a := Area{Polygons: orb.MultiPolygon{b.ToPolygon()}, EPSG: epsg}
	if err := a.check(); err != nil {
		return Area{}, fmt.Errorf("bounding box %q: %w", s, err)
	}
	return a, nil
}

// ParseGeoJSON reads an area from a GeoJSON document: a FeatureCollection,
// a Feature or a geometry, whose Polygons and MultiPolygons make the area
// (any other geometry type is an error naming the feature). Coordinates are
// longitude/latitude (RFC 7946), unless the document has the older "crs"
// member naming another CRS.
func ParseGeoJSON(b []byte) (Area, error) { return parseGeoJSON(b, 0) }

// parseGeoJSON is ParseGeoJSON with the coordinates in EPSG code epsg
// when it is not zero, whatever the document's "crs" member says.
func parseGeoJSON(b []byte, epsg int) (Area, error) {
	var head struct {
		Type string `json:"type"`
		CRS  *struct {
			Properties struct {
				Name string `json:"name"`
			} `json:"properties"`
		} `json:"crs"`
	}
	if err := json.Unmarshal(b, &head); err != nil {
		return Area{}, fmt.Errorf("not GeoJSON: %w", err)
	}
	a := Area{EPSG: WGS84}
	if head.CRS != nil {
		n, err := ParseEPSG(head.CRS.Properties.Name)
		if err != nil {
			return Area{}, fmt.Errorf("crs: %w", err)
		}
		a.EPSG = n
	}
	if epsg != 0 {
		a.EPSG = epsg
	}
	var geoms []orb.Geometry
	var where []string
	switch head.Type {
	case "FeatureCollection":
		fc, err := geojson.UnmarshalFeatureCollection(b)
		if err != nil {
			return Area{}, err
		}
		for i, f := range fc.Features {
			geoms = append(geoms, f.Geometry)
			where = append(where, fmt.Sprintf("feature %d", i+1))
		}
	case "Feature":
		f, err := geojson.UnmarshalFeature(b)
		if err != nil {
			return Area{}, err
		}
		geoms, where = []orb.Geometry{f.Geometry}, []string{"the feature"}
	case "":
		return Area{}, errors.New(`not GeoJSON: no "type"`)
	default:
		g, err := geojson.UnmarshalGeometry(b)
		if err != nil {
			return Area{}, err
		}
		geoms, where = []orb.Geometry{g.Geometry()}, []string{"the geometry"}
	}
	for i, g := range geoms {
		if err := a.add(g, where[i]); err != nil {
			return Area{}, err
		}
	}
	if len(a.Polygons) == 0 {
		return Area{}, errors.New("no polygon: the area needs at least one Polygon or MultiPolygon")
	}
	return a, a.check()
}

// add appends the polygons of g.
func (a *Area) add(g orb.Geometry, where string) error {
	switch g := g.(type) {
	case orb.Polygon:
		a.Polygons = append(a.Polygons, g)
	case orb.MultiPolygon:
		a.Polygons = append(a.Polygons, g...)
	case orb.Collection:
		for _, m := range g {
			if err := a.add(m, where); err != nil {
				return err
			}
		}
	case nil:
		return fmt.Errorf("%s has no geometry", where)
	default:
		return fmt.Errorf("%s is a %s: an area is made of polygons", where, g.GeoJSONType())
	}
	return nil
}

// check refuses polygons that cannot bound an area: rings with fewer than
// four positions or not closed, coordinates that are not finite, rings of
// longitude/latitude that cross the antimeridian, and an area whose
// bounding box has no width or height.
func (a Area) check() error {
	for i, p := range a.Polygons {
		if len(p) == 0 {
			return fmt.Errorf("polygon %d has no ring", i+1)
		}
		for j, r := range p {
			if len(r) < 4 {
				return fmt.Errorf("polygon %d, ring %d: %d positions, a ring needs at least 4", i+1, j+1, len(r))
			}
			if r[0] != r[len(r)-1] {
				return fmt.Errorf("polygon %d, ring %d is not closed: it ends at %v, not at %v", i+1, j+1, r[len(r)-1], r[0])
			}
			for _, pt := range r {
				if math.IsNaN(pt[0]) || math.IsInf(pt[0], 0) || math.IsNaN(pt[1]) || math.IsInf(pt[1], 0) {
					return fmt.Errorf("polygon %d, ring %d: position %v is not finite", i+1, j+1, pt)
				}
			}
		}
	}
	b := a.Bound()
	if b.Min[0] == b.Max[0] || b.Min[1] == b.Max[1] {
		return fmt.Errorf("the area has zero width or height (bounding box %v..%v)", b.Min, b.Max)
	}
	if a.EPSG == WGS84 && (b.Min[0] < -180 || b.Max[0] > 180 || b.Min[1] < -90 || b.Max[1] > 90) {
		return fmt.Errorf("the area (bounding box %v..%v) leaves longitude -180..180, latitude -90..90: are its coordinates in another CRS? Name it", b.Min, b.Max)
	}
	if !a.geographic() {
		return nil
	}
	for i, p := range a.Polygons {
		for j, r := range p {
			for k := 1; k < len(r); k++ {
				// An edge longer than half the world in longitude is one
				// that crosses the antimeridian, as RFC 7946 (3.1.9) has
				// it; taken as written it would go round the world.
				if math.Abs(r[k][0]-r[k-1][0]) > 180 {
					return fmt.Errorf("polygon %d, ring %d crosses the antimeridian (from %v to %v), which is not supported: split it in two at longitude 180", i+1, j+1, r[k-1], r[k])
				}
			}
		}
	}
	return nil
}

// geographic reports whether the area's coordinates are longitude and
// latitude (a geographic CRS, 4326 or another datum's).
func (a Area) geographic() bool {
	if a.EPSG == WGS84 {
		return true
	}
	c, err := crs.LookupCRS(a.EPSG)
	return err == nil && strings.HasPrefix(c.Kind, "geographic")
}

// ParseArea reads an area given on the command line: a bounding box
// (see ParseBBox) when s has the form of one, else GeoJSON text.
func ParseArea(s string) (Area, error) {
	t := bytes.TrimSpace([]byte(s))
	if len(t) > 0 && (t[0] == '{') {
		return ParseGeoJSON(t)
	}
	return ParseBBox(s)
}
