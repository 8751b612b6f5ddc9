package tableconv

import (
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/openeo-batch/worker/internal/jsonkeys"
)

// checkFeatureUTF8 reports text that is not UTF-8 in a GeoJSON feature
// (its JSON text raw), which a JSON decoder would turn into U+FFFD without
// a word (RFC 8259 requires UTF-8): the error names the property whose
// value or name holds it, or the byte offset in the feature.
func checkFeatureUTF8(raw json.RawMessage) error {
	if utf8.Valid(raw) {
		return nil
	}
	var f struct {
		Properties json.RawMessage `json:"properties"`
	}
	json.Unmarshal(raw, &f)
	if !utf8.Valid(f.Properties) {
		var props map[string]json.RawMessage
		json.Unmarshal(f.Properties, &props)
		for _, k := range jsonkeys.Object(f.Properties) {
			if v, ok := props[k]; ok && !utf8.Valid(v) {
				return fmt.Errorf("property %q: %s is not UTF-8 text (convert the file to UTF-8)", k, shortJSON(v))
			}
		}
		return fmt.Errorf("a property name is not UTF-8 text, near byte %d of the feature (convert the file to UTF-8)", invalidAt(raw))
	}
	return fmt.Errorf("not UTF-8 text at byte %d of the feature (convert the file to UTF-8)", invalidAt(raw))
}

// invalidAt returns the offset of the first byte of b that is not part of
// UTF-8 text.
func invalidAt(b []byte) int {
	for i := 0; i < len(b); {
		r, n := utf8.DecodeRune(b[i:])
		if r == utf8.RuneError && n == 1 {
			return i
		}
		i += n
	}
	return len(b)
}

// shortJSON quotes a JSON value's text for a message, a string's without
// its JSON quotes, cut after 40 bytes.
func shortJSON(b []byte) string {
	s := string(b)
	if len(s) >= 2 && s[0] == '"' && s[len(s)-1] == '"' {
		s = s[1 : len(s)-1]
	}
	if len(s) > 40 {
		s = s[:40] + "..."
	}
	return strconv.Quote(s)
}

// jsonValue turns a JSON property (decoded with numbers as json.Number)
// into a table value: whole numbers int64, other numbers float64, objects
// and arrays their JSON text (numbers as written). A whole number beyond
// int64, which a float64 would round, stays text as written, as a CSV
// cell does (12345678901234567890 is "12345678901234567890"); a number
// beyond float64's range is an error.
func jsonValue(v any) (any, error) {
	switch x := v.(type) {
	case json.Number:
		s := string(x)
		if n, err := strconv.ParseInt(s, 10, 64); err == nil {
			return n, nil
		} else if errors.Is(err, strconv.ErrRange) {
			return s, nil
		}
		f, err := strconv.ParseFloat(s, 64)
		if err != nil || f == 0 && strings.ContainsAny(strings.FieldsFunc(s, func(r rune) bool { return r == 'e' || r == 'E' })[0], "123456789") {
			return nil, fmt.Errorf("the number %s is beyond what a float64 holds: write it as a string (\"%s\") to keep it", s, s)
		}
		return f, nil
	case map[string]any, []any:
		b, _ := json.Marshal(x)
		return string(b), nil
	}
	return v, nil
}

// checkUTF8 reports text that is not UTF-8 in the GeoJSON document b read
// from path, naming the feature (from 1) and property that holds it.
func checkUTF8(path string, b []byte, features []json.RawMessage) error {
	if utf8.Valid(b) {
		return nil
	}
	for i, raw := range features {
		if err := checkFeatureUTF8(raw); err != nil {
			return fmt.Errorf("%s: feature %d: %w", path, i+1, err)
		}
	}
	return fmt.Errorf("%s: not UTF-8 text at byte %d (convert the file to UTF-8)", path, invalidAt(b))
}
