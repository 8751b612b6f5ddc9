package udpjob

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/santhosh-tekuri/jsonschema/v6"
	"golang.org/x/text/language"
	"golang.org/x/text/message"
)

// printer renders the schema library's messages.
var printer = message.NewPrinter(language.English)

// schema is what a parameter's JSON Schema says about its values, compiled
// once per definition.
type schema struct {
	// types are the JSON types some alternative of the schema accepts
	// ("integer", "number", "string", "object", "array", "boolean",
	// "null"); nil when one alternative accepts any type.
	types map[string]bool
	// geojson is set when an alternative is {"type": "object", "subtype":
	// "geojson"}: a WKT cell becomes a GeoJSON geometry.
	geojson bool
	// compiled validates values; nil when the parameter has no schema.
	compiled *jsonschema.Schema
}

// subtypeRules are the openEO subtypes whose shape JSON Schema alone does
// not state, added to every schema (node) that names them. From the openEO
// API's process schemas (openeo-processes meta/subtype-schemas.json).
var subtypeRules = map[string]string{
	"bounding-box": `{"required": ["west", "south", "east", "north"], "properties": {
		"west": {"type": "number"}, "south": {"type": "number"}, "east": {"type": "number"}, "north": {"type": "number"}}}`,
	"geojson": `{"required": ["type"], "properties": {"type": {"enum": ["Point", "MultiPoint", "LineString",
		"MultiLineString", "Polygon", "MultiPolygon", "GeometryCollection", "Feature", "FeatureCollection"]}}}`,
	"temporal-interval": `{"minItems": 2, "maxItems": 2}`,
}

// compileSchema reads a parameter's schema: a JSON Schema object, or an
// array of them (openEO's way to say "any of these"); absent or {} accepts
// anything.
func compileSchema(raw json.RawMessage) (*schema, error) {
	s := &schema{}
	if len(bytes.TrimSpace(raw)) == 0 || string(bytes.TrimSpace(raw)) == "null" {
		return s, nil
	}
	doc, err := jsonschema.UnmarshalJSON(bytes.NewReader(raw))
	if err != nil {
		return nil, err
	}
	var alts []any
	switch d := doc.(type) {
	case []any:
		alts = d
		doc = map[string]any{"anyOf": d}
	case map[string]any, bool:
		alts = []any{d}
	default:
		return nil, fmt.Errorf("want an object or an array of objects, got %v", doc)
	}
	s.types = map[string]bool{}
	var collect func(alt any)
	collect = func(alt any) {
		m, ok := alt.(map[string]any)
		if !ok {
			s.types = nil // true or false: any type
			return
		}
		if sub, _ := m["subtype"].(string); sub == "geojson" {
			s.geojson = true
		}
		for _, k := range []string{"anyOf", "oneOf"} {
			if list, ok := m[k].([]any); ok {
				for _, a := range list {
					collect(a)
				}
				return
			}
		}
		switch t := m["type"].(type) {
		case string:
			if s.types != nil {
				s.types[t] = true
			}
		case []any:
			for _, x := range t {
				if xs, ok := x.(string); ok && s.types != nil {
					s.types[xs] = true
				}
			}
		default:
			s.types = nil
		}
	}
	for _, a := range alts {
		collect(a)
	}
	addSubtypeRules(doc)
	c := jsonschema.NewCompiler()
	c.DefaultDraft(jsonschema.Draft7)
	c.AssertFormat()
	if err := c.AddResource("parameter.json", doc); err != nil {
		return nil, err
	}
	if s.compiled, err = c.Compile("parameter.json"); err != nil {
		return nil, err
	}
	return s, nil
}

func addSubtypeRules(v any) {
	switch x := v.(type) {
	case map[string]any:
		for _, e := range x {
			addSubtypeRules(e)
		}
		if sub, ok := x["subtype"].(string); ok {
			if rule, ok := subtypeRules[sub]; ok {
				r, _ := jsonschema.UnmarshalJSON(strings.NewReader(rule))
				all, _ := x["allOf"].([]any)
				x["allOf"] = append(all, r)
			}
		}
	case []any:
		for _, e := range x {
			addSubtypeRules(e)
		}
	}
}

func (s *schema) wants(t string) bool { return s.types == nil || s.types[t] }

// onlyInteger reports whether the schema takes integers but no other
// numbers: an integral float (2020.0, from a column with an empty cell) is
// sent as the integer 2020.
func (s *schema) onlyInteger() bool {
	return s.types != nil && s.types["integer"] && !s.types["number"]
}

// convert turns a cell (string, int64, float64, bool; not nil) into the
// JSON value the parameter wants, then checks it against the schema. The
// result is made of json.Number (whose literal says integer or decimal),
// string, bool, nil, map[string]any and []any.
func (s *schema) convert(v any) (any, error) {
	out, err := s.shape(v)
	if err != nil {
		return nil, err
	}
	if err := s.validate(out); err != nil {
		return nil, err
	}
	return out, nil
}

