package tableconv

import (
	"encoding/json"
	"errors"
	"fmt"
	"math"
)

// CheckGeoJSONGeometry checks a GeoJSON geometry object (RFC 7946,
// section 3.1), given as its JSON text, before it is turned into WKT, so
// that no coordinate is changed or dropped on the way: every position has
// exactly two finite numbers (a third, Z, would be lost: the geometry
// column keeps 2D geometries), a LineString has at least two positions,
// and each Polygon ring is closed with at least four. A null or absent
// geometry is fine. The error says what is wrong and where, such as
// "Polygon: [0]: a ring must end where it starts: [2 1] is not [1 1]".
func CheckGeoJSONGeometry(raw json.RawMessage) error {
	if len(raw) == 0 || string(raw) == "null" {
		return nil
	}
	var g struct {
		Type        string            `json:"type"`
		Coordinates json.RawMessage   `json:"coordinates"`
		Geometries  []json.RawMessage `json:"geometries"`
	}
	if err := json.Unmarshal(raw, &g); err != nil {
		return fmt.Errorf("geometry: %w", err)
	}
	if g.Type == "GeometryCollection" {
		for i, m := range g.Geometries {
			if err := CheckGeoJSONGeometry(m); err != nil {
				return fmt.Errorf("geometries[%d]: %w", i, err)
			}
		}
		return nil
	}
	var err error
	switch g.Type {
	case "Point":
		_, err = position(g.Coordinates)
	case "MultiPoint":
		err = eachArray(g.Coordinates, func(p json.RawMessage) error { _, err := position(p); return err })
	case "LineString":
		err = line(g.Coordinates, 2, false)
	case "MultiLineString":
		err = eachArray(g.Coordinates, func(l json.RawMessage) error { return line(l, 2, false) })
	case "Polygon":
		err = eachArray(g.Coordinates, func(r json.RawMessage) error { return line(r, 4, true) })
	case "MultiPolygon":
		err = eachArray(g.Coordinates, func(p json.RawMessage) error {
			return eachArray(p, func(r json.RawMessage) error { return line(r, 4, true) })
		})
	default:
		return fmt.Errorf("geometry: unknown type %q", g.Type)
	}
	if err != nil {
		return fmt.Errorf("%s: %w", g.Type, err)
	}
	return nil
}

// eachArray calls f for each member of the JSON array raw.
func eachArray(raw json.RawMessage, f func(json.RawMessage) error) error {
	var items []json.RawMessage
	if err := json.Unmarshal(raw, &items); err != nil || items == nil {
		return errors.New("coordinates: want an array")
	}
	for i, it := range items {
		if err := f(it); err != nil {
			return fmt.Errorf("[%d]: %w", i, err)
		}
	}
	return nil
}

// line checks a LineString's or ring's positions: at least min of them,
// and for a ring the last equal to the first.
func line(raw json.RawMessage, min int, ring bool) error {
	var ps [][2]float64
	if err := eachArray(raw, func(p json.RawMessage) error {
		xy, err := position(p)
		ps = append(ps, xy)
		return err
	}); err != nil {
		return err
	}
	what := "a line"
	if ring {
		what = "a ring"
	}
	if len(ps) < min {
		return fmt.Errorf("%s needs at least %d positions, has %d", what, min, len(ps))
	}
	if ring && ps[0] != ps[len(ps)-1] {
		return fmt.Errorf("a ring must end where it starts: %v is not %v", ps[len(ps)-1], ps[0])
	}
	return nil
}

// position checks one position: exactly two finite numbers.
func position(raw json.RawMessage) ([2]float64, error) {
	var xs []float64
	if err := json.Unmarshal(raw, &xs); err != nil {
		return [2]float64{}, fmt.Errorf("position %s: want numbers", raw)
	}
	switch {
	case len(xs) == 3:
		return [2]float64{}, fmt.Errorf("position %s has a Z coordinate, which the table's 2D geometries cannot keep", raw)
	case len(xs) != 2:
		return [2]float64{}, fmt.Errorf("position %s: want two numbers (longitude, latitude)", raw)
	}
	for _, x := range xs {
		if math.IsInf(x, 0) || math.IsNaN(x) {
			return [2]float64{}, fmt.Errorf("position %s: not a finite number", raw)
		}
	}
	return [2]float64{xs[0], xs[1]}, nil
}
