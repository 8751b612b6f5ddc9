package csvtext

import (
	"math"
	"reflect"
	"strconv"
	"strings"
	"testing"
)

func TestInferLeadingZerosStayText(t *testing.T) {
	for _, c := range []struct {
		cells []string
		want  []any
	}{
		{[]string{"007", "010", "123"}, []any{"007", "010", "123"}},
		{[]string{"123", "007"}, []any{"123", "007"}},
		{[]string{"1.5", "-007"}, []any{"1.5", "-007"}},
		{[]string{"00.5", "1"}, []any{"00.5", "1"}},
		{[]string{"0", "10", ""}, []any{int64(0), int64(10), nil}},
		{[]string{"0.5", "0", "-0"}, []any{0.5, 0.0, math.Copysign(0, -1)}},
		{[]string{"0e3", "12"}, []any{0.0, 12.0}},
		{[]string{"12345678901234567890"}, []any{"12345678901234567890"}},
	} {
		got := Infer(c.cells)
		if !reflect.DeepEqual(got, c.want) {
			t.Errorf("Infer(%q) = %#v, want %#v", c.cells, got, c.want)
		}
	}
}

// FuzzInfer: a cell typed as a whole number is the number as written
// (bar a "+"), and a cell with a leading zero is never a number.
func FuzzInfer(f *testing.F) {
	for _, s := range []string{"007", "0", "0.5", "-010", "+7", "1e5", "nan", "12345678901234567890", "00", "0x10"} {
		f.Add(s, "1")
	}
	f.Fuzz(func(t *testing.T, a, b string) {
		got := Infer([]string{a, b})
		for i, v := range []string{a, b} {
			switch x := got[i].(type) {
			case int64:
				if strconv.FormatInt(x, 10) != strings.TrimPrefix(v, "+") {
					t.Fatalf("%q read as %d", v, x)
				}
			case float64:
				if leadingZeroRE.MatchString(v) {
					t.Fatalf("%q read as the number %v", v, x)
				}
			case string:
				if x != v {
					t.Fatalf("%q read as %q", v, x)
				}
			case nil:
				if v != "" {
					t.Fatalf("%q read as nil", v)
				}
			}
		}
	})
}
