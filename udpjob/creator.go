package udpjob

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"
	"sync"
	"unicode/utf8"

	"github.com/openeo-batch/worker/driver"
	"github.com/openeo-batch/worker/remote"
)

// JobCreator makes one batch job per table row from a parameterized
// process: the Go counterpart of the openEO Python client's
// ProcessBasedJobCreator. Its StartJob has the signature of
// worker.StartJobFunc.
//
// The definition comes from one of three sources:
//   - Definition: a local definition, whose graph is inlined in each job
//     with the row's values in place of its parameters;
//   - ProcessID alone: a user-defined process stored on each back-end,
//     fetched once per back-end (GET /process_graphs/{id});
//   - Namespace (a URL), with or without ProcessID: a public definition,
//     fetched once, without credentials.
//
// For the last two each job's process graph is one node that references
// the process, {"process_id", "namespace" (when set), "arguments",
// "result": true}, as the Python client sends it, and the back-end
// resolves the definition.
//
// Each parameter takes, in this order: the row's column named by
// ParameterColumnMap (its own name when the map has no entry) when the
// cell is not empty; ParameterDefaults; the schema's default; nothing, for
// an optional parameter (left out of the arguments); else the row cannot
// be made into a job (a *RowError). When ParameterColumnMap is nil, a
// single parameter that takes GeoJSON is linked to the table's single
// geometry column (a column called "geometry", or whose cells are WKT).
// Values are typed by the parameter's schema and the cell: see
// WKTToGeoJSON; integers stay integers, floats are decimals ("1.0")
// except that an integral float for an integer-only parameter is an
// integer; JSON text and Python-repr text become objects and arrays where
// the schema wants them. Every value is checked against its schema.
//
// A JobCreator is safe for concurrent use once its fields are set.
type JobCreator struct {
	Definition *Definition
	ProcessID  string
	Namespace  string
	// ParameterColumnMap maps a parameter to the column that feeds it.
	ParameterColumnMap map[string]string
	// ParameterDefaults gives parameters a value for rows without one:
	// JSON values as encoding/json decodes them with UseNumber (use
	// DecodeDefault).
	ParameterDefaults map[string]any
	// JobOptions is sent as the job's job_options (executor memory and the
	// like); a row's job_options column (a JSON object) is merged over it.
	JobOptions map[string]any
	// Fetch configures the download of a remote definition (HTTP client,
	// retries); nil means defaults. Its token-free request is made by
	// remote.FetchDefinition.
	Fetch *remote.Options

	mu       sync.Mutex
	remote   *Definition
	stored   map[string]*storedDef // by back-end API URL
	geomCols []string              // guessed from the first row
	guessed  bool
}

type storedDef struct {
	mu  sync.Mutex
	def *Definition
}

// DecodeDefault reads a JSON value for ParameterDefaults.
func DecodeDefault(text string) (any, error) {
	v, err := parseJSONText(strings.TrimSpace(text))
	if err != nil {
		return nil, fmt.Errorf("not JSON: %w", err)
	}
	return v, nil
}

// inline reports whether jobs inline a local definition.
func (c *JobCreator) inline() bool { return c.Definition != nil }

// FromBackend reports whether the definition is a UDP stored on each
// back-end: it can be read only once connected.
func (c *JobCreator) FromBackend() bool { return c.Definition == nil && c.Namespace == "" }

func (c *JobCreator) checkSource() error {
	switch {
	case c.Definition != nil && (c.ProcessID != "" || c.Namespace != ""):
		return errors.New("a local definition excludes a process id and a namespace")
	case c.Definition == nil && c.ProcessID == "" && c.Namespace == "":
		return errors.New("no process: give a local definition, a process id, or a namespace URL")
	case c.Namespace != "" && !strings.HasPrefix(c.Namespace, "http://") && !strings.HasPrefix(c.Namespace, "https://"):
		return fmt.Errorf("namespace %q: only a URL of a process definition is supported", c.Namespace)
	}
	return nil
}

// RemoteDefinition fetches the definition at Namespace, once: later calls
// return the same.
func (c *JobCreator) RemoteDefinition(ctx context.Context) (*Definition, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.remote != nil {
		return c.remote, nil
	}
	raw, err := remote.FetchDefinition(ctx, c.Namespace, c.Fetch)
	if err != nil {
		if notFound(err) {
			return nil, &DefinitionError{Source: "process definition at " + c.Namespace, Err: err}
		}
		return nil, err
	}
	d, err := Parse(raw)
	if err != nil {
		return nil, &DefinitionError{Source: "process definition at " + c.Namespace, Err: err}
	}
	if c.ProcessID == "" && d.ID == "" {
		return nil, &DefinitionError{Source: "process definition at " + c.Namespace, Err: errors.New("it has no id: give the process id")}
	}
	c.remote = d
	return d, nil
}

