package udpjob

import (
	"encoding/json"
	"math"
	"strings"
	"testing"

	"github.com/openeo-batch/worker/internal/wktgeo"
)

func mustJSON(t *testing.T, v any) string {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func TestWKTToGeoJSON(t *testing.T) {
	tests := []struct{ wkt, want string }{
		{"POINT (12 41)", `{"coordinates":[12.0,41.0],"type":"Point"}`},
		{"POINT Z (1 2 3)", `{"coordinates":[1.0,2.0,3.0],"type":"Point"}`},
		{"POINT (1 2 3)", `{"coordinates":[1.0,2.0,3.0],"type":"Point"}`},
		{"POINT M (1 2 9)", `{"coordinates":[1.0,2.0],"type":"Point"}`},
		{"POINT ZM (1 2 3 9)", `{"coordinates":[1.0,2.0,3.0],"type":"Point"}`},
		{"point(1e-7 -0.5)", `{"coordinates":[1e-07,-0.5],"type":"Point"}`},
		{"LINESTRING (0 0, 1 1)", `{"coordinates":[[0.0,0.0],[1.0,1.0]],"type":"LineString"}`},
		{"MULTIPOINT ((0 0), (1 1))", `{"coordinates":[[0.0,0.0],[1.0,1.0]],"type":"MultiPoint"}`},
		{"MULTIPOINT (0 0, 1 1)", `{"coordinates":[[0.0,0.0],[1.0,1.0]],"type":"MultiPoint"}`},
		{"POLYGON Z ((0 0 1, 1 0 1, 1 1 2, 0 0 1))", `{"coordinates":[[[0.0,0.0,1.0],[1.0,0.0,1.0],[1.0,1.0,2.0],[0.0,0.0,1.0]]],"type":"Polygon"}`},
		{"POLYGON ((2.9 51.2, 2.92 51.2, 2.92 51.220000000000006, 2.9 51.2))",
			`{"coordinates":[[[2.9,51.2],[2.92,51.2],[2.92,51.220000000000006],[2.9,51.2]]],"type":"Polygon"}`},
		{"MULTIPOLYGON (((0 0, 1 0, 1 1, 0 0)), ((5 5, 6 5, 6 6, 5 5), (5.1 5.1, 5.2 5.1, 5.2 5.2, 5.1 5.1)))",
			`{"coordinates":[[[[0.0,0.0],[1.0,0.0],[1.0,1.0],[0.0,0.0]]],[[[5.0,5.0],[6.0,5.0],[6.0,6.0],[5.0,5.0]],[[5.1,5.1],[5.2,5.1],[5.2,5.2],[5.1,5.1]]]],"type":"MultiPolygon"}`},
		{"GEOMETRYCOLLECTION (POINT (1 2), LINESTRING (0 0, 1 1))",
			`{"geometries":[{"coordinates":[1.0,2.0],"type":"Point"},{"coordinates":[[0.0,0.0],[1.0,1.0]],"type":"LineString"}],"type":"GeometryCollection"}`},
	}
	for _, tt := range tests {
		g, err := WKTToGeoJSON(tt.wkt)
		if err != nil {
			t.Errorf("%s: %v", tt.wkt, err)
			continue
		}
		if got := mustJSON(t, g); got != tt.want {
			t.Errorf("%s:\n got %s\nwant %s", tt.wkt, got, tt.want)
		}
	}
	for _, bad := range []string{"", "POINT", "POINT EMPTY", "POINT (1)", "POINT (1 2", "POLYGON ((0 0, 1 0, 1 1, 0 0.5))",
		"POLYGON ((0 0, 1 1, 0 0))", "CIRCLE (1 2)", "POINT (1 2) x", "POINT (a b)", "POINT (1 2 3 4 5)"} {
		if g, err := WKTToGeoJSON(bad); err == nil {
			t.Errorf("%q accepted: %v", bad, g)
		}
	}
}

func TestPyFloat(t *testing.T) {
	for f, want := range map[float64]string{
		1: "1.0", 2020: "2020.0", 0.1: "0.1", 1e-7: "1e-07", 1e16: "1e+16", 1e15: "1000000000000000.0",
		-0.5: "-0.5", 51.220000000000006: "51.220000000000006", 1.5e300: "1.5e+300", 0.0001: "0.0001",
	} {
		if got := pyFloat(f); got != want {
			t.Errorf("pyFloat(%v) = %q, want %q", f, got, want)
		}
	}
}

func TestPyRepr(t *testing.T) {
	v := map[string]any{"b": json.Number("1.0"), "a": "O'Brien", "c": []any{nil, true, "x"}, "d": `say "hi" it's`}
	got := pyRepr(v, []string{"c", "b"})
	want := `{'c': [None, True, 'x'], 'b': 1.0, 'a': "O'Brien", 'd': 'say "hi" it\'s'}`
	if got != want {
		t.Errorf("pyRepr =\n %s\nwant\n %s", got, want)
	}
	if got := truncate("abcdefghij", 8); got != "abcde..." {
		t.Errorf("truncate = %q", got)
	}
	if got := truncate("東京東京", 4); got != "東京東京" {
		t.Errorf("truncate counts code points: %q", got)
	}
}

func TestParsePyLiteral(t *testing.T) {
	tests := []struct{ in, want string }{
		{`{'west': 5.0, 'crs': 4326, 'name': "it's"}`, `{"crs":4326,"name":"it's","west":5.0}`},
		{`['2019-06-01', None]`, `["2019-06-01",null]`},
		{`((1.5, 2), (3, 4.))`, `[[1.5,2],[3,4.0]]`},
		{`{'a': [True, False], 'b': {}}`, `{"a":[true,false],"b":{}}`},
		{`['\xe9\u00e9\n']`, `["éé\n"]`},
	}
	for _, tt := range tests {
		v, err := parsePyLiteral(tt.in)
		if err != nil {
			t.Errorf("%s: %v", tt.in, err)
			continue
		}
		if got := mustJSON(t, v); got != tt.want {
			t.Errorf("%s = %s, want %s", tt.in, got, tt.want)
		}
	}
	for _, bad := range []string{`{'a': nan}`, `[1, inf]`, `{1: 2}`, `['a'`, `{'a' 1}`, `[x]`, `'abc`} {
		if v, err := parsePyLiteral(bad); err == nil {
			t.Errorf("%s accepted: %v", bad, v)
		}
	}
}

// Values are typed by the schema and the cell, then checked.
func TestConvertBySchema(t *testing.T) {
	tests := []struct {
		schema string
		cell   any
		want   string // JSON, or "error: part of the message"
	}{
		{`{"type": "integer"}`, int64(2020), `2020`},
		// An integer column with an empty cell reaches pandas (and some of
		// our drivers) as floats: the Python client then sends 2020.0 for
		// an integer parameter. An integral value is an integer here.
		{`{"type": "integer"}`, 2020.0, `2020`},
		{`{"type": "integer"}`, 2020.5, `error: want integer`},
		{`{"type": "integer"}`, "2020", `2020`},
		{`{"type": "integer"}`, "abc", `error: "abc"`},
		{`{"type": "number"}`, 1.0, `1.0`},
		{`{"type": "number"}`, int64(50), `50`},
		{`{"type": "number"}`, math.NaN(), `error: NaN`},
		{`{"type": "number", "minimum": 0, "maximum": 100}`, 101.0, `error: maximum`},
		{`{"type": ["number", "integer"]}`, 3.0, `3.0`},
		{`{"type": "string"}`, "0042", `"0042"`},
		{`{"type": "string"}`, int64(31), `"31"`},
		{`{"type": "string", "enum": ["a", "b"]}`, "c", `error: a`},
		{`{"type": "string", "format": "date"}`, "2021-02-30", `error: date`},
		{`{"type": "boolean"}`, "True", `true`},
		{`{"type": "object", "subtype": "bounding-box"}`, `{'west': 5.0, 'south': 51, 'east': 5.1, 'north': 51.1}`,
			`{"east":5.1,"north":51.1,"south":51,"west":5.0}`},
		{`{"type": "object", "subtype": "bounding-box"}`, `{"west": 5, "south": 51, "east": 5.1, "north": 51.1}`,
			`{"east":5.1,"north":51.1,"south":51,"west":5}`},
		{`{"type": "object", "subtype": "bounding-box"}`, `{'west': 5.0}`, `error: missing properties`},
		{`{"type": "array", "subtype": "temporal-interval"}`, `['2019-06-01', None]`, `["2019-06-01",null]`},
		{`{"type": "array", "subtype": "temporal-interval"}`, `['2019-06-01']`, `error: minItems`},
		{`{"type": "object", "subtype": "geojson"}`, "POINT Z (5 51 100)", `{"coordinates":[5.0,51.0,100.0],"type":"Point"}`},
		{`{"type": "object", "subtype": "geojson"}`, `{"type": "Point", "coordinates": [5, 51]}`, `{"coordinates":[5,51],"type":"Point"}`},
		{`{"type": "object", "subtype": "geojson"}`, "POLYGON ((0 0, 1 1))", `error: not WKT`},
		{`{"type": "object", "subtype": "geojson"}`, "Gent", `error: "Gent"`},
		{`[{"type": "object", "subtype": "geojson"}, {"type": "null"}]`, "POINT (1 2)", `{"coordinates":[1.0,2.0],"type":"Point"}`},
		{`{}`, "text", `"text"`},
		{`{}`, 1.5, `1.5`},
		{``, int64(7), `7`},
	}
	for _, tt := range tests {
		s, err := compileSchema(json.RawMessage(tt.schema))
		if err != nil {
			t.Fatalf("%s: %v", tt.schema, err)
		}
		v, err := s.convert(tt.cell)
		if want, ok := strings.CutPrefix(tt.want, "error: "); ok {
			if err == nil || !strings.Contains(err.Error(), want) {
				t.Errorf("%s with %#v: err = %v, want one containing %q (value %s)", tt.schema, tt.cell, err, want, mustJSON(t, v))
			}
			continue
		}
		if err != nil {
			t.Errorf("%s with %#v: %v", tt.schema, tt.cell, err)
			continue
		}
		if got := mustJSON(t, v); got != tt.want {
			t.Errorf("%s with %#v = %s, want %s", tt.schema, tt.cell, got, tt.want)
		}
	}
}

// FuzzConvert: for any cell and schema, conversion either fails or gives
// a value that marshals to JSON and fits the schema; an integer-only
// schema never gets a decimal literal, a number cell never becomes text
// unless the schema wants only text.
func FuzzConvert(f *testing.F) {
	f.Add(`{"type": "integer"}`, "2020", int64(0), 0.0, 0)
	f.Add(`{"type": "integer"}`, "", int64(0), 2020.0, 2)
	f.Add(`{"type": "number"}`, "", int64(0), 1.0, 2)
	f.Add(`{"type": "object", "subtype": "geojson"}`, "POLYGON Z ((0 0 1, 1 0 1, 1 1 1, 0 0 1))", int64(0), 0.0, 0)
	f.Add(`{"type": "object", "subtype": "bounding-box"}`, "{'west': 5.0, 'south': 51, 'east': 5.1, 'north': 51.1}", int64(0), 0.0, 0)
	f.Add(`{"type": "array", "subtype": "temporal-interval"}`, "['2019-06-01', None]", int64(0), 0.0, 0)
	f.Add(`[{"type": "string"}, {"type": "null"}]`, "x", int64(7), 0.0, 1)
	f.Add(`{"type": "string", "enum": ["a"]}`, "a", int64(0), 0.0, 0)
	f.Fuzz(func(t *testing.T, schemaText, text string, i int64, fl float64, kind int) {
		s, err := compileSchema(json.RawMessage(schemaText))
		if err != nil {
			return
		}
		var cell any
		switch kind % 3 {
		case 0:
			cell = text
		case 1:
			cell = i
		default:
			cell = fl
		}
		v, err := s.convert(cell)
		if err != nil {
			return
		}
		b, err := json.Marshal(v)
		if err != nil {
			t.Fatalf("%#v -> %#v does not marshal: %v", cell, v, err)
		}
		back, err := parseJSONText(string(b))
		if err != nil {
			t.Fatalf("%s does not read back: %v", b, err)
		}
		if err := s.validate(back); err != nil {
			t.Fatalf("%s passed conversion but not validation after a round trip: %v", b, err)
		}
		if n, ok := v.(json.Number); ok && s.onlyInteger() && isFloatLiteral(n) {
			t.Fatalf("integer-only schema got decimal %s", n)
		}
		if _, isText := v.(string); isText && kind%3 != 0 && !s.wants("string") {
			t.Fatalf("number %#v became text for %s", cell, schemaText)
		}
	})
}

// FuzzWKT: any text either is refused or gives a geometry that marshals
// and has a known GeoJSON type.
func FuzzWKT(f *testing.F) {
	for _, s := range []string{"POINT (1 2)", "POINT Z (1 2 3)", "MULTIPOLYGON (((0 0, 1 0, 1 1, 0 0)))",
		"GEOMETRYCOLLECTION (POINT (1 2))", "MULTIPOINT ((0 0), 1 1)", "LINESTRING ZM (0 0 0 0, 1 1 1 1)"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		g, err := WKTToGeoJSON(s)
		if err != nil {
			return
		}
		if _, err := json.Marshal(g); err != nil {
			t.Fatalf("%q: %v", s, err)
		}
		if !wktgeo.IsType(g["type"].(string)) {
			t.Fatalf("%q: type %v", s, g["type"])
		}
	})
}
