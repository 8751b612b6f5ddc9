package query

import (
	"bytes"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"math/big"
	"strconv"
	"strings"
	"time"

	duckdbgo "github.com/duckdb/duckdb-go/v2"

	"github.com/openeo-batch/worker/internal/jsoncell"
)

// JSONValue returns v, a value of a Result or a table cell, as a value
// encoding/json writes faithfully, as Write's JSON format does:
//   - DECIMAL (duckdb.Decimal) and HUGEINT/UHUGEINT (*big.Int) become a
//     json.Number with their exact digits ("12.30", not a float's 12.3);
//   - a NaN or infinite float becomes the string "NaN", "Infinity" or
//     "-Infinity" (see package internal/jsoncell), which JSON has no
//     number for;
//   - INTERVAL (duckdb.Interval) becomes ISO 8601 duration text (see
//     IntervalText);
//   - lists ([]any), structs (map[string]any), MAPs (duckdb.OrderedMap,
//     an object keyed by Cell of the key, in the map's order) and UNIONs
//     (their value) have their elements turned alike;
//   - bytes become a string, as in Result;
//   - nil, bools, integers, strings and times stay as they are.
func JSONValue(v any) any {
	switch x := v.(type) {
	case nil, bool, string, int, int8, int16, int32, int64, uint, uint8, uint16, uint32, uint64, time.Time, json.Number:
		return x
	case float64:
		return jsoncell.Float(x)
	case float32:
		if f := jsoncell.Float(float64(x)); f != float64(x) {
			return f
		}
		return x
	case []byte:
		return string(x)
	case duckdbgo.Decimal:
		return json.Number(DecimalText(x))
	case *big.Int:
		if x == nil {
			return nil
		}
		return json.Number(x.String())
	case duckdbgo.Interval:
		return IntervalText(x)
	case duckdbgo.UUID:
		return x.String()
	case duckdbgo.Union:
		return JSONValue(x.Value)
	case []any:
		out := make([]any, len(x))
		for i, e := range x {
			out[i] = JSONValue(e)
		}
		return out
	case map[string]any:
		out := make(map[string]any, len(x))
		for k, e := range x {
			out[k] = JSONValue(e)
		}
		return out
	case duckdbgo.OrderedMap:
		o := Object{Keys: []string{}, Values: []any{}}
		vals := x.Values()
		for i, k := range x.Keys() {
			o.Keys = append(o.Keys, Cell(k))
			o.Values = append(o.Values, vals[i])
		}
		return o
	case duckdbgo.Map:
		o := Object{}
		for k, e := range x {
			o.Keys = append(o.Keys, Cell(k))
			o.Values = append(o.Values, e)
		}
		return o
	case Object:
		return x
	case fmt.Stringer:
		return x.String()
	}
	return fmt.Sprint(v) // a kind of value this list does not know: as text, never a failure
}

// Object is a JSON object whose keys stand in a given order (encoding/json
// sorts the keys of a map): the columns of a row in SELECT order. Values
// are written as JSONValue turns them; Keys and Values are as long.
type Object struct {
	Keys   []string
	Values []any
}

// MarshalJSON writes the object with its keys in order. A key given twice
// (SELECT 1 AS a, 2 AS a) is written twice, so that no value is dropped.
func (o Object) MarshalJSON() ([]byte, error) {
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	b.WriteByte('{')
	for i, k := range o.Keys {
		if i > 0 {
			b.WriteByte(',')
		}
		if err := enc.Encode(k); err != nil {
			return nil, err
		}
		b.Truncate(b.Len() - 1) // Encode's newline
		b.WriteByte(':')
		var v any
		if i < len(o.Values) {
			v = o.Values[i]
		}
		if err := enc.Encode(JSONValue(v)); err != nil {
			return nil, fmt.Errorf("key %q: %w", k, err)
		}
		b.Truncate(b.Len() - 1)
	}
	b.WriteByte('}')
	return b.Bytes(), nil
}

// DecimalText writes a DECIMAL with all the digits of its scale, as
// DuckDB shows it: DECIMAL(10,2) 1230 is "12.30", not "12.3".
func DecimalText(d duckdbgo.Decimal) string {
	if d.Value == nil {
		return "0"
	}
	digits := new(big.Int).Abs(d.Value).String()
	sign := ""
	if d.Value.Sign() < 0 {
		sign = "-"
	}
	scale := int(d.Scale)
	if scale == 0 {
		return sign + digits
	}
	if len(digits) <= scale {
		digits = strings.Repeat("0", scale-len(digits)+1) + digits
	}
	return sign + digits[:len(digits)-scale] + "." + digits[len(digits)-scale:]
}

// IntervalText writes an INTERVAL as an ISO 8601 duration, in the form
// PostgreSQL's intervalstyle iso_8601 has: PnYnMnDTnHnMnS with the parts
// that are not zero, each with its own sign (DuckDB keeps months, days and
// microseconds apart, and each may be negative), seconds with their
// fraction: 1 month 2 days 3.5 seconds is "P1M2DT3.5S", zero is "PT0S".
func IntervalText(i duckdbgo.Interval) string {
	var b strings.Builder
	b.WriteByte('P')
	part := func(n int64, unit byte) {
		if n != 0 {
			b.WriteString(strconv.FormatInt(n, 10))
			b.WriteByte(unit)
		}
	}
	part(int64(i.Months)/12, 'Y')
	part(int64(i.Months)%12, 'M')
	part(int64(i.Days), 'D')
	if i.Micros != 0 {
		b.WriteByte('T')
		us := i.Micros
		part(us/3_600_000_000, 'H')
		us %= 3_600_000_000
		part(us/60_000_000, 'M')
		us %= 60_000_000
		if us != 0 {
			s := strconv.FormatFloat(float64(us)/1e6, 'f', -1, 64)
			b.WriteString(s + "S")
		}
	}
	if b.Len() == 1 {
		return "PT0S"
	}
	return b.String()
}

// typed turns a value of a column whose DuckDB type the Go value does not
// tell into what it shows: a PostgreSQL NUMERIC, which comes as text, as
// a json.Number; a UUID, which DuckDB's database/sql driver
// hands over as 16 bytes like a BLOB, as its 36 characters; a DATE (a
// time.Time) as 2006-01-02, a TIME as 15:04:05 with its fraction.
func typed(v any, typ string) any {
	switch x := v.(type) {
	case []byte:
		if typ == "UUID" && len(x) == 16 {
			var u [36]byte
			hex.Encode(u[:], x[:4])
			u[8] = '-'
			hex.Encode(u[9:13], x[4:6])
			u[13] = '-'
			hex.Encode(u[14:18], x[6:8])
			u[18] = '-'
			hex.Encode(u[19:23], x[8:10])
			u[23] = '-'
			hex.Encode(u[24:], x[10:])
			return string(u[:])
		}
	case string:
		// PostgreSQL's NUMERIC comes as its text: a number, with its
		// digits, like DuckDB's DECIMAL ("NaN" stays text).
		if typ == "NUMERIC" && x != "" && (x[0] == '-' || x[0] >= '0' && x[0] <= '9') && json.Valid([]byte(x)) {
			return json.Number(x)
		}
	case time.Time:
		switch typ {
		case "DATE":
			return x.Format(time.DateOnly)
		case "TIME":
			return x.Format("15:04:05.999999")
		}
	}
	return v
}