// StoredDefinition fetches the UDP ProcessID from conn's back-end, once per
// back-end.
func (c *JobCreator) StoredDefinition(ctx context.Context, conn *remote.Client) (*Definition, error) {
	c.mu.Lock()
	if c.stored == nil {
		c.stored = map[string]*storedDef{}
	}
	e := c.stored[conn.URL()]
	if e == nil {
		e = &storedDef{}
		c.stored[conn.URL()] = e
	}
	c.mu.Unlock()
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.def != nil {
		return e.def, nil
	}
	raw, err := conn.ProcessGraph(ctx, c.ProcessID)
	if err != nil {
		if notFound(err) {
			return nil, &DefinitionError{Source: fmt.Sprintf("user-defined process %q", c.ProcessID), Err: err}
		}
		return nil, fmt.Errorf("user-defined process %q: %w", c.ProcessID, err)
	}
	d, err := Parse(raw)
	if err != nil {
		return nil, &DefinitionError{Source: fmt.Sprintf("user-defined process %q of %s", c.ProcessID, conn.URL()), Err: err}
	}
	e.def = d
	return d, nil
}

// DefinitionFor returns the definition jobs on conn use (conn may be nil
// unless FromBackend).
func (c *JobCreator) DefinitionFor(ctx context.Context, conn *remote.Client) (*Definition, error) {
	if err := c.checkSource(); err != nil {
		return nil, err
	}
	switch {
	case c.inline():
		return c.Definition, nil
	case c.Namespace != "":
		return c.RemoteDefinition(ctx)
	case conn == nil:
		return nil, errors.New("a stored user-defined process needs a back-end to read it from")
	default:
		return c.StoredDefinition(ctx, conn)
	}
}

// processID is the id jobs reference.
func (c *JobCreator) processID(d *Definition) string {
	if c.ProcessID != "" {
		return c.ProcessID
	}
	return d.ID
}

// Setup checks the creator's settings against a definition and a table's
// columns (nil: not known): the column map and defaults name parameters of
// the definition, mapped columns exist, defaults fit their schemas, and
// every required parameter can get a value from some row. The error
// describes the whole table, not a row.
func (c *JobCreator) Setup(d *Definition, columns []string) error {
	schemas, err := d.compiledSchemas()
	if err != nil {
		return err
	}
	names := make([]string, len(d.Parameters))
	for i, p := range d.Parameters {
		names[i] = p.Name
	}
	for _, k := range slices.Sorted(maps.Keys(c.ParameterColumnMap)) {
		col := c.ParameterColumnMap[k]
		if !slices.Contains(names, k) {
			return fmt.Errorf("column map: the process has no parameter %q (parameters: %s)", k, strings.Join(names, ", "))
		}
		if columns != nil && !slices.Contains(columns, col) {
			return fmt.Errorf("column map: parameter %q: the table has no column %q (columns: %s)", k, col, strings.Join(columns, ", "))
		}
	}
	for _, k := range slices.Sorted(maps.Keys(c.ParameterDefaults)) {
		i := slices.Index(names, k)
		if i < 0 {
			return fmt.Errorf("defaults: the process has no parameter %q (parameters: %s)", k, strings.Join(names, ", "))
		}
		if err := schemas[i].validate(c.ParameterDefaults[k]); err != nil {
			return fmt.Errorf("default of parameter %q: %w", k, err)
		}
	}
	if columns == nil {
		return nil
	}
	var missing []string
	for _, p := range d.Parameters {
		col := p.Name
		if m, ok := c.ParameterColumnMap[p.Name]; ok {
			col = m
		}
		if !p.Optional && !p.HasDefault() && !hasKey(c.ParameterDefaults, p.Name) && !slices.Contains(columns, col) &&
			!c.linkable(d, schemas, p.Name, columns) {
			missing = append(missing, p.Name)
		}
	}
	if len(missing) > 0 {
		return fmt.Errorf("required parameter %s has no default and the table has no column for it (columns: %s); map one with --param NAME=COLUMN or give --default NAME=JSON",
			strings.Join(quoteAll(missing), ", "), strings.Join(columns, ", "))
	}
	return nil
}

// linkable reports whether the GeoJSON parameter name would be linked to
// a geometry column of columns automatically.
func (c *JobCreator) linkable(d *Definition, schemas []*schema, name string, columns []string) bool {
	if c.ParameterColumnMap != nil {
		return false
	}
	i := slices.IndexFunc(d.Parameters, func(p Parameter) bool { return p.Name == name })
	if i < 0 || !schemas[i].geojson {
		return false
	}
	c.mu.Lock()
	cols, guessed := c.geomCols, c.guessed
	c.mu.Unlock()
	if !guessed {
		return slices.Contains(columns, "geometry")
	}
	return len(cols) > 0
}

