package tableconv

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func readGeoJSONText(t *testing.T, doc string) (*Table, error) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "in.geojson")
	os.WriteFile(path, []byte(doc), 0o644)
	return ReadGeoJSON(path)
}

const feature = `{"type":"Feature","geometry":{"type":"Point","coordinates":[1,2]},"properties":`

// Text that is not UTF-8 is an error naming the feature and property, not
// a U+FFFD in the table.
func TestReadGeoJSONNotUTF8(t *testing.T) {
	for doc, want := range map[string]string{
		`{"type":"FeatureCollection","features":[` + feature + `{"tile":"A"}},` + feature + `{"tile":"B","name":"caf` + "\xe9" + `"}}]}`: `in.geojson: feature 2: property "name": "caf\xe9" is not UTF-8`,
		`{"type":"FeatureCollection","features":[` + feature + `{"n` + "\xe9" + `":1}}]}`:                                                "feature 1: a property name is not UTF-8",
		`{"type":"FeatureCollection","name":"` + "\xe9" + `","features":[` + feature + `{"a":1}}]}`:                                      "in.geojson: not UTF-8 text at byte 36",
	} {
		_, err := readGeoJSONText(t, doc)
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("err = %v, want %q", err, want)
		}
	}
}

// A whole number beyond int64 is kept as written, as text; one beyond
// float64 is refused, naming feature and property.
func TestReadGeoJSONBigNumbers(t *testing.T) {
	tab, err := readGeoJSONText(t, `{"type":"FeatureCollection","features":[`+feature+`{"big":12345678901234567890,"n":9007199254740993,"f":1.10}}]}`)
	if err != nil {
		t.Fatal(err)
	}
	if r := tab.Rows[0]; r[0] != "12345678901234567890" || r[1] != int64(9007199254740993) || r[2] != 1.1 {
		t.Errorf("row %#v", r)
	}
	for _, n := range []string{"1e400", "-1e400", "1e-400"} {
		_, err := readGeoJSONText(t, `{"type":"FeatureCollection","features":[`+feature+`{"x":`+n+`}}]}`)
		if err == nil || !strings.Contains(err.Error(), `feature 1, property "x": the number `+n) {
			t.Errorf("%s: err = %v", n, err)
		}
	}
}
