// Package wktgeo reads WKT geometries (OGC Simple Features, as shapely,
// GeoPandas, DuckDB and PostGIS write them; "Z", "M" and "ZM" variants
// too) into GeoJSON geometry objects. It is the one judge of a geometry
// cell: what init stores (tableconv.CheckGeometries), what export writes
// and what a run sends (udpjob) all go through Parse, so a cell one of
// them takes is taken by all. It is strict where a lenient reader would
// change a value without a word: text after the geometry, EWKT's
// "SRID=n;" prefix, coordinates that are NaN or infinite, EMPTY
// geometries, open rings and rings or lines too short are errors.
package wktgeo

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
)

// kinds maps the WKT geometry keywords to their GeoJSON type names.
var kinds = map[string]string{
	"POINT":              "Point",
	"LINESTRING":         "LineString",
	"POLYGON":            "Polygon",
	"MULTIPOINT":         "MultiPoint",
	"MULTILINESTRING":    "MultiLineString",
	"MULTIPOLYGON":       "MultiPolygon",
	"GEOMETRYCOLLECTION": "GeometryCollection",
}

// IsType reports whether name is a GeoJSON geometry type Parse gives.
func IsType(name string) bool {
	for _, v := range kinds {
		if v == name {
			return true
		}
	}
	return false
}

// maxDepth bounds nested geometry collections.
const maxDepth = 32

// LooksLike reports whether s starts with a WKT geometry keyword (or an
// EWKT "SRID=" prefix), so that a text cell is taken for a geometry only
// when it claims to be one.
func LooksLike(s string) bool {
	s = strings.TrimSpace(s)
	if hasSRID(s) {
		return true
	}
	i := strings.IndexAny(s, " (")
	if i < 0 {
		i = len(s)
	}
	_, ok := kinds[strings.ToUpper(s[:i])]
	return ok
}

func hasSRID(s string) bool { return len(s) >= 5 && strings.EqualFold(s[:5], "SRID=") }

// Parse turns a WKT geometry into a GeoJSON Geometry object: {"type": ...,
// "coordinates": ...}, or "geometries" for a collection. Each coordinate
// is num(x), or the float64 x when num is nil; a Z coordinate is kept, an
// M coordinate is dropped (GeoJSON has no measures). Keywords are read in
// any case; space around tokens is free. Errors say what is wrong and
// where (a byte offset): malformed text, anything after the geometry
// (such as a second geometry), an EWKT "SRID=n;" prefix (a geometry cell
// keeps no CRS of its own), a coordinate that is not a finite number (NaN,
// inf, 1e999), an EMPTY geometry, a line of fewer than 2 positions, a
// polygon ring of fewer than 4 or that does not end where it starts.
func Parse(s string, num func(float64) any) (map[string]any, error) {
	if num == nil {
		num = func(f float64) any { return f }
	}
	if t := strings.TrimSpace(s); hasSRID(t) {
		srid, _, _ := strings.Cut(t, ";")
		return nil, fmt.Errorf("EWKT %q prefix: a geometry cell keeps no CRS of its own; write plain WKT and put the EPSG code in a column (such as epsg)", srid)
	}
	p := &parser{s: s, num: num}
	g, err := p.geometry(0)
	if err != nil {
		return nil, err
	}
	p.space()
	if p.i < len(p.s) {
		if p.s[p.i] == ',' {
			return nil, fmt.Errorf("several geometries (%q at offset %d): one cell holds one geometry, or a GEOMETRYCOLLECTION", p.rest(), p.i)
		}
		return nil, fmt.Errorf("unexpected %q at offset %d, after the geometry", p.rest(), p.i)
	}
	return g, nil
}

// Check reports whether s is a WKT geometry Parse takes.
func Check(s string) error {
	_, err := Parse(s, nil)
	return err
}

type parser struct {
	s   string
	i   int
	num func(float64) any
}

func (p *parser) space() {
	for p.i < len(p.s) && strings.ContainsRune(" \t\r\n", rune(p.s[p.i])) {
		p.i++
	}
}

func (p *parser) rest() string {
	r := p.s[p.i:]
	if len(r) > 20 {
		r = r[:20] + "..."
	}
	return r
}

func (p *parser) word() string {
	p.space()
	j := p.i
	for p.i < len(p.s) && (p.s[p.i] >= 'A' && p.s[p.i] <= 'Z' || p.s[p.i] >= 'a' && p.s[p.i] <= 'z') {
		p.i++
	}
	return strings.ToUpper(p.s[j:p.i])
}