// geometryColumns returns the geometry columns of the table, guessed once
// from the first row seen (as the Python client does): "geometry", and
// every column whose cell is WKT.
func (c *JobCreator) geometryColumns(row driver.Job) []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	if !c.guessed {
		for k, v := range row.Data {
			if k == "geometry" {
				c.geomCols = append(c.geomCols, k)
			} else if s, ok := v.(string); ok && looksLikeWKT(s) {
				if _, err := WKTToGeoJSON(s); err == nil {
					c.geomCols = append(c.geomCols, k)
				}
			}
		}
		slices.Sort(c.geomCols)
		c.guessed = true
	}
	return c.geomCols
}

// columnMap returns the column map for d: ParameterColumnMap when given,
// else the automatic link of GeoJSON parameters to geometry columns.
func (c *JobCreator) columnMap(d *Definition, row driver.Job) (map[string]string, error) {
	if c.ParameterColumnMap != nil {
		return c.ParameterColumnMap, nil
	}
	schemas, err := d.compiledSchemas()
	if err != nil {
		return nil, err
	}
	var geoParams []string
	for i, p := range d.Parameters {
		if schemas[i].geojson {
			geoParams = append(geoParams, p.Name)
		}
	}
	if len(geoParams) == 0 {
		return nil, nil
	}
	cols := c.geometryColumns(row)
	var unmatched []string
	for _, p := range geoParams {
		if !slices.Contains(cols, p) {
			if _, ok := row.Data[p]; !ok {
				unmatched = append(unmatched, p)
			}
		}
	}
	switch {
	case len(unmatched) == 0 || len(cols) == 0:
		return nil, nil
	case len(geoParams) > 1:
		return nil, fmt.Errorf("parameters %s take GeoJSON: name geometry columns after them, or map them with --param NAME=COLUMN (geometry columns: %s)",
			strings.Join(quoteAll(geoParams), ", "), strings.Join(cols, ", "))
	case len(cols) > 1:
		return nil, fmt.Errorf("parameter %q takes GeoJSON and the table has several geometry columns (%s): pick one with --param %s=COLUMN",
			geoParams[0], strings.Join(cols, ", "), geoParams[0])
	}
	return map[string]string{geoParams[0]: cols[0]}, nil
}

// Job builds the batch job of a row for the back-end of conn (nil when the
// definition does not come from a back-end). An error that is the row's
// fault is a *RowError.
func (c *JobCreator) Job(ctx context.Context, row driver.Job, conn *remote.Client) (*remote.JobRequest, error) {
	d, err := c.DefinitionFor(ctx, conn)
	if err != nil {
		return nil, err
	}
	return c.build(d, row)
}

// build makes the job of row from d.
func (c *JobCreator) build(d *Definition, row driver.Job) (*remote.JobRequest, error) {
	colMap, err := c.columnMap(d, row)
	if err != nil {
		return nil, &RowError{Key: row.Key, Err: err}
	}
	if err := checkJobText(row); err != nil {
		return nil, err
	}
	opts, err := c.jobOptions(row)
	if err != nil {
		return nil, err
	}
	if c.inline() {
		vals, _, err := d.arguments(row, colMap, c.ParameterDefaults, true)
		if err != nil {
			return nil, err
		}
		title, desc := cellText(row, "title"), cellText(row, "description")
		if title == "" {
			title = fmt.Sprintf("%s row %d", cmpOr(d.ID, "job"), row.Key)
		}
		if desc == "" {
			desc = d.Summary
		}
		return &remote.JobRequest{Title: title, Description: desc, JobOptions: opts,
			Process: remote.Process{ProcessGraph: d.Graph(vals)}}, nil
	}
	args, order, err := d.arguments(row, colMap, c.ParameterDefaults, false)
	if err != nil {
		return nil, err
	}
	id := c.processID(d)
	node := map[string]any{"process_id": id, "arguments": args, "result": true}
	ns := "None"
	if c.Namespace != "" {
		node["namespace"] = c.Namespace
		ns = c.Namespace
	}
	repr := pyRepr(args, order)
	title, desc := cellText(row, "title"), cellText(row, "description")
	if title == "" {
		title = fmt.Sprintf("Process '%s' with %s", id, truncate(repr, 64))
	}
	if desc == "" {
		desc = fmt.Sprintf("Process '%s' (namespace %s) with %s", id, ns, repr)
	}
	return &remote.JobRequest{Title: title, Description: desc, JobOptions: opts,
		Process: remote.Process{ProcessGraph: map[string]any{nodeID(id): node}}}, nil
}

