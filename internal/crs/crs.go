// Package crs describes coordinate reference systems and reprojects
// footprints to longitude/latitude, through PROJ (https://proj.org; cgo,
// the Debian package libproj-dev), the reference implementation: what
// github.com/twpayne/go-proj does not expose (a CRS's kind, axis count and
// PROJJSON) is read here through PROJ's C API.
package crs

/*
#cgo pkg-config: proj
#include <stdlib.h>
#include <string.h>
#include <proj.h>

// crs_describe fills what go-proj does not expose about the CRS named by
// def: its type (PJ_TYPE), the axis count of its coordinate system (0 when
// it has none, as a compound CRS), its name and its PROJJSON text (both
// malloc'd, for the caller to free). It returns 0, or 1 when PROJ does not
// know def as an object.
static int crs_describe(PJ_CONTEXT *ctx, const char *def, int *type, int *axes, char **name, char **projjson) {
	PJ *pj = proj_create(ctx, def);
	if (pj == NULL) {
		return 1;
	}
	*type = (int)proj_get_type(pj);
	*axes = 0;
	PJ *cs = proj_crs_get_coordinate_system(ctx, pj);
	if (cs != NULL) {
		*axes = proj_cs_get_axis_count(ctx, cs);
		proj_destroy(cs);
	}
	const char *n = proj_get_name(pj);
	*name = n ? strdup(n) : NULL;
	const char *opts[] = {"MULTILINE=NO", NULL};
	const char *j = proj_as_projjson(ctx, pj, opts);
	*projjson = j ? strdup(j) : NULL;
	proj_destroy(pj);
	return 0;
}
*/
import "C"

import (
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"unsafe"
)

// CRS describes a coordinate reference system as PROJ knows it.
type CRS struct {
	EPSG int    // the EPSG code it was looked up by
	Name string // PROJ's name, such as "WGS 84 / UTM zone 31N"
	// Kind is what kind of CRS it is, in PROJ's terms: "geographic 2D",
	// "geographic 3D", "geocentric", "projected", "vertical", "compound",
	// "engineering", "bound", "temporal" or "other".
	Kind string
	Axes int // axes of its coordinate system (2 for a horizontal CRS)
	// PROJJSON is its definition as PROJJSON text (one line), the form
	// GeoParquet's "crs" takes (GeoParquet 1.1, "crs").
	PROJJSON string
}

// Horizontal2D reports whether the CRS places points on the Earth's
// surface with two coordinates: geographic 2D or projected, two axes.
// Only such a CRS can hold a tile grid.
func (c CRS) Horizontal2D() bool {
	return (c.Kind == "geographic 2D" || c.Kind == "projected") && c.Axes == 2
}

// ErrUnknownProjection is matched (errors.Is) when PROJ does not know an
// EPSG code as a coordinate reference system.
var ErrUnknownProjection = errors.New("unknown projection")

// ErrNotHorizontal is matched (errors.Is) when a CRS is known but is not a
// 2D horizontal one (see CRS.Horizontal2D).
var ErrNotHorizontal = errors.New("not a 2D horizontal coordinate reference system")

// crsKinds names PROJ's PJ_TYPE values for CRSs.
var crsKinds = map[C.int]string{
	C.PJ_TYPE_GEOGRAPHIC_2D_CRS: "geographic 2D",
	C.PJ_TYPE_GEOGRAPHIC_3D_CRS: "geographic 3D",
	C.PJ_TYPE_GEOGRAPHIC_CRS:    "geographic",
	C.PJ_TYPE_GEOCENTRIC_CRS:    "geocentric",
	C.PJ_TYPE_GEODETIC_CRS:      "geodetic",
	C.PJ_TYPE_PROJECTED_CRS:     "projected",
	C.PJ_TYPE_VERTICAL_CRS:      "vertical",
	C.PJ_TYPE_COMPOUND_CRS:      "compound",
	C.PJ_TYPE_ENGINEERING_CRS:   "engineering",
	C.PJ_TYPE_BOUND_CRS:         "bound",
	C.PJ_TYPE_TEMPORAL_CRS:      "temporal",
	C.PJ_TYPE_OTHER_CRS:         "other",
	C.PJ_TYPE_CRS:               "other",
}

// crsCache holds the CRSs looked up, by EPSG code, and the PROJ context
// the lookups share (a PROJ context is for one thread at a time).
var crsCache = struct {
	sync.Mutex
	ctx  *C.PJ_CONTEXT
	byID map[int]crsResult
}{byID: map[int]crsResult{}}

type crsResult struct {
	crs CRS
	err error
}

