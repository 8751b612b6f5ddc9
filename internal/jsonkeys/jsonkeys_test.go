package jsonkeys

import (
	"slices"
	"testing"
)

func TestObject(t *testing.T) {
	for in, want := range map[string][]string{
		`{"b": 1, "a": {"x": [1, {"y": 2}]}, "c": null}`: {"b", "a", "c"},
		`{}`:                nil,
		`[1, 2]`:            nil,
		`"text"`:            nil,
		`{"b": 1, "a": [1,`: {"b", "a"},
		`{"k": 1, "k": 2}`:  {"k", "k"},
		``:                  nil,
	} {
		if got := Object([]byte(in)); !slices.Equal(got, want) {
			t.Errorf("Object(%q) = %q, want %q", in, got, want)
		}
	}
}
