package udpjob

import (
	"encoding/json"
	"fmt"

	"github.com/openeo-batch/worker/internal/wktgeo"
)

// looksLikeWKT reports whether s starts with a WKT geometry keyword (or
// EWKT's "SRID="), so that a text cell is taken for a geometry only when
// it claims to be one.
func looksLikeWKT(s string) bool { return wktgeo.LooksLike(s) }

// WKTToGeoJSON turns a WKT geometry (as shapely, GeoPandas, DuckDB and
// PostGIS write it; "Z", "M" and "ZM" variants too) into a GeoJSON
// Geometry object: {"type": ..., "coordinates": ...}, or "geometries" for a
// collection. Coordinates are decimal literals (json.Number, "51.0" for
// 51) as the Python client's shapely mapping sends them; a Z coordinate is
// kept, an M coordinate is dropped (GeoJSON has no measures). Malformed
// text, text after the geometry, an EWKT "SRID=n;" prefix, a NaN or
// infinite coordinate, EMPTY geometries and open or short rings are errors
// (see internal/wktgeo, which init uses too, so a table init made never
// holds a geometry a run refuses).
func WKTToGeoJSON(s string) (map[string]any, error) {
	g, err := wktgeo.Parse(s, func(f float64) any { return json.Number(pyFloat(f)) })
	if err != nil {
		return nil, fmt.Errorf("not WKT: %w", err)
	}
	return g, nil
}
