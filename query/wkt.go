package query

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"
)

// wkbToWKT writes WKB (OGC simple features: ISO WKB, with Z, M or ZM
// types 1001-3007, or EWKB flags, as PostGIS writes it; either byte order)
// as WKT the way DuckDB's ST_AsText writes it: "POINT (1 2)",
// "POLYGON Z ((0 0 1, ...))", "MULTIPOINT (1 2, 3 4)", "POINT EMPTY" for a
// point of NaN coordinates, numbers in their shortest form, exponents
// outside 1e-4 ... 1e16. It reads as it writes, so a count in corrupt
// input allocates nothing: the input runs out first, and that is an error.
//
// (DuckDB's database/sql driver hands GEOMETRY values over as WKB, and
// github.com/twpayne/go-geom, which decodes WKB, sizes its slices by the
// counts in the input, bounded only by a package-wide variable.)
func wkbToWKT(b []byte) (string, error) {
	r := wkbReader{b: b}
	var w strings.Builder
	if err := r.geometry(&w, 0, true); err != nil {
		return "", err
	}
	if len(r.b) != 0 {
		return "", fmt.Errorf("WKB: %d bytes after the geometry", len(r.b))
	}
	return w.String(), nil
}

var errShortWKB = errors.New("WKB: the input ends inside the geometry")

type wkbReader struct {
	b     []byte
	order binary.ByteOrder
}

var wkbTypes = [...]string{1: "POINT", "LINESTRING", "POLYGON", "MULTIPOINT", "MULTILINESTRING", "MULTIPOLYGON", "GEOMETRYCOLLECTION"}

// maxWKBDepth bounds nested geometry collections.
const maxWKBDepth = 64

func (r *wkbReader) uint32() (uint32, error) {
	if len(r.b) < 4 {
		return 0, errShortWKB
	}
	v := r.order.Uint32(r.b)
	r.b = r.b[4:]
	return v, nil
}

// header reads a geometry's byte order and type; it returns the type
// (1 to 7) and the number of ordinates of a point (2 to 4) with their tag.
func (r *wkbReader) header() (kind, dims int, tag string, err error) {
	if len(r.b) < 1 {
		return 0, 0, "", errShortWKB
	}
	switch r.b[0] {
	case 0:
		r.order = binary.BigEndian
	case 1:
		r.order = binary.LittleEndian
	default:
		return 0, 0, "", fmt.Errorf("WKB: byte order %d is neither 0 nor 1", r.b[0])
	}
	r.b = r.b[1:]
	t, err := r.uint32()
	if err != nil {
		return 0, 0, "", err
	}
	z, m := t&0x80000000 != 0, t&0x40000000 != 0 // EWKB
	if t&0x20000000 != 0 {                       // EWKB SRID, which WKT has no place for
		if _, err := r.uint32(); err != nil {
			return 0, 0, "", err
		}
	}
	t &= 0x0fffffff
	switch t / 1000 {
	case 1:
		z = true
	case 2:
		m = true
	case 3:
		z, m = true, true
	case 0:
	default:
		return 0, 0, "", fmt.Errorf("WKB: unknown geometry type %d", t)
	}
	kind = int(t % 1000)
	if kind < 1 || kind >= len(wkbTypes) {
		return 0, 0, "", fmt.Errorf("WKB: unknown geometry type %d", t)
	}
	dims = 2
	switch {
	case z && m:
		dims, tag = 4, " ZM"
	case z:
		dims, tag = 3, " Z"
	case m:
		dims, tag = 3, " M"
	}
	return kind, dims, tag, nil
}

// geometry writes one geometry; named is false for the members of a
// MULTIPOINT, MULTILINESTRING or MULTIPOLYGON, which WKT writes without
// their type.
func (r *wkbReader) geometry(w *strings.Builder, depth int, named bool) error {
	if depth > maxWKBDepth {
		return fmt.Errorf("WKB: collections nested deeper than %d", maxWKBDepth)
	}
	kind, dims, tag, err := r.header()
	if err != nil {
		return err
	}
	if named {
		w.WriteString(wkbTypes[kind] + tag + " ")
	}
	if kind == 1 {
		return r.point(w, dims, named) // a MULTIPOINT's points go without parentheses
	}
	n, err := r.uint32()
	if err != nil {
		return err
	}
	if n == 0 {
		w.WriteString("EMPTY")
		return nil
	}
	w.WriteByte('(')
	for i := range n {
		if i > 0 {
			w.WriteString(", ")
		}
		switch kind {
		case 2: // LINESTRING: points
			err = r.point(w, dims, false)
		case 3: // POLYGON: rings of points
			err = r.ring(w, dims)
		case 4, 5, 6: // MULTI*: geometries of one type, written unnamed
			err = r.member(w, depth, kind-3)
		case 7:
			err = r.geometry(w, depth+1, true)
		}
		if err != nil {
			return err
		}
	}
	w.WriteByte(')')
	return nil
}

// member reads a member of a MULTI* geometry, which must be of kind.
func (r *wkbReader) member(w *strings.Builder, depth, kind int) error {
	save := *r
	k, _, _, err := r.header()
	if err != nil {
		return err
	}
	if k != kind {
		return fmt.Errorf("WKB: a %s in a MULTI%s", wkbTypes[k], wkbTypes[kind])
	}
	*r = save
	return r.geometry(w, depth+1, false)
}

func (r *wkbReader) ring(w *strings.Builder, dims int) error {
	n, err := r.uint32()
	if err != nil {
		return err
	}
	if n == 0 {
		w.WriteString("EMPTY")
		return nil
	}
	w.WriteByte('(')
	for i := range n {
		if i > 0 {
			w.WriteString(", ")
		}
		if err := r.point(w, dims, false); err != nil {
			return err
		}
	}
	w.WriteByte(')')
	return nil
}

// point writes the ordinates of one point, in parentheses when paren; a
// point whose ordinates are all NaN is EMPTY.
func (r *wkbReader) point(w *strings.Builder, dims int, paren bool) error {
	if len(r.b) < 8*dims {
		return errShortWKB
	}
	var xs [4]float64
	empty := true
	for i := range dims {
		xs[i] = math.Float64frombits(r.order.Uint64(r.b[8*i:]))
		empty = empty && math.IsNaN(xs[i])
	}
	r.b = r.b[8*dims:]
	if empty {
		w.WriteString("EMPTY")
		return nil
	}
	if paren {
		w.WriteByte('(')
	}
	for i := range dims {
		if i > 0 {
			w.WriteByte(' ')
		}
		w.WriteString(ordinate(xs[i]))
	}
	if paren {
		w.WriteByte(')')
	}
	return nil
}

// ordinate writes a number as DuckDB does: the shortest digits that read
// back as x, in fixed notation from 1e-4 up to 1e16, else with an exponent
// of at least two digits (1e+16, 1e-07); nan, inf and -inf.
func ordinate(x float64) string {
	switch {
	case math.IsNaN(x):
		return "nan"
	case math.IsInf(x, 1):
		return "inf"
	case math.IsInf(x, -1):
		return "-inf"
	}
	if a := math.Abs(x); a == 0 || (a >= 1e-4 && a < 1e16) {
		return strconv.FormatFloat(x, 'f', -1, 64)
	}
	return strconv.FormatFloat(x, 'e', -1, 64)
}
