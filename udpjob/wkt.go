package udpjob

import (
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
)

// wktKinds maps the WKT geometry keywords to their GeoJSON type names.
var wktKinds = map[string]string{
	"POINT":              "Point",
	"LINESTRING":         "LineString",
	"POLYGON":            "Polygon",
	"MULTIPOINT":         "MultiPoint",
	"MULTILINESTRING":    "MultiLineString",
	"MULTIPOLYGON":       "MultiPolygon",
	"GEOMETRYCOLLECTION": "GeometryCollection",
}

// looksLikeWKT reports whether s starts with a WKT geometry keyword, so
// that a text cell is taken for a geometry only when it claims to be one.
func looksLikeWKT(s string) bool {
	s = strings.TrimSpace(s)
	i := strings.IndexAny(s, " (")
	if i < 0 {
		i = len(s)
	}
	_, ok := wktKinds[strings.ToUpper(s[:i])]
	return ok
}

// WKTToGeoJSON turns a WKT geometry (as shapely, GeoPandas, DuckDB and
// PostGIS write it; "Z", "M" and "ZM" variants too) into a GeoJSON
// Geometry object: {"type": ..., "coordinates": ...}, or "geometries" for a
// collection. Coordinates are decimal literals (json.Number, "51.0" for
// 51) as the Python client's shapely mapping sends them; a Z coordinate is
// kept, an M coordinate is dropped (GeoJSON has no measures). EMPTY
// geometries and malformed text are errors.
func WKTToGeoJSON(s string) (map[string]any, error) {
	p := &wktParser{s: s}
	g, err := p.geometry()
	if err != nil {
		return nil, fmt.Errorf("not WKT: %w", err)
	}
	p.space()
	if p.i < len(p.s) {
		return nil, fmt.Errorf("not WKT: unexpected %q at offset %d", p.rest(), p.i)
	}
	return g, nil
}

type wktParser struct {
	s string
	i int
}

func (p *wktParser) space() {
	for p.i < len(p.s) && strings.ContainsRune(" \t\r\n", rune(p.s[p.i])) {
		p.i++
	}
}

func (p *wktParser) rest() string {
	r := p.s[p.i:]
	if len(r) > 20 {
		r = r[:20] + "..."
	}
	return r
}

func (p *wktParser) word() string {
	p.space()
	j := p.i
	for p.i < len(p.s) && (p.s[p.i] >= 'A' && p.s[p.i] <= 'Z' || p.s[p.i] >= 'a' && p.s[p.i] <= 'z') {
		p.i++
	}
	return strings.ToUpper(p.s[j:p.i])
}

func (p *wktParser) expect(c byte) error {
	p.space()
	if p.i >= len(p.s) || p.s[p.i] != c {
		if p.i >= len(p.s) {
			return fmt.Errorf("want %q, got the end", c)
		}
		return fmt.Errorf("want %q at offset %d, got %q", c, p.i, p.rest())
	}
	p.i++
	return nil
}

func (p *wktParser) peek(c byte) bool {
	p.space()
	return p.i < len(p.s) && p.s[p.i] == c
}

