package jsoncell

import (
	"encoding/json"
	"math"
	"testing"
)

func TestFloat(t *testing.T) {
	for x, want := range map[float64]string{math.NaN(): `"NaN"`, math.Inf(1): `"Infinity"`, math.Inf(-1): `"-Infinity"`, 1.5: `1.5`, 0: `0`} {
		b, err := json.Marshal(Float(x))
		if err != nil || string(b) != want {
			t.Errorf("Float(%v) encodes as %s, %v; want %s", x, b, err, want)
		}
	}
}
