// Package udpjob builds openEO batch jobs from a parameterized process
// definition (a user-defined process: id, parameters, process_graph) and
// the rows of a job table: the Go counterpart of the openEO Python
// client's ProcessBasedJobCreator (see JobCreator).
//
// The definition is a local file (Load, Parse), a user-defined process
// stored on the back-end, or a public document at a URL. A local
// definition is inlined: its {"from_parameter": NAME} references are
// replaced by the row's values, in child graphs (callbacks) too, so a
// definition parameter must not share its name with a callback parameter
// it does not mean (such as "data" or "x" of a reducer). A stored or
// remote process is referenced by a single node instead, and the back-end
// resolves it.
//
// Values are typed by each parameter's JSON Schema and checked against it
// (github.com/santhosh-tekuri/jsonschema/v6, with openEO's subtypes
// bounding-box, geojson and temporal-interval made explicit). A row that
// cannot be made into a job gives a *RowError naming row, column and
// reason.
package udpjob

import (
	"bytes"
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"maps"
	"os"
	"reflect"
	"regexp"
	"slices"
	"strings"

	"github.com/openeo-batch/worker/driver"
	"github.com/openeo-batch/worker/remote"
)

// Parameter is one parameter of a process definition.
type Parameter struct {
	Name        string          `json:"name"`
	Description string          `json:"description"`
	Schema      json.RawMessage `json:"schema"`
	Optional    bool            `json:"optional"`
	// Default is the JSON default value; nil when the definition has none.
	Default json.RawMessage `json:"default"`
}

// HasDefault reports whether the definition gives p a default (null counts).
func (p Parameter) HasDefault() bool { return p.Default != nil }

// Definition is a parameterized process.
type Definition struct {
	ID           string         `json:"id"`
	Summary      string         `json:"summary"`
	Description  string         `json:"description"`
	Parameters   []Parameter    `json:"parameters"`
	ProcessGraph map[string]any `json:"process_graph"`

	// schemas are the parameters' compiled schemas, set by Parse.
	schemas []*schema
}

var nameRE = regexp.MustCompile(`^\w+$`)

// DefinitionError says a process definition cannot be had: the local
// file is not there or is no definition, the namespace URL or the
// back-end says there is no such process (404), or the document it sends
// is no definition. The user's input is at fault, not a back-end.
type DefinitionError struct {
	Source string // the file, URL or stored process, as a message names it
	Err    error  // the reason
}

func (e *DefinitionError) Error() string { return e.Source + ": " + e.Err.Error() }

// Unwrap returns the reason.
func (e *DefinitionError) Unwrap() error { return e.Err }

// Load reads and checks the process definition in the JSON file path.
// Every error is a *DefinitionError naming the file.
func Load(path string) (*Definition, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		var pe *fs.PathError
		if errors.As(err, &pe) {
			err = pe.Err // the error names the file already
		}
		return nil, &DefinitionError{Source: path, Err: err}
	}
	d, err := Parse(b)
	if err != nil {
		return nil, &DefinitionError{Source: path, Err: err}
	}
	return d, nil
}

// errNotObject is Parse's error for JSON that is not an object.
var errNotObject = errors.New("not a process definition: want a JSON object with process_graph")