func (p *wktParser) geometry() (map[string]any, error) {
	kw := p.word()
	kind, ok := wktKinds[kw]
	if !ok {
		return nil, fmt.Errorf("unknown geometry type %q", kw)
	}
	// Dimension: Z, M, ZM (or none, the number of values tells).
	dims := p.word()
	hasM := false
	switch dims {
	case "", "Z":
	case "M", "ZM":
		hasM = true
	case "EMPTY":
		return nil, fmt.Errorf("%s EMPTY: an empty geometry", kw)
	default:
		return nil, fmt.Errorf("unexpected %q after %s", dims, kw)
	}
	if w := p.word(); w == "EMPTY" {
		return nil, fmt.Errorf("%s EMPTY: an empty geometry", kw)
	} else if w != "" {
		return nil, fmt.Errorf("unexpected %q after %s", w, kw)
	}
	if kind == "GeometryCollection" {
		if err := p.expect('('); err != nil {
			return nil, err
		}
		var geoms []any
		for {
			g, err := p.geometry()
			if err != nil {
				return nil, err
			}
			geoms = append(geoms, g)
			if !p.peek(',') {
				break
			}
			p.i++
		}
		if err := p.expect(')'); err != nil {
			return nil, err
		}
		return map[string]any{"type": kind, "geometries": geoms}, nil
	}
	// Nesting depth of the coordinates: Point 0, LineString and
	// MultiPoint 1, Polygon and MultiLineString 2, MultiPolygon 3.
	depth := map[string]int{"Point": 0, "LineString": 1, "MultiPoint": 1, "Polygon": 2, "MultiLineString": 2, "MultiPolygon": 3}[kind]
	var coords any
	var err error
	if kind == "Point" {
		if err = p.expect('('); err != nil {
			return nil, err
		}
		coords, err = p.position(hasM)
		if err == nil {
			err = p.expect(')')
		}
	} else {
		coords, err = p.list(depth, hasM, kind == "MultiPoint")
	}
	if err != nil {
		return nil, err
	}
	if kind == "Polygon" || kind == "MultiPolygon" {
		if err := checkRings(coords, kind == "MultiPolygon"); err != nil {
			return nil, err
		}
	}
	return map[string]any{"type": kind, "coordinates": coords}, nil
}

// list parses a parenthesised list of depth levels around positions.
// MultiPoint positions may stand with or without their own parentheses.
func (p *wktParser) list(depth int, hasM, multiPoint bool) ([]any, error) {
	if err := p.expect('('); err != nil {
		return nil, err
	}
	var out []any
	for {
		var item any
		var err error
		switch {
		case depth > 1:
			item, err = p.list(depth-1, hasM, false)
		case multiPoint && p.peek('('):
			p.i++
			item, err = p.position(hasM)
			if err == nil {
				err = p.expect(')')
			}
		default:
			item, err = p.position(hasM)
		}
		if err != nil {
			return nil, err
		}
		out = append(out, item)
		if !p.peek(',') {
			break
		}
		p.i++
	}
	if err := p.expect(')'); err != nil {
		return nil, err
	}
	return out, nil
}

// position parses 2 to 4 numbers; the fourth, or the third with hasM and
// only three, is a measure and is dropped.
func (p *wktParser) position(hasM bool) ([]any, error) {
	var nums []any
	for {
		p.space()
		j := p.i
		for p.i < len(p.s) && strings.IndexByte("+-.0123456789eE", p.s[p.i]) >= 0 {
			p.i++
		}
		if j == p.i {
			break
		}
		f, err := strconv.ParseFloat(p.s[j:p.i], 64)
		if err != nil {
			return nil, fmt.Errorf("bad number %q", p.s[j:p.i])
		}
		nums = append(nums, json.Number(pyFloat(f)))
	}
	switch {
	case len(nums) < 2:
		return nil, fmt.Errorf("a position needs at least 2 numbers at offset %d (%q)", p.i, p.rest())
	case len(nums) > 4:
		return nil, fmt.Errorf("a position has %d numbers, at most 4", len(nums))
	case len(nums) == 4, len(nums) == 3 && hasM:
		nums = nums[:len(nums)-1]
	}
	return nums, nil
}

// checkRings checks that every ring of a polygon has 4 positions and is
// closed, as GeoJSON requires.
func checkRings(coords any, multi bool) error {
	polys := []any{coords}
	if multi {
		polys = coords.([]any)
	}
	for _, poly := range polys {
		for _, r := range poly.([]any) {
			ring := r.([]any)
			if len(ring) < 4 {
				return fmt.Errorf("a polygon ring needs at least 4 positions, has %d", len(ring))
			}
			first, last := ring[0].([]any), ring[len(ring)-1].([]any)
			if len(first) != len(last) {
				return fmt.Errorf("a polygon ring is not closed")
			}
			for i := range first {
				if first[i] != last[i] {
					return fmt.Errorf("a polygon ring is not closed: it starts at %v and ends at %v", first, last)
				}
			}
		}
	}
	return nil
}
