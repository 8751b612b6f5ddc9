package udpjob

import (
	"encoding/json"
	"fmt"
	"maps"
	"math"
	"slices"
	"strconv"
	"strings"
	"unicode/utf8"
)

// pyFloat writes f as Python's repr(float) does: the shortest text that
// reads back as f, always with a "." or an exponent ("1.0", "2020.0",
// "1e-07", "1e+16"), so that JSON readers see a decimal, not an integer.
// f must be finite.
func pyFloat(f float64) string {
	e := strconv.FormatFloat(f, 'e', -1, 64) // d.ddde±XX
	mant, expS, _ := strings.Cut(e, "e")
	exp, _ := strconv.Atoi(expS)
	if exp < -4 || exp >= 16 {
		sign := "+"
		if exp < 0 {
			sign, exp = "-", -exp
		}
		return fmt.Sprintf("%se%s%02d", mant, sign, exp)
	}
	s := strconv.FormatFloat(f, 'f', -1, 64)
	if !strings.ContainsAny(s, ".") {
		s += ".0"
	}
	return s
}

// isFloatLiteral reports whether a JSON number literal is a decimal (has a
// fraction or an exponent) rather than an integer.
func isFloatLiteral(n json.Number) bool { return strings.ContainsAny(string(n), ".eE") }

// pyRepr writes v, a JSON value of this package (json.Number, string,
// bool, nil, map[string]any, []any), roughly as Python's repr writes the
// same value: for the default title and description of a job, as the
// Python client makes them. Map keys are sorted; order gives the keys to
// write first, in that order (the definition's parameters).
func pyRepr(v any, order []string) string {
	var b strings.Builder
	writeRepr(&b, v, order)
	return b.String()
}

func writeRepr(b *strings.Builder, v any, order []string) {
	switch x := v.(type) {
	case nil:
		b.WriteString("None")
	case bool:
		if x {
			b.WriteString("True")
		} else {
			b.WriteString("False")
		}
	case json.Number:
		b.WriteString(string(x))
	case int64:
		b.WriteString(strconv.FormatInt(x, 10))
	case float64:
		if math.IsNaN(x) || math.IsInf(x, 0) {
			b.WriteString(strings.ToLower(strconv.FormatFloat(x, 'f', -1, 64)))
		} else {
			b.WriteString(pyFloat(x))
		}
	case string:
		b.WriteString(pyString(x))
	case []any:
		b.WriteByte('[')
		for i, e := range x {
			if i > 0 {
				b.WriteString(", ")
			}
			writeRepr(b, e, nil)
		}
		b.WriteByte(']')
	case map[string]any:
		keys := make([]string, 0, len(x))
		for _, k := range order {
			if _, ok := x[k]; ok {
				keys = append(keys, k)
			}
		}
		for _, k := range slices.Sorted(maps.Keys(x)) {
			if !slices.Contains(keys, k) {
				keys = append(keys, k)
			}
		}
		b.WriteByte('{')
		for i, k := range keys {
			if i > 0 {
				b.WriteString(", ")
			}
			b.WriteString(pyString(k))
			b.WriteString(": ")
			writeRepr(b, x[k], nil)
		}
		b.WriteByte('}')
	default:
		fmt.Fprint(b, x)
	}
}

// pyString quotes s as Python's repr(str): single quotes, or double quotes
// when s holds a ' and no ", backslash escapes for the quote, backslash and
// control characters; other characters as they are.
func pyString(s string) string {
	q := byte('\'')
	if strings.Contains(s, "'") && !strings.Contains(s, `"`) {
		q = '"'
	}
	var b strings.Builder
	b.WriteByte(q)
	for _, r := range s {
		switch {
		case r == rune(q) || r == '\\':
			b.WriteByte('\\')
			b.WriteRune(r)
		case r == '\n':
			b.WriteString(`\n`)
		case r == '\r':
			b.WriteString(`\r`)
		case r == '\t':
			b.WriteString(`\t`)
		case r < 0x20 || r == 0x7f:
			fmt.Fprintf(&b, `\x%02x`, r)
		default:
			b.WriteRune(r)
		}
	}
	b.WriteByte(q)
	return b.String()
}

// truncate cuts s to n code points as the Python client's repr_truncate
// does: its first n-3 code points and "..." when it is longer.
func truncate(s string, n int) string {
	if utf8.RuneCountInString(s) <= n {
		return s
	}
	r := []rune(s)
	return string(r[:n-3]) + "..."
}
