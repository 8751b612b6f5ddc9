package split

import (
	"fmt"
	"math"
	"strconv"

	"github.com/paulmach/orb"
	"github.com/twpayne/go-proj/v11"

	"github.com/openeo-batch/worker/internal/crs"
)

// ErrUnknownProjection is matched (errors.Is) when PROJ does not know an
// EPSG code.
var ErrUnknownProjection = crs.ErrUnknownProjection

// ErrNotHorizontal is matched (errors.Is) when an EPSG code names a CRS
// that is not 2D horizontal (vertical, geocentric, compound, 3D,
// engineering ...): no grid of tiles lies in it.
var ErrNotHorizontal = crs.ErrNotHorizontal

// CheckEPSG returns an error matching ErrUnknownProjection when PROJ does
// not know EPSG code n as a coordinate reference system, and one matching
// ErrNotHorizontal when it is not a 2D horizontal one (see
// crs.CheckHorizontal).
func CheckEPSG(n int) error { return crs.CheckHorizontal(n) }

// transformer turns coordinates from one EPSG CRS into another, x east
// and y north on both sides (longitude first for geographic CRSs).
type transformer struct {
	pj       *proj.PJ
	identity bool
}

func newTransformer(from, to int) (*transformer, error) {
	for _, n := range []int{from, to} {
		if err := CheckEPSG(n); err != nil {
			return nil, err
		}
	}
	if from == to {
		return &transformer{identity: true}, nil
	}
	pj, err := proj.NewCRSToCRS("EPSG:"+strconv.Itoa(from), "EPSG:"+strconv.Itoa(to), nil)
	if err != nil {
		return nil, fmt.Errorf("no transformation from EPSG:%d to EPSG:%d: %w", from, to, err)
	}
	if pj, err = pj.NormalizeForVisualization(); err != nil {
		return nil, err
	}
	return &transformer{pj: pj}, nil
}

// ring transforms a ring, first adding points along each edge (densify
// per edge) so that straight edges in one CRS keep their curved course in
// the other.
func (t *transformer) ring(r orb.Ring, densify int) (orb.Ring, error) {
	if t.identity {
		return r, nil
	}
	coords := make([]proj.Coord, 0, len(r)*densify)
	for i, p := range r {
		if i == len(r)-1 {
			coords = append(coords, proj.NewCoord(p[0], p[1], 0, 0))
			break
		}
		q := r[i+1]
		for k := range densify {
			f := float64(k) / float64(densify)
			coords = append(coords, proj.NewCoord(p[0]+f*(q[0]-p[0]), p[1]+f*(q[1]-p[1]), 0, 0))
		}
	}
	if err := t.pj.ForwardArray(coords); err != nil {
		return nil, fmt.Errorf("reproject: %w", err)
	}
	out := make(orb.Ring, len(coords))
	for i, c := range coords {
		if math.IsInf(c[0], 0) || math.IsInf(c[1], 0) || math.IsNaN(c[0]) || math.IsNaN(c[1]) {
			return nil, fmt.Errorf("reproject: a position of the area has no place in the target projection (%v)", r[min(i/densify, len(r)-1)])
		}
		out[i] = orb.Point{c[0], c[1]}
	}
	return out, nil
}

// densifyEdges is the number of pieces each edge of an area is cut into
// before reprojection.
const densifyEdges = 64

// project returns the area in the CRS to.
func (a Area) project(to int) (Area, error) {
	t, err := newTransformer(a.EPSG, to)
	if err != nil {
		return Area{}, err
	}
	out := Area{EPSG: to}
	for _, p := range a.Polygons {
		var q orb.Polygon
		for _, r := range p {
			pr, err := t.ring(r, densifyEdges)
			if err != nil {
				return Area{}, err
			}
			q = append(q, pr)
		}
		out.Polygons = append(out.Polygons, q)
	}
	return out, nil
}

// UTMZone returns the EPSG code of the WGS 84 UTM zone (326zz north of
// the equator, 327zz south) that holds the centre of the area's bounding
// box in longitude/latitude: the usual projection to tile an area in
// metres. Norway's and Svalbard's exceptions to the zone grid are not
// applied.
func UTMZone(area Area) (int, error) {
	ll, err := area.project(WGS84)
	if err != nil {
		return 0, err
	}
	c := ll.Bound().Center()
	if c[0] < -180 || c[0] > 180 || c[1] < -80 || c[1] > 84 {
		return 0, fmt.Errorf("the area's centre %v is outside the UTM zones (longitude -180..180, latitude -80..84)", c)
	}
	zone := int(math.Floor((c[0]+180)/6)) + 1
	if zone > 60 {
		zone = 60
	}
	if c[1] >= 0 {
		return 32600 + zone, nil
	}
	return 32700 + zone, nil
}
