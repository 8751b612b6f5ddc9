package split

import (
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"

	"github.com/paulmach/orb"
	"github.com/paulmach/orb/geojson"

	"github.com/openeo-batch/worker/internal/jsonkeys"
)

// Align says where a size-based grid starts.
type Align int

const (
	// AlignArea anchors the grid at the lower-left corner of the area's
	// bounding box in the grid's projection: a box of whole tiles gives
	// whole tiles.
	AlignArea Align = iota
	// AlignPython anchors it where the Python client's split_area does:
	// x at 500000 (the UTM false easting) for the projections it takes for
	// metres (EPSG 32601-32660, 32701-32760 and 3857), else 0; y at 0.
	AlignPython
)

// MaxTiles bounds the cells a split may consider, so a tiny tile size
// fails at once instead of filling memory.
const MaxTiles = 1_000_000

// Grid is a size-based tile grid: square tiles of Size (in the unit of
// the projection: metres for UTM, degrees for 4326) in projection EPSG.
type Grid struct {
	EPSG  int
	Size  float64
	Align Align
}

// Tile is one tile of a split.
type Tile struct {
	// ID is "COL_ROW" for a size-based grid (the cell's indices, from the
	// grid's origin), the feature's id or number for a grid file.
	ID      string
	Polygon orb.Polygon // in the grid's projection
	// Properties are the grid file feature's properties.
	Properties map[string]any
}

// Tiling is the result of a split: the tiles that overlap the area, in
// the grid's projection.
type Tiling struct {
	EPSG  int
	Tiles []Tile
	// Columns are the property names of grid file tiles, in the order they
	// first appear.
	Columns []string
}

// Errors for bad grids.
var (
	ErrSize = errors.New("the tile size must be a positive number")
)

// Split cuts area into the tiles of g, as split_area does: the area is
// reprojected into g's projection (its edges densified, so a
// longitude/latitude box keeps its curved outline), the grid cells that
// cover its bounding box are clipped at the edges of that box, and those
// that do not overlap the area itself (a positive area in common) are
// dropped. Tiles are returned column by column from the west, each column
// from the south, as split_area lists them. Slivers narrower than a
// billionth of the size, left by rounding, are no tiles.
//
// Errors: a size that is not a positive finite number (ErrSize), an EPSG
// code PROJ does not know (ErrUnknownProjection), an area without width,
// a grid of more than MaxTiles cells.
func (g Grid) Split(area Area) (*Tiling, error) {
	if !(g.Size > 0) || math.IsInf(g.Size, 0) {
		return nil, fmt.Errorf("%w, not %v", ErrSize, g.Size)
	}
	if err := area.check(); err != nil {
		return nil, err
	}
	a, err := area.project(g.EPSG)
	if err != nil {
		return nil, err
	}
	b := a.Bound()
	if !(b.Max[0] > b.Min[0]) || !(b.Max[1] > b.Min[1]) {
		return nil, fmt.Errorf("the area has zero width or height in EPSG:%d", g.EPSG)
	}
	var x0, y0 float64
	switch g.Align {
	case AlignArea:
		x0, y0 = b.Min[0], b.Min[1]
	case AlignPython:
		if metric(g.EPSG) {
			x0 = 500_000
		}
	default:
		return nil, fmt.Errorf("unknown grid alignment %d", g.Align)
	}
	imin, imax := cells(b.Min[0], b.Max[0], x0, g.Size)
	jmin, jmax := cells(b.Min[1], b.Max[1], y0, g.Size)
	if n := (imax - imin + 1) * (jmax - jmin + 1); n > MaxTiles || n < 0 || math.IsInf(n, 0) {
		return nil, fmt.Errorf("%.0f cells of %v cover the area: more than %d; choose a larger tile size", n, g.Size, MaxTiles)
	}
	eps := g.Size * 1e-9
	t := &Tiling{EPSG: g.EPSG}
	for i := imin; i <= imax; i++ {
		for j := jmin; j <= jmax; j++ {
			cell := orb.Bound{
				Min: orb.Point{max(x0+i*g.Size, b.Min[0]), max(y0+j*g.Size, b.Min[1])},
				Max: orb.Point{min(x0+(i+1)*g.Size, b.Max[0]), min(y0+(j+1)*g.Size, b.Max[1])},
			}
			if cell.Max[0]-cell.Min[0] <= eps || cell.Max[1]-cell.Min[1] <= eps {
				continue
			}
			poly := cell.ToPolygon()
			c, _ := newConvex(poly) // a rectangle is convex
			if !overlaps(c, a.Polygons) {
				continue
			}
			t.Tiles = append(t.Tiles, Tile{ID: fmt.Sprintf("%.0f_%.0f", i, j), Polygon: poly})
		}
	}
	return t, nil
}

