package udpjob

import (
	"bytes"
	"encoding/json"
	"fmt"

	"github.com/openeo-batch/worker/driver"
)

// RowError says why a row cannot be made into a job: the row's fault,
// never the back-end's. A manager that gets one from StartJob marks the
// row failed without counting it against the back-end (it has the method
// RowError, which the worker package looks for).
type RowError struct {
	Key       int64  // the row's key
	Column    string // the column at fault; "" when none is
	Parameter string // the parameter concerned; "" when none is
	Err       error  // the reason
}

func (e *RowError) Error() string {
	s := fmt.Sprintf("row %d", e.Key)
	if e.Column != "" {
		s += fmt.Sprintf(", column %q", e.Column)
	}
	if e.Parameter != "" && e.Parameter != e.Column {
		s += fmt.Sprintf(" (parameter %q)", e.Parameter)
	}
	return s + ": " + e.Err.Error()
}

// Unwrap returns the reason.
func (e *RowError) Unwrap() error { return e.Err }

// RowError marks the error as the row's fault (see worker.StartJobFunc).
func (e *RowError) RowError() bool { return true }

// decodeJSON reads a JSON value with its numbers as written.
func decodeJSON(raw []byte) (any, error) {
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		return nil, err
	}
	return v, nil
}

// empty reports whether a cell holds no value.
func empty(v any) bool {
	s, isString := v.(string)
	return v == nil || isString && s == ""
}

// arguments computes the value of every parameter for a row, in the
// Python client's order of precedence: the column colMap names for it (its
// own name when colMap has none) when the cell is not empty; else
// defaults[name]; else the definition's default; else, for an optional
// parameter, nothing (null when inline, so that an inlined graph keeps no
// reference); else a *RowError. order lists the names given values, in
// definition order.
func (d *Definition) arguments(row driver.Job, colMap map[string]string, defaults map[string]any, inline bool) (map[string]any, []string, error) {
	schemas, err := d.compiledSchemas()
	if err != nil {
		return nil, nil, err
	}
	vals := make(map[string]any, len(d.Parameters))
	var order []string
	for i, p := range d.Parameters {
		col := p.Name
		if c, ok := colMap[p.Name]; ok {
			col = c
		}
		cell, hasColumn := row.Data[col]
		switch {
		case !empty(cell):
			v, err := schemas[i].convert(cell)
			if err != nil {
				return nil, nil, &RowError{Key: row.Key, Column: col, Parameter: p.Name, Err: err}
			}
			vals[p.Name] = v
		case defaults != nil && hasKey(defaults, p.Name):
			vals[p.Name] = defaults[p.Name]
		case p.HasDefault():
			v, err := decodeJSON(p.Default)
			if err != nil {
				return nil, nil, fmt.Errorf("parameter %q: bad default: %w", p.Name, err)
			}
			vals[p.Name] = v
		case p.Optional:
			if !inline {
				continue
			}
			vals[p.Name] = nil
		case hasColumn:
			return nil, nil, &RowError{Key: row.Key, Column: col, Parameter: p.Name,
				Err: fmt.Errorf("empty, and required parameter %q has no default", p.Name)}
		default:
			return nil, nil, &RowError{Key: row.Key, Parameter: p.Name,
				Err: fmt.Errorf("required parameter %q has no column and no default", p.Name)}
		}
		order = append(order, p.Name)
	}
	return vals, order, nil
}

func hasKey(m map[string]any, k string) bool {
	_, ok := m[k]
	return ok
}
