package remotetest

import (
	"encoding/json"
	"math"
	"path"
	"strings"
)

// geoJSONTypes are the GeoJSON geometry types that carry "coordinates".
var geoJSONTypes = map[string]bool{
	"Point": true, "MultiPoint": true, "LineString": true, "MultiLineString": true,
	"Polygon": true, "MultiPolygon": true,
}

// resultExtent returns the bounding box (west, south, east, north, in
// degrees of longitude and latitude) of the places a job's POST /jobs body
// names, as a back-end gives its results' geometry from the extent of the
// job: every GeoJSON geometry anywhere in it (Features, FeatureCollections
// and GeometryCollections too) and every bounding box {west, south, east,
// north} without a crs or in EPSG:4326. Positions outside -180..180,
// -90..90 (projected ones) are not longitude/latitude and are left out.
// ok is false when the body names no place.
func resultExtent(body []byte) (box [4]float64, ok bool) {
	var doc any
	if json.Unmarshal(body, &doc) != nil {
		return box, false
	}
	box = [4]float64{math.Inf(1), math.Inf(1), math.Inf(-1), math.Inf(-1)}
	add := func(lon, lat float64) {
		if lon < -180 || lon > 180 || lat < -90 || lat > 90 {
			return
		}
		box = [4]float64{min(box[0], lon), min(box[1], lat), max(box[2], lon), max(box[3], lat)}
		ok = true
	}
	walkPlaces(doc, add)
	return box, ok
}

// walkPlaces calls add for each position of the geometries and the
// corners of the bounding boxes in v.
func walkPlaces(v any, add func(lon, lat float64)) {
	switch v := v.(type) {
	case map[string]any:
		if t, _ := v["type"].(string); geoJSONTypes[t] {
			positions(v["coordinates"], add)
			return
		}
		if w, s, e, n, ok := bboxObject(v); ok {
			add(w, s)
			add(e, n)
			return
		}
		for _, x := range v {
			walkPlaces(x, add)
		}
	case []any:
		for _, x := range v {
			walkPlaces(x, add)
		}
	}
}

// positions calls add for each position ([lon, lat, ...]) in c, nested
// arrays of positions at any depth.
func positions(c any, add func(lon, lat float64)) {
	arr, _ := c.([]any)
	if len(arr) >= 2 {
		lon, lok := arr[0].(float64)
		lat, aok := arr[1].(float64)
		if lok && aok {
			add(lon, lat)
			return
		}
	}
	for _, x := range arr {
		positions(x, add)
	}
}

// bboxObject reads an openEO bounding box {west, south, east, north, crs}
// whose crs is absent or EPSG:4326.
func bboxObject(m map[string]any) (w, s, e, n float64, ok bool) {
	var oks [4]bool
	w, oks[0] = m["west"].(float64)
	s, oks[1] = m["south"].(float64)
	e, oks[2] = m["east"].(float64)
	n, oks[3] = m["north"].(float64)
	if oks != [4]bool{true, true, true, true} {
		return 0, 0, 0, 0, false
	}
	switch crs := m["crs"].(type) {
	case nil:
	case float64:
		if crs != 4326 {
			return 0, 0, 0, 0, false
		}
	case string:
		if c := strings.ToUpper(crs); c != "4326" && c != "EPSG:4326" {
			return 0, 0, 0, 0, false
		}
	default:
		return 0, 0, 0, 0, false
	}
	return w, s, e, n, true
}

// resultGeometry returns the geometry and bbox of a result document for
// box: a Polygon, or a Point when the box has no area along both axes.
func resultGeometry(box [4]float64) (geometry map[string]any, bbox []float64) {
	w, s, e, n := box[0], box[1], box[2], box[3]
	if w == e && s == n {
		return map[string]any{"type": "Point", "coordinates": []float64{w, s}}, []float64{w, s, e, n}
	}
	ring := [][]float64{{w, s}, {e, s}, {e, n}, {w, n}, {w, s}}
	return map[string]any{"type": "Polygon", "coordinates": [][][]float64{ring}}, []float64{w, s, e, n}
}

// assetMediaTypes are the media types the fake gives result assets by the
// extension of their names, as back-ends describe their formats.
var assetMediaTypes = map[string]string{
	".tif": "image/tiff; application=geotiff", ".tiff": "image/tiff; application=geotiff",
	".nc": "application/x-netcdf", ".json": "application/json", ".geojson": "application/geo+json",
	".csv": "text/csv", ".png": "image/png", ".parquet": "application/vnd.apache.parquet",
}

// assetMediaType is the media type of result asset name: opts.AssetTypes'
// when it has one, else by its extension, else application/octet-stream.
func (o *Options) assetMediaType(name string) string {
	if t, ok := o.AssetTypes[name]; ok {
		return t
	}
	if t, ok := assetMediaTypes[strings.ToLower(path.Ext(name))]; ok {
		return t
	}
	return "application/octet-stream"
}