func (s *schema) shape(v any) (any, error) {
	switch x := v.(type) {
	case int64:
		if s.types != nil && !s.wants("integer") && !s.wants("number") && s.wants("string") {
			return strconv.FormatInt(x, 10), nil
		}
		return json.Number(strconv.FormatInt(x, 10)), nil
	case int:
		return s.shape(int64(x))
	case float64:
		if math.IsNaN(x) || math.IsInf(x, 0) {
			return nil, fmt.Errorf("%v is not a number JSON can carry", x)
		}
		if x == math.Trunc(x) && math.Abs(x) < 1<<53 && s.onlyInteger() {
			return json.Number(strconv.FormatFloat(x, 'f', -1, 64)), nil
		}
		if s.types != nil && !s.wants("integer") && !s.wants("number") && s.wants("string") {
			return pyFloat(x), nil
		}
		return json.Number(pyFloat(x)), nil
	case bool:
		return x, nil
	case json.Number, nil, map[string]any, []any:
		return x, nil
	case string:
		return s.text(x)
	}
	return nil, fmt.Errorf("unsupported cell type %T", v)
}

// text converts a text cell.
func (s *schema) text(x string) (any, error) {
	if !utf8.ValidString(x) {
		return nil, errNotUTF8(x)
	}
	t := strings.TrimSpace(x)
	if s.geojson {
		if looksLikeWKT(t) {
			return WKTToGeoJSON(t)
		}
		if strings.HasPrefix(t, "{") && !s.wants("string") {
			return parseJSONText(t)
		}
	}
	if s.wants("string") {
		return x, nil
	}
	if s.wants("object") || s.wants("array") {
		if strings.HasPrefix(t, "{") || strings.HasPrefix(t, "[") || strings.HasPrefix(t, "(") {
			v, jerr := parseJSONText(t)
			if jerr == nil {
				return v, nil
			}
			v, perr := parsePyLiteral(t)
			if perr == nil {
				return v, nil
			}
			return nil, fmt.Errorf("%s is neither JSON (%v) nor a Python dict or list (%v)", shorten(x), jerr, perr)
		}
	}
	if s.wants("integer") || s.wants("number") {
		if n, err := numberLiteral(t); err == nil {
			if s.onlyInteger() && isFloatLiteral(n) {
				if f, _ := n.Float64(); f == math.Trunc(f) && math.Abs(f) < 1<<53 {
					n = json.Number(strconv.FormatFloat(f, 'f', -1, 64))
				}
			}
			return n, nil
		}
	}
	if s.wants("boolean") {
		switch t {
		case "true", "True", "TRUE":
			return true, nil
		case "false", "False", "FALSE":
			return false, nil
		}
	}
	if s.wants("null") && (t == "null" || t == "None") {
		return nil, nil
	}
	return x, nil // the schema says why not
}

// parseJSONText reads one JSON value, numbers as written.
func parseJSONText(t string) (any, error) {
	dec := json.NewDecoder(strings.NewReader(t))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		return nil, err
	}
	if dec.More() {
		return nil, errors.New("data after the JSON value")
	}
	return v, nil
}

// validate checks a value against the schema, with the reason in a line.
func (s *schema) validate(v any) error {
	if s.compiled == nil {
		return nil
	}
	err := s.compiled.Validate(v)
	if err == nil {
		return nil
	}
	var ve *jsonschema.ValidationError
	if !errors.As(err, &ve) {
		return err
	}
	var leaves []string
	var walk func(e *jsonschema.ValidationError)
	walk = func(e *jsonschema.ValidationError) {
		if len(e.Causes) == 0 {
			msg := e.ErrorKind.LocalizedString(printer)
			if len(e.InstanceLocation) > 0 {
				msg = "at /" + strings.Join(e.InstanceLocation, "/") + ": " + msg
			}
			leaves = append(leaves, msg)
			return
		}
		for _, c := range e.Causes {
			walk(c)
		}
	}
	walk(ve)
	if len(leaves) > 4 {
		leaves = append(leaves[:4], fmt.Sprintf("and %d more", len(leaves)-4))
	}
	return fmt.Errorf("%s does not fit the parameter's schema: %s", shorten(display(v)), strings.Join(leaves, "; "))
}

// display writes a value for an error message.
func display(v any) string {
	if s, ok := v.(string); ok {
		return strconv.Quote(s)
	}
	b, err := json.Marshal(v)
	if err != nil {
		return fmt.Sprint(v)
	}
	return string(b)
}

// shorten cuts a long text for an error message.
func shorten(s string) string {
	if len(s) > 80 {
		return truncate(s, 60)
	}
	return s
}
