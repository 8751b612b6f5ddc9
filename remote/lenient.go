package remote

import (
	"bytes"
	"encoding/json"
	"iter"
	"maps"
	"slices"
)

// Documents from back-ends are read field by field (issue 10): a field of
// an unexpected type (costs as a string, usage as a list, a usage value
// that is not a number) is recorded as absent and named in the document's
// Odd list, and never costs the rest of the document. JSON null is absent
// too, never an invented zero.

// fields reads a JSON object field by field, noting the names of fields
// it could not read in odd (with prefix).
type fields struct {
	raw    map[string]json.RawMessage
	prefix string
	odd    *[]string
}

// object splits b into its fields; ok is false when b is not a JSON object.
func object(b []byte, prefix string, odd *[]string) (fields, bool) {
	var raw map[string]json.RawMessage
	if err := json.Unmarshal(b, &raw); err != nil || raw == nil {
		return fields{}, false
	}
	return fields{raw: raw, prefix: prefix, odd: odd}, true
}

// document starts reading the document b: an error when b is not JSON;
// ok false, and odd ["(not an object)"], when it is not an object.
func document(b []byte, odd *[]string) (f fields, ok bool, err error) {
	if !json.Valid(b) {
		var v any
		return fields{}, false, json.Unmarshal(b, &v) // the syntax error
	}
	if f, ok = object(b, "", odd); !ok {
		*odd = []string{"(not an object)"}
	}
	return f, ok, nil
}

// field decodes the field key into dst, leaving dst as it is when the field
// is absent or null, and noting key as odd when it has another type.
func field[T any](f fields, key string, dst *T) {
	v, ok := f.raw[key]
	if !ok || isNull(v) {
		return
	}
	var t T
	if err := json.Unmarshal(v, &t); err != nil {
		*f.odd = append(*f.odd, f.prefix+key)
		return
	}
	*dst = t
}

// members yields, in key order, the members of the object field key that
// are objects themselves (usage metrics, assets). The field, or a member,
// of another type is noted as odd.
func (f fields) members(key string) iter.Seq2[string, fields] {
	return func(yield func(string, fields) bool) {
		v, ok := f.raw[key]
		if !ok || isNull(v) {
			return
		}
		obj, ok := object(v, f.prefix+key+".", f.odd)
		if !ok {
			*f.odd = append(*f.odd, f.prefix+key)
			return
		}
		for _, name := range slices.Sorted(maps.Keys(obj.raw)) {
			m, ok := object(obj.raw[name], obj.prefix+name+".", f.odd)
			if !ok {
				*f.odd = append(*f.odd, obj.prefix+name)
				continue
			}
			if !yield(name, m) {
				return
			}
		}
	}
}

func isNull(v json.RawMessage) bool { return bytes.Equal(bytes.TrimSpace(v), []byte("null")) }

// UnmarshalJSON reads a job document field by field (see Odd). It fails
// only when b is not JSON at all; a JSON value that is not an object gives
// an empty Job with Odd ["(not an object)"].
func (j *Job) UnmarshalJSON(b []byte) error {
	*j = Job{}
	f, ok, err := document(b, &j.Odd)
	if !ok {
		return err
	}
	field(f, "id", &j.ID)
	field(f, "status", &j.Status)
	field(f, "created", &j.Created)
	field(f, "updated", &j.Updated)
	field(f, "title", &j.Title)
	field(f, "description", &j.Description)
	field(f, "progress", &j.Progress)
	field(f, "costs", &j.Costs)
	field(f, "process", &j.Process)
	field(f, "links", &j.Links)
	for name, m := range f.members("usage") {
		var value *float64
		var metric Metric
		field(m, "value", &value)
		field(m, "unit", &metric.Unit)
		if value == nil {
			if v, had := m.raw["value"]; !had || isNull(v) {
				j.Odd = append(j.Odd, "usage."+name+".value")
			}
			continue // no number: no metric, rather than an invented 0
		}
		metric.Value = *value
		if j.Usage == nil {
			j.Usage = map[string]Metric{}
		}
		j.Usage[name] = metric
	}
	return nil
}

// UnmarshalJSON reads a result document field by field, and each asset
// on its own: an asset that cannot be read is left out and named in Odd
// ("assets.<key>"), a field of it that cannot be read is absent.
func (r *Results) UnmarshalJSON(b []byte) error {
	*r = Results{}
	f, ok, err := document(b, &r.Odd)
	if !ok {
		return err
	}
	field(f, "type", &r.Type)
	field(f, "id", &r.ID)
	field(f, "links", &r.Links)
	for key, af := range f.members("assets") {
		var a Asset
		field(af, "href", &a.Href)
		field(af, "title", &a.Title)
		field(af, "type", &a.Type)
		field(af, "roles", &a.Roles)
		field(af, "file:size", &a.FileSize)
		field(af, "file:checksum", &a.FileChecksum)
		if r.Assets == nil {
			r.Assets = map[string]Asset{}
		}
		r.Assets[key] = a
	}
	return nil
}