// cells returns the first and last cell index of a grid with origin o and
// size s that cover [lo, hi].
func cells(lo, hi, o, s float64) (float64, float64) {
	return math.Floor((lo - o) / s), math.Ceil((hi-o)/s) - 1
}

// metric reports whether split_area takes EPSG code n for a projection in
// metres with a false easting of 500000 (its _epsg_is_meters).
func metric(n int) bool {
	return 32601 <= n && n <= 32660 || 32701 <= n && n <= 32760 || n == 3857
}

// overlaps reports whether c and the polygons share a positive area
// (more than a billionth of c's), computed near the origin for precision.
func overlaps(c convex, mp orb.MultiPolygon) bool {
	if !ringBound(c).Intersects(mp.Bound()) {
		return false
	}
	o := c[0]
	shift := func(p orb.Point) orb.Point { return orb.Point{p[0] - o[0], p[1] - o[1]} }
	sc := make(convex, len(c))
	for i, p := range c {
		sc[i] = shift(p)
	}
	smp := make(orb.MultiPolygon, len(mp))
	for i, p := range mp {
		smp[i] = make(orb.Polygon, len(p))
		for j, r := range p {
			smp[i][j] = make(orb.Ring, len(r))
			for k, pt := range r {
				smp[i][j][k] = shift(pt)
			}
		}
	}
	return sc.overlap(smp) > 1e-9*math.Abs(signedArea(sc))
}

func ringBound(c convex) orb.Bound {
	b := orb.Bound{Min: c[0], Max: c[0]}
	for _, p := range c[1:] {
		b = b.Extend(p)
	}
	return b
}

// GridFile is a predefined tile grid: polygons with properties, in one CRS.
type GridFile struct {
	EPSG     int
	Features []*geojson.Feature
	keys     []string // property names in first-seen order
}

// ParseGridFile reads a predefined grid from a GeoJSON FeatureCollection
// of polygons, one feature per tile. The coordinates are
// longitude/latitude unless the document's "crs" member, or epsg when not
// zero, says otherwise. A tile must be a convex polygon without holes
// (grid cells are); anything else is an error naming the feature. A file
// that split wrote (see Tiling.Table) is a grid file: its tile_id, epsg,
// west, south, east and north properties are those Table writes again.
func ParseGridFile(b []byte, epsg int) (*GridFile, error) {
	a, err := parseGeoJSON(b, epsg) // checks rings and the crs member
	if err != nil {
		return nil, err
	}
	fc, err := geojson.UnmarshalFeatureCollection(b)
	if err != nil {
		return nil, fmt.Errorf("want a FeatureCollection of tiles: %w", err)
	}
	g := &GridFile{EPSG: a.EPSG, Features: fc.Features}
	var raw struct {
		Features []struct {
			Properties json.RawMessage `json:"properties"`
		} `json:"features"`
	}
	json.Unmarshal(b, &raw)
	for i, f := range fc.Features {
		if _, ok := f.Geometry.(orb.Polygon); !ok {
			return nil, fmt.Errorf("tile %d is a %s: a grid tile is one polygon", i+1, f.Geometry.GeoJSONType())
		}
		if _, err := newConvex(f.Geometry.(orb.Polygon)); err != nil {
			return nil, fmt.Errorf("tile %d: %w", i+1, err)
		}
		if i < len(raw.Features) {
			for _, k := range jsonkeys.Object(raw.Features[i].Properties) {
				if !slices.Contains(g.keys, k) {
					g.keys = append(g.keys, k)
				}
			}
		}
	}
	return g, nil
}

// Split keeps the grid's tiles that overlap area (reprojected into the
// grid's CRS), whole and in the grid file's order.
func (g *GridFile) Split(area Area) (*Tiling, error) {
	if err := area.check(); err != nil {
		return nil, err
	}
	a, err := area.project(g.EPSG)
	if err != nil {
		return nil, err
	}
	t := &Tiling{EPSG: g.EPSG, Columns: g.keys}
	for i, f := range g.Features {
		p := f.Geometry.(orb.Polygon)
		c, err := newConvex(p)
		if err != nil {
			return nil, fmt.Errorf("tile %d: %w", i+1, err)
		}
		if !overlaps(c, a.Polygons) {
			continue
		}
		id := fmt.Sprint(i + 1)
		if f.ID != nil {
			id = fmt.Sprint(f.ID)
		} else if v, ok := f.Properties[ColTileID]; ok && v != nil {
			id = fmt.Sprint(tableValue(v)) // a tile_id property, as split writes it
		}
		t.Tiles = append(t.Tiles, Tile{ID: id, Polygon: p, Properties: f.Properties})
	}
	return t, nil
}

