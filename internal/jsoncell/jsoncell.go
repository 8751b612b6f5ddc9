// Package jsoncell spells the floats JSON has no numbers for, the same in
// every JSON the worker writes (query --json, jobs --json, serve's
// /api/data): NaN as "NaN", +Inf as "Infinity" and -Inf as "-Infinity",
// the strings JavaScript's String() and Python's json module use for them.
// encoding/json refuses such a float with "unsupported value".
package jsoncell

import "math"

// Float returns x, or for NaN and ±Inf its name as a string (see the
// package comment).
func Float(x float64) any {
	switch {
	case math.IsNaN(x):
		return "NaN"
	case math.IsInf(x, 1):
		return "Infinity"
	case math.IsInf(x, -1):
		return "-Infinity"
	}
	return x
}
