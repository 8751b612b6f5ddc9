// Package csvtext reads and writes the cells of CSV job tables as the
// openEO Python client (pandas) does: records read exactly as written,
// types inferred per column, values formatted as pandas writes them. The
// CSV store (driver/csvfile) and the conversions (tableconv) share it.
package csvtext

import (
	"math"
	"regexp"
	"strconv"
	"strings"
)

var (
	intRE   = regexp.MustCompile(`^[-+]?(0|[1-9][0-9]*)$`)
	floatRE = regexp.MustCompile(`^[-+]?([0-9]+\.?[0-9]*|\.[0-9]+)([eE][-+]?[0-9]+)?$|^[-+]?(inf|nan)$`)
	// leadingZeroRE matches a number written with a zero before another
	// digit ("007", "-010", "00.5"): a code, not a quantity.
	leadingZeroRE = regexp.MustCompile(`^[-+]?0[0-9]`)
)

// Infer types the cells of one column: all whole numbers without leading
// zeros give int64, all numbers float64 ("nan", "inf" and "-inf" too),
// anything else strings; empty cells are nil. One cell written with a
// leading zero ("007", "010", "00.5"; "0" and "0.5" are numbers) makes
// the whole column text, kept as written: such a cell is an identifier
// (a tile, a postal code), and as a number it would read back as 7 or
// 7.0. pandas, and so the openEO Python client, reads "007" as the
// number 7; here it stays "007". A whole number beyond int64 stays text
// too: a float64 would round it.
func Infer(cells []string) []any {
	kind, seen := 'i', false
	for _, v := range cells {
		if v == "" {
			continue
		}
		seen = true
		switch {
		case leadingZeroRE.MatchString(v):
			kind = 's'
		case intRE.MatchString(v):
			if _, err := strconv.ParseInt(v, 10, 64); err != nil {
				kind = 's' // beyond int64: as a float it would lose digits
			}
		case floatRE.MatchString(v):
			kind = 'f'
		default:
			kind = 's'
		}
		if kind == 's' {
			break
		}
	}
	if !seen {
		kind = 's'
	}
	out := make([]any, len(cells))
	for i, v := range cells {
		out[i] = convert(v, kind)
	}
	return out
}

func convert(v string, kind rune) any {
	if v == "" {
		return nil
	}
	switch kind {
	case 'i':
		if n, err := strconv.ParseInt(v, 10, 64); err == nil {
			return n
		}
	case 'f':
		if f, err := strconv.ParseFloat(v, 64); err == nil {
			return f
		}
	}
	return v
}

// FormatCell is Format for the values it knows: it reports false for any
// other, which Format would write as an empty cell.
func FormatCell(v any) (string, bool) {
	switch v.(type) {
	case nil, string, bool, int64, int, float64:
		return Format(v), true
	}
	return "", false
}

// Format writes a value as pandas writes it in a CSV file: floats with a
// decimal point ("2020.0"), infinities as inf and -inf, booleans as True
// and False, nil as empty. A NaN is written nan (pandas writes an empty
// cell, which would read back as nil): pandas reads it as NaN, Infer too.
// Values of any other type are written empty; Init refuses them.
func Format(v any) string {
	switch x := v.(type) {
	case nil:
		return ""
	case string:
		return x
	case bool:
		if x {
			return "True"
		}
		return "False"
	case int64:
		return strconv.FormatInt(x, 10)
	case int:
		return strconv.Itoa(x)
	case float64:
		switch {
		case math.IsNaN(x):
			return "nan" // not empty: a NaN is a value, not a missing one
		case math.IsInf(x, 1):
			return "inf"
		case math.IsInf(x, -1):
			return "-inf"
		}
		s := strconv.FormatFloat(x, 'f', -1, 64)
		if math.Abs(x) >= 1e16 || (x != 0 && math.Abs(x) < 1e-4) {
			s = strconv.FormatFloat(x, 'g', -1, 64)
		}
		if !strings.ContainsAny(s, ".eE") {
			s += ".0"
		}
		return s
	}
	return ""
}
