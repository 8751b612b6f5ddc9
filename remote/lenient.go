package remote

import (
	"bytes"
	"encoding/json"
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

func isNull(v json.RawMessage) bool { return bytes.Equal(bytes.TrimSpace(v), []byte("null")) }

// UnmarshalJSON reads a job document field by field (see Odd). It fails
// only when b is not JSON at all; a JSON value that is not an object gives
// an empty Job with Odd ["(not an object)"].
func (j *Job) UnmarshalJSON(b []byte) error {
	if !json.Valid(b) {
		var v any
		return json.Unmarshal(b, &v) // the syntax error
	}
	*j = Job{}
	f, ok := object(b, "", &j.Odd)
	if !ok {
		j.Odd = []string{"(not an object)"}
		return nil
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
	if v, ok := f.raw["usage"]; ok && !isNull(v) {
		u, ok := object(v, "usage.", &j.Odd)
		if !ok {
			j.Odd = append(j.Odd, "usage")
		}
		for _, name := range slices.Sorted(maps.Keys(u.raw)) {
			m, ok := object(u.raw[name], "usage."+name+".", &j.Odd)
			if !ok {
				j.Odd = append(j.Odd, "usage."+name)
				continue
			}
			var value *float64
			var metric Metric
			field(m, "value", &value)
			field(m, "unit", &metric.Unit)
			if value == nil {
				if _, had := m.raw["value"]; !had || isNull(m.raw["value"]) {
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
	}
	return nil
}

// UnmarshalJSON reads a result document field by field, and each asset
// on its own: an asset that cannot be read is left out and named in Odd
// ("assets.<key>"), a field of it that cannot be read is absent.
func (r *Results) UnmarshalJSON(b []byte) error {
	if !json.Valid(b) {
		var v any
		return json.Unmarshal(b, &v)
	}
	*r = Results{}
	f, ok := object(b, "", &r.Odd)
	if !ok {
		r.Odd = []string{"(not an object)"}
		return nil
	}
	field(f, "type", &r.Type)
	field(f, "id", &r.ID)
	field(f, "links", &r.Links)
	if v, ok := f.raw["assets"]; ok && !isNull(v) {
		as, ok := object(v, "assets.", &r.Odd)
		if !ok {
			r.Odd = append(r.Odd, "assets")
		}
		for _, key := range slices.Sorted(maps.Keys(as.raw)) {
			af, ok := object(as.raw[key], "assets."+key+".", &r.Odd)
			if !ok {
				r.Odd = append(r.Odd, "assets."+key)
				continue
			}
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
	}
	return nil
}
