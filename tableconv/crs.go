package tableconv

import (
	"fmt"
	"slices"
	"strings"

	"github.com/paulmach/orb/encoding/wkt"

	"github.com/openeo-batch/worker/driver"
	"github.com/openeo-batch/worker/internal/crs"
)

// EPSGColumn is the column worker split writes the CRS of each row's
// geometry to, as an EPSG code.
const EPSGColumn = "epsg"

// GeometryEPSG returns the CRS of t's geometries as an EPSG code: t.EPSG
// when the source named one, else the CRS every row's footprint is in by
// crs.FootprintEPSG (an epsg column, as worker split writes it, for
// coordinates that are not longitude/latitude); 4326 for
// longitude/latitude, and 0 when the table says nothing or its rows are in
// several CRSs (mixed is then true, naming the first two rows that
// differ). A cell that is not 2D WKT is passed over.
func (t *Table) GeometryEPSG() (epsg int, mixed string) {
	if t.EPSG != 0 {
		return t.EPSG, ""
	}
	g := slices.Index(t.Columns, GeometryColumn)
	if g < 0 {
		return 0, ""
	}
	e := slices.Index(t.Columns, EPSGColumn)
	first := 0
	for i, r := range t.Rows {
		s, ok := r[g].(string)
		if !ok || strings.TrimSpace(s) == "" {
			continue
		}
		geom, err := wkt.Unmarshal(s)
		if err != nil {
			continue
		}
		var cell any
		if e >= 0 {
			cell = r[e]
		}
		n, err := crs.FootprintEPSG(0, cell, geom.Bound())
		if err != nil {
			return 0, ""
		}
		switch {
		case epsg == 0:
			epsg, first = n, i
		case n != epsg:
			return 0, fmt.Sprintf("row %d is in EPSG:%d, row %d in EPSG:%d", first+1, epsg, i+1, n)
		}
	}
	return epsg, ""
}

// StoreEPSG is the EPSG code of the CRS store s names for its geometry
// column (see driver.CRSKeeper), as Table.EPSG takes it: 0 when it names
// none or longitude/latitude. A CRS that names no EPSG code is an error:
// it could not be carried over.
func StoreEPSG(s driver.Store) (int, error) {
	k, ok := s.(driver.CRSKeeper)
	if !ok {
		return 0, nil
	}
	def := k.GeometryCRS(GeometryColumn)
	if def == "" {
		return 0, nil
	}
	n, err := crs.EPSGOfPROJJSON(def)
	if err == nil && n == 0 {
		err = fmt.Errorf("it names no EPSG code, which this tool needs to carry it over: %.80s", def)
	}
	if err != nil {
		return 0, fmt.Errorf("column %q: the CRS of its geometries: %w", GeometryColumn, err)
	}
	if n == crs.WGS84 {
		return 0, nil
	}
	return n, nil
}

// withCRS prepares t for the new store s: a store that keeps the CRS
// (driver.CRSKeeper) is given the one of t's geometries (GeometryEPSG),
// unless it is longitude/latitude; for another store a table whose CRS
// came from its source (t.EPSG) and that has no epsg column gets one
// (in t itself), after the geometry column, the EPSG code in each row
// with a geometry, so the CRS is not lost.
func withCRS(s driver.Store, t *Table) error {
	n, _ := t.GeometryEPSG()
	if n == 0 || n == crs.WGS84 {
		return nil
	}
	if k, ok := s.(driver.CRSKeeper); ok {
		c, err := crs.LookupCRS(n)
		if err != nil {
			return fmt.Errorf("column %q: %w", GeometryColumn, err)
		}
		return k.SetGeometryCRS(GeometryColumn, c.PROJJSON)
	}
	g := slices.Index(t.Columns, GeometryColumn)
	if t.EPSG == 0 || slices.Contains(t.Columns, EPSGColumn) || g < 0 {
		return nil
	}
	t.Columns = slices.Insert(t.Columns, g+1, EPSGColumn)
	for i, r := range t.Rows {
		var v any
		if r[g] != nil {
			v = int64(n)
		}
		t.Rows[i] = slices.Insert(r, g+1, v)
	}
	return nil
}