func (p *parser) expect(c byte) error {
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

func (p *parser) peek(c byte) bool {
	p.space()
	return p.i < len(p.s) && p.s[p.i] == c
}

func (p *parser) geometry(depth int) (map[string]any, error) {
	if depth > maxDepth {
		return nil, fmt.Errorf("geometry collections nested more than %d deep", maxDepth)
	}
	kw := p.word()
	kind, ok := kinds[kw]
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
		return nil, fmt.Errorf("%s EMPTY: an empty geometry (leave the cell empty for none)", kw)
	default:
		return nil, fmt.Errorf("unexpected %q after %s", dims, kw)
	}
	if w := p.word(); w == "EMPTY" {
		return nil, fmt.Errorf("%s EMPTY: an empty geometry (leave the cell empty for none)", kw)
	} else if w != "" {
		return nil, fmt.Errorf("unexpected %q after %s", w, kw)
	}
	if kind == "GeometryCollection" {
		if err := p.expect('('); err != nil {
			return nil, err
		}
		var geoms []any
		for {
			g, err := p.geometry(depth + 1)
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
	levels := map[string]int{"Point": 0, "LineString": 1, "MultiPoint": 1, "Polygon": 2, "MultiLineString": 2, "MultiPolygon": 3}[kind]
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
		coords, err = p.list(levels, hasM, kind == "MultiPoint")
	}
	if err != nil {
		return nil, err
	}
	switch kind {
	case "LineString":
		err = checkLines([]any{coords})
	case "MultiLineString":
		err = checkLines(coords.([]any))
	case "Polygon":
		err = checkRings([]any{coords})
	case "MultiPolygon":
		err = checkRings(coords.([]any))
	}
	if err != nil {
		return nil, err
	}
	return map[string]any{"type": kind, "coordinates": coords}, nil
}

// list parses a parenthesised list of depth levels around positions.
// MultiPoint positions may stand with or without their own parentheses.
func (p *parser) list(depth int, hasM, multiPoint bool) ([]any, error) {
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

// position parses 2 to 4 finite numbers; the fourth, or the third with
// hasM and only three, is a measure and is dropped. It keeps the numbers
// as float64 beside the converted ones, to compare ring ends.
func (p *parser) position(hasM bool) ([]any, error) {
	var nums []any
	for {
		p.space()
		j := p.i
		for p.i < len(p.s) && strings.IndexByte("+-.0123456789eE", p.s[p.i]) >= 0 {
			p.i++
		}
		if j == p.i {
			if w := p.word(); w != "" {
				switch w {
				case "NAN", "INF", "INFINITY":
					return nil, fmt.Errorf("coordinate %s at offset %d is not a finite number", p.s[j:p.i], j)
				}
				p.i = j
			}
			break
		}
		lit := p.s[j:p.i]
		f, err := strconv.ParseFloat(lit, 64)
		switch {
		case errors.Is(err, strconv.ErrRange):
			return nil, fmt.Errorf("coordinate %s at offset %d is beyond the range of a float64", lit, j)
		case err != nil:
			return nil, fmt.Errorf("bad number %q at offset %d", lit, j)
		case f == 0 && strings.ContainsAny(strings.FieldsFunc(lit, func(r rune) bool { return r == 'e' || r == 'E' })[0], "123456789"):
			return nil, fmt.Errorf("coordinate %s at offset %d is too small for a float64: it would become 0", lit, j)
		}
		nums = append(nums, f)
	}
	switch {
	case len(nums) < 2:
		return nil, fmt.Errorf("a position needs at least 2 numbers at offset %d (%q)", p.i, p.rest())
	case len(nums) > 4:
		return nil, fmt.Errorf("a position has %d numbers, at most 4", len(nums))
	case len(nums) == 4, len(nums) == 3 && hasM:
		nums = nums[:len(nums)-1]
	}
	out := make([]any, len(nums))
	for i, n := range nums {
		out[i] = p.num(n.(float64))
	}
	return out, nil
}

// checkLines checks that every line has at least 2 positions, as GeoJSON
// requires (RFC 7946, section 3.1.4).
func checkLines(lines []any) error {
	for _, l := range lines {
		if n := len(l.([]any)); n < 2 {
			return fmt.Errorf("a line needs at least 2 positions, has %d", n)
		}
	}
	return nil
}

// checkRings checks that every ring of the polygons has at least 4
// positions and is closed, as GeoJSON requires (RFC 7946, section
// 3.1.6).
func checkRings(polys []any) error {
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