// LookupCRS describes the CRS of EPSG code n. An error matches
// ErrUnknownProjection when PROJ does not know n as a CRS.
func LookupCRS(n int) (CRS, error) {
	crsCache.Lock()
	defer crsCache.Unlock()
	if r, ok := crsCache.byID[n]; ok {
		return r.crs, r.err
	}
	if crsCache.ctx == nil {
		crsCache.ctx = C.proj_context_create()
		C.proj_log_level(crsCache.ctx, C.PJ_LOG_NONE)
	}
	def := C.CString("EPSG:" + strconv.Itoa(n))
	defer C.free(unsafe.Pointer(def))
	var typ, axes C.int
	var name, pj *C.char
	r := crsResult{crs: CRS{EPSG: n}}
	if C.crs_describe(crsCache.ctx, def, &typ, &axes, &name, &pj) != 0 {
		r.err = fmt.Errorf("EPSG:%d: %w (PROJ does not know it as a coordinate reference system)", n, ErrUnknownProjection)
	} else {
		r.crs.Name, r.crs.PROJJSON, r.crs.Axes = C.GoString(name), C.GoString(pj), int(axes)
		C.free(unsafe.Pointer(name))
		C.free(unsafe.Pointer(pj))
		kind, ok := crsKinds[typ]
		if !ok {
			r.err = fmt.Errorf("EPSG:%d: %w (PROJ knows it as no coordinate reference system)", n, ErrUnknownProjection)
		}
		r.crs.Kind = kind
	}
	crsCache.byID[n] = r
	return r.crs, r.err
}

// CheckHorizontal returns an error when EPSG code n is not a 2D horizontal
// CRS PROJ knows: matching ErrUnknownProjection when PROJ does not know
// it, ErrNotHorizontal when it is vertical, geocentric, compound, 3D,
// engineering ... (a grid of such a CRS would not lie on the ground).
func CheckHorizontal(n int) error {
	c, err := LookupCRS(n)
	if err != nil {
		return err
	}
	if !c.Horizontal2D() {
		axes := ""
		if c.Axes > 0 {
			axes = fmt.Sprintf(" of %d axes", c.Axes)
		}
		return fmt.Errorf("EPSG:%d (%s) is a %s CRS%s, %w: give a geographic 2D or projected one, such as 4326 or a UTM zone", n, c.Name, c.Kind, axes, ErrNotHorizontal)
	}
	return nil
}

// EPSGOfPROJJSON returns the EPSG code a PROJJSON definition names in its
// "id" (or first of "ids"), as PROJ writes it for a CRS from the EPSG
// registry (4326 for OGC:CRS84, longitude/latitude); 0 when it names
// none. A definition that is no JSON object is read by ParseEPSG
// ("EPSG:32631", "OGC:CRS84", as DuckDB names a CRS), and is an error when
// that cannot read it.
func EPSGOfPROJJSON(s string) (int, error) {
	if t := strings.TrimSpace(s); t != "" && t[0] != '{' {
		return ParseEPSG(t)
	}
	type id struct {
		Authority string          `json:"authority"`
		Code      json.RawMessage `json:"code"`
	}
	var doc struct {
		ID  *id  `json:"id"`
		IDs []id `json:"ids"`
	}
	if err := json.Unmarshal([]byte(s), &doc); err != nil {
		return 0, fmt.Errorf("PROJJSON: %w", err)
	}
	ids := doc.IDs
	if doc.ID != nil {
		ids = append([]id{*doc.ID}, ids...)
	}
	for _, x := range ids {
		code := strings.Trim(string(x.Code), `"`)
		if strings.EqualFold(x.Authority, "OGC") && strings.EqualFold(code, "CRS84") {
			return WGS84, nil // longitude/latitude, as GeoParquet's default
		}
		if !strings.EqualFold(x.Authority, "EPSG") {
			continue
		}
		n, err := strconv.Atoi(code)
		if err == nil && n > 0 {
			return n, nil
		}
	}
	return 0, nil
}

// OfGeometryType returns the CRS definition in a DuckDB GEOMETRY type
// name, as DuckDB names the type of a GeoParquet column with a "crs":
// GEOMETRY('<PROJJSON>') gives the PROJJSON text; false for a GEOMETRY
// without CRS, for GEOMETRY('OGC:CRS84') (longitude/latitude, which a
// GeoParquet without "crs" is, so DuckDB names its columns so) and for
// another type.
func OfGeometryType(typ string) (string, bool) {
	def, ok := strings.CutPrefix(typ, "GEOMETRY('")
	if !ok || !strings.HasSuffix(def, "')") {
		return "", false
	}
	def = strings.ReplaceAll(strings.TrimSuffix(def, "')"), "''", "'")
	if strings.EqualFold(def, "OGC:CRS84") {
		return "", false
	}
	return def, true
}