// Columns written by Table besides a grid file's properties.
const (
	ColTileID   = "tile_id"
	ColEPSG     = "epsg"
	ColGeometry = "geometry"
)

// Table returns the tiling as a table: tile_id, the grid file's
// properties, epsg (the projection of the geometry), west, south, east
// and north (the tile's bounds in that projection) and geometry (WKT in
// that projection).
//
// A grid property named like one of these (as in a file split wrote) is
// left out when every tile's value is the one Table writes (the tile's
// id, the grid's EPSG code, its bounds to a billionth of their size), so
// a split's output serves as a grid; else it is kept, as the column
// grid_<name> (an error if the grid has a property of that name too).
func (t *Tiling) Table() (columns []string, rows [][]any, err error) {
	own := []string{ColTileID, ColEPSG, "west", "south", "east", "north", ColGeometry}
	var props, names []string // the grid's properties kept, and their columns
	for _, k := range t.Columns {
		name := k
		if slices.Contains(own, k) {
			if t.redundant(k) {
				continue
			}
			name = "grid_" + k
			if slices.Contains(t.Columns, name) {
				return nil, nil, fmt.Errorf("the grid's property %q has the name of a column split writes, and %q is taken too", k, name)
			}
		}
		props, names = append(props, k), append(names, name)
	}
	columns = append(append([]string{ColTileID}, names...), own[1:]...)
	for _, tile := range t.Tiles {
		r := []any{tile.ID}
		for _, k := range props {
			r = append(r, tableValue(tile.Properties[k]))
		}
		b := tile.Polygon.Bound()
		r = append(r, int64(t.EPSG), b.Min[0], b.Min[1], b.Max[0], b.Max[1], polygonWKT(tile.Polygon))
		rows = append(rows, r)
	}
	return columns, rows, nil
}

// redundant reports whether every tile's grid property k, one of the
// columns Table writes, holds the value Table writes there anyway (or
// none).
func (t *Tiling) redundant(k string) bool {
	for _, tile := range t.Tiles {
		v, ok := tile.Properties[k]
		if !ok || v == nil {
			continue
		}
		f, isNum := v.(float64)
		b := tile.Polygon.Bound()
		near := func(want float64) bool {
			return isNum && math.Abs(f-want) <= 1e-9*max(b.Max[0]-b.Min[0], b.Max[1]-b.Min[1])
		}
		var same bool
		switch k {
		case ColTileID:
			same = fmt.Sprint(tableValue(v)) == tile.ID
		case ColEPSG:
			same = isNum && f == float64(t.EPSG)
		case "west":
			same = near(b.Min[0])
		case "south":
			same = near(b.Min[1])
		case "east":
			same = near(b.Max[0])
		case "north":
			same = near(b.Max[1])
		}
		if !same {
			return false
		}
	}
	return true
}

// polygonWKT writes a polygon as WKT the way shapely does, with plain
// decimals (never an exponent: 5600000, not 5.6e+06) that read back as the
// same float64.
func polygonWKT(p orb.Polygon) string {
	var b strings.Builder
	b.WriteString("POLYGON (")
	for i, r := range p {
		if i > 0 {
			b.WriteString(", ")
		}
		b.WriteByte('(')
		for j, pt := range r {
			if j > 0 {
				b.WriteString(", ")
			}
			b.WriteString(strconv.FormatFloat(pt[0], 'f', -1, 64))
			b.WriteByte(' ')
			b.WriteString(strconv.FormatFloat(pt[1], 'f', -1, 64))
		}
		b.WriteByte(')')
	}
	b.WriteByte(')')
	return b.String()
}

// tableValue turns a JSON property into a table value: whole numbers
// int64, other numbers float64, objects and arrays their JSON text.
func tableValue(v any) any {
	switch x := v.(type) {
	case float64:
		if x == math.Trunc(x) && math.Abs(x) < 1<<53 {
			return int64(x)
		}
		return x
	case map[string]any, []any:
		b, _ := json.Marshal(x)
		return string(b)
	}
	return v
}