// Parse reads and checks a process definition.
func Parse(data []byte) (*Definition, error) {
	var raw struct {
		Definition
		Parameters []json.RawMessage `json:"parameters"`
	}
	if t := bytes.TrimSpace(data); len(t) > 0 && t[0] != '{' && json.Valid(t) {
		return nil, errNotObject
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber()
	if err := dec.Decode(&raw); err != nil {
		return nil, fmt.Errorf("not a JSON process definition: %w", jsonReason(err))
	}
	if dec.More() {
		return nil, errors.New("not a JSON process definition: data after the document")
	}
	d := raw.Definition
	d.Parameters = nil
	for i, pr := range raw.Parameters {
		var p Parameter
		if err := json.Unmarshal(pr, &p); err != nil {
			return nil, fmt.Errorf("parameters[%d]: %w", i, jsonReason(err))
		}
		// Tell an absent default from "default": null.
		var keys map[string]json.RawMessage
		json.Unmarshal(pr, &keys)
		if v, ok := keys["default"]; ok {
			p.Default = v
		} else {
			p.Default = nil
		}
		d.Parameters = append(d.Parameters, p)
	}
	if err := d.check(); err != nil {
		return nil, err
	}
	schemas, err := d.compiledSchemas()
	if err != nil {
		return nil, err
	}
	d.schemas = schemas
	return &d, nil
}

func (d *Definition) check() error {
	if d.ID != "" && !nameRE.MatchString(d.ID) {
		return fmt.Errorf("id %q: want letters, digits and underscores", d.ID)
	}
	seen := map[string]bool{}
	for i, p := range d.Parameters {
		if !nameRE.MatchString(p.Name) {
			return fmt.Errorf("parameters[%d].name %q: want letters, digits and underscores", i, p.Name)
		}
		if seen[p.Name] {
			return fmt.Errorf("parameters[%d]: parameter %q is declared twice", i, p.Name)
		}
		seen[p.Name] = true
	}
	if err := checkGraph(d.ProcessGraph, "process_graph"); err != nil {
		return err
	}
	return nil
}

// checkGraph checks the nodes of a (child) process graph.
func checkGraph(g map[string]any, where string) error {
	if len(g) == 0 {
		return fmt.Errorf("%s: missing or empty", where)
	}
	results := 0
	for _, id := range slices.Sorted(maps.Keys(g)) {
		node, ok := g[id].(map[string]any)
		if !ok {
			return fmt.Errorf("%s.%s: a node must be an object", where, id)
		}
		pid, _ := node["process_id"].(string)
		if !nameRE.MatchString(pid) {
			return fmt.Errorf("%s.%s.process_id: missing or not a process name", where, id)
		}
		args, ok := node["arguments"].(map[string]any)
		if !ok {
			return fmt.Errorf("%s.%s.arguments: missing or not an object", where, id)
		}
		if r, _ := node["result"].(bool); r {
			results++
		}
		if err := checkChildren(args, where+"."+id+".arguments"); err != nil {
			return err
		}
	}
	if results != 1 {
		return fmt.Errorf("%s: %d nodes have \"result\": true, want exactly one", where, results)
	}
	return nil
}

func checkChildren(v any, where string) error {
	switch x := v.(type) {
	case map[string]any:
		if pg, ok := x["process_graph"]; ok {
			g, ok := pg.(map[string]any)
			if !ok {
				return fmt.Errorf("%s.process_graph: not an object", where)
			}
			return checkGraph(g, where+".process_graph")
		}
		for _, k := range slices.Sorted(maps.Keys(x)) {
			if err := checkChildren(x[k], where+"."+k); err != nil {
				return err
			}
		}
	case []any:
		for i, e := range x {
			if err := checkChildren(e, fmt.Sprintf("%s[%d]", where, i)); err != nil {
				return err
			}
		}
	}
	return nil
}

// CheckColumns reports an error naming every required parameter that has
// no default and no column of the same name among columns: no row could
// fill it.
func (d *Definition) CheckColumns(columns []string) error {
	var missing []string
	for _, p := range d.Parameters {
		if !p.Optional && !p.HasDefault() && !slices.Contains(columns, p.Name) {
			missing = append(missing, p.Name)
		}
	}
	if len(missing) > 0 {
		return fmt.Errorf("required parameter %s has no default and the table has no column of that name (columns: %s)",
			strings.Join(quoteAll(missing), ", "), strings.Join(columns, ", "))
	}
	return nil
}

// Values returns the value of every parameter for a row, typed by its
// schema (see JobCreator): the row's column of the same name when it has a
// value, else the definition's default. Optional parameters without either
// are null, so that an inlined graph has no reference left. A required
// parameter with neither, or a value that does not fit the schema, is a
// *RowError naming the column.
func (d *Definition) Values(row map[string]any) (map[string]any, error) {
	vals, _, err := d.arguments(driver.Job{Data: row}, nil, nil, true)
	if err != nil {
		return nil, err
	}
	return vals, nil
}

func quoteAll(s []string) []string {
	out := make([]string, len(s))
	for i, v := range s {
		out[i] = fmt.Sprintf("%q", v)
	}
	return out
}

// schemas returns the compiled schema of each parameter.
func (d *Definition) compiledSchemas() ([]*schema, error) {
	if d.schemas != nil {
		return d.schemas, nil
	}
	out := make([]*schema, len(d.Parameters))
	for i, p := range d.Parameters {
		s, err := compileSchema(p.Schema)
		if err != nil {
			return nil, fmt.Errorf("parameters[%d] (%q).schema: %w", i, p.Name, err)
		}
		out[i] = s
	}
	return out, nil
}

// Graph returns a copy of the process graph with every
// {"from_parameter": NAME} of a definition parameter replaced by its value.
func (d *Definition) Graph(vals map[string]any) map[string]any {
	return substitute(d.ProcessGraph, vals).(map[string]any)
}

func substitute(v any, vals map[string]any) any {
	switch x := v.(type) {
	case map[string]any:
		if name, ok := x["from_parameter"].(string); ok && len(x) == 1 {
			if val, ok := vals[name]; ok {
				return val
			}
		}
		out := make(map[string]any, len(x))
		for k, e := range x {
			out[k] = substitute(e, vals)
		}
		return out
	case []any:
		out := make([]any, len(x))
		for i, e := range x {
			out[i] = substitute(e, vals)
		}
		return out
	}
	return v
}

// Job builds the batch job for a row. Its title is the row's "title"
// column when there is one, else "<id> row <key>".
func (d *Definition) Job(row driver.Job) (*remote.JobRequest, error) {
	if err := checkJobText(row); err != nil {
		return nil, err
	}
	vals, _, err := d.arguments(row, nil, nil, true)
	if err != nil {
		return nil, err
	}
	title, _ := row.Data["title"].(string)
	if title == "" {
		title = fmt.Sprintf("%s row %d", cmp.Or(d.ID, "job"), row.Key)
	}
	return &remote.JobRequest{
		Title:       title,
		Description: d.Summary,
		Process:     remote.Process{ProcessGraph: d.Graph(vals)},
	}, nil
}

// StartJob creates the job of a row on conn. It has the signature of
// worker.StartJobFunc.
func (d *Definition) StartJob(ctx context.Context, row driver.Job, conn *remote.Client) (string, error) {
	req, err := d.Job(row)
	if err != nil {
		return "", err
	}
	return conn.CreateJob(ctx, req)
}

// jsonReason words a JSON decoding error without Go's type names: a value
// of the wrong JSON type names the field and the type wanted.
func jsonReason(err error) error {
	var te *json.UnmarshalTypeError
	if !errors.As(err, &te) {
		return err
	}
	want := "a JSON " + jsonTypeName(te.Type.Kind())
	if te.Field == "" {
		return fmt.Errorf("want %s, got a JSON %s", want, te.Value)
	}
	return fmt.Errorf("%s: want %s, got a JSON %s", te.Field, want, te.Value)
}

func jsonTypeName(k reflect.Kind) string {
	switch k {
	case reflect.String:
		return "string"
	case reflect.Bool:
		return "boolean"
	case reflect.Slice, reflect.Array:
		return "array"
	case reflect.Map, reflect.Struct:
		return "object"
	case reflect.Interface:
		return "value"
	}
	return "number"
}