// jobOptions merges the row's job_options column over JobOptions.
func (c *JobCreator) jobOptions(row driver.Job) (map[string]any, error) {
	cell := row.Data["job_options"]
	if empty(cell) {
		return c.JobOptions, nil
	}
	s, ok := cell.(string)
	var v any
	var err error
	if ok {
		v, err = parseJSONText(strings.TrimSpace(s))
	}
	obj, isObj := v.(map[string]any)
	if !ok || err != nil || !isObj {
		return nil, &RowError{Key: row.Key, Column: "job_options", Err: fmt.Errorf("want a JSON object, got %s", shorten(display(cell)))}
	}
	out := maps.Clone(c.JobOptions)
	if out == nil {
		out = map[string]any{}
	}
	maps.Copy(out, obj)
	return out, nil
}

// errNotUTF8 is the reason a text cell that is not UTF-8 (a Latin-1 CSV
// file kept as it is in a SQLite or CSV table) cannot be sent: JSON
// carries UTF-8 only, and the bytes would reach the back-end as U+FFFD.
func errNotUTF8(s string) error {
	return fmt.Errorf("%s is not UTF-8 text, which a job cannot carry unchanged (convert the table's text to UTF-8)", shorten(strconv.Quote(s)))
}

// notFound reports whether err is the back-end's or the server's answer
// that there is no such document (404 Not Found, 410 Gone).
func notFound(err error) bool {
	var ae *remote.APIError
	return errors.As(err, &ae) && (ae.StatusCode == 404 || ae.StatusCode == 410)
}

// checkJobText makes sure the cells a job carries as they are (title,
// description, job_options) are UTF-8 text: a *RowError names the first
// that is not.
func checkJobText(row driver.Job) error {
	for _, col := range []string{"title", "description", "job_options"} {
		if s, ok := row.Data[col].(string); ok && !utf8.ValidString(s) {
			return &RowError{Key: row.Key, Column: col, Err: errNotUTF8(s)}
		}
	}
	return nil
}

// nodeID names the single node as the Python client does: the process id
// without underscores, and a counter.
func nodeID(id string) string { return strings.ReplaceAll(id, "_", "") + "1" }

// cellText returns a row's text cell, "" when empty or absent.
func cellText(row driver.Job, col string) string {
	v := row.Data[col]
	if empty(v) {
		return ""
	}
	if s, ok := v.(string); ok {
		return s
	}
	return fmt.Sprint(v)
}

func cmpOr(a, b string) string {
	if a != "" {
		return a
	}
	return b
}

// StartJob creates the job of a row on conn. It has the signature of
// worker.StartJobFunc; a row that cannot be made into a job gives a
// *RowError, which the manager does not count against the back-end.
func (c *JobCreator) StartJob(ctx context.Context, row driver.Job, conn *remote.Client) (string, error) {
	req, err := c.Job(ctx, row, conn)
	if err != nil {
		return "", err
	}
	return conn.CreateJob(ctx, req)
}

// Prepare reads the definition now: the remote one, or each back-end's
// stored one (once per back-end), so that the rows can be checked before
// any job is created. It returns the distinct definitions.
func (c *JobCreator) Prepare(ctx context.Context, conns ...*remote.Client) ([]*Definition, error) {
	if err := c.checkSource(); err != nil {
		return nil, err
	}
	if !c.FromBackend() {
		d, err := c.DefinitionFor(ctx, nil)
		if err != nil {
			return nil, err
		}
		return []*Definition{d}, nil
	}
	var defs []*Definition
	for _, conn := range conns {
		d, err := c.StoredDefinition(ctx, conn)
		if err != nil {
			return nil, err
		}
		if !slices.ContainsFunc(defs, func(o *Definition) bool { return sameDefinition(o, d) }) {
			defs = append(defs, d)
		}
	}
	return defs, nil
}

func sameDefinition(a, b *Definition) bool {
	return pyRepr(toAny(a), nil) == pyRepr(toAny(b), nil)
}

func toAny(d *Definition) any {
	params := make([]any, len(d.Parameters))
	for i, p := range d.Parameters {
		params[i] = map[string]any{"name": p.Name, "schema": string(p.Schema), "optional": p.Optional, "default": string(p.Default)}
	}
	return map[string]any{"id": d.ID, "parameters": params}
}

// Check builds the job of every row against every definition defs (from
// Prepare) and returns the errors of the rows that cannot be built, in
// row order, one per row. The whole table's error (see Setup) comes
// first.
func (c *JobCreator) Check(defs []*Definition, columns []string, rows []driver.Job) ([]*RowError, error) {
	if len(rows) > 0 {
		c.geometryColumns(rows[0]) // the guess Setup needs
	}
	for _, d := range defs {
		if err := c.Setup(d, columns); err != nil {
			return nil, err
		}
	}
	var bad []*RowError
	for _, row := range rows {
		for _, d := range defs {
			_, err := c.build(d, row)
			if err == nil {
				continue
			}
			var re *RowError
			if !errors.As(err, &re) {
				return nil, err
			}
			bad = append(bad, re)
			break
		}
	}
	return bad, nil
}
