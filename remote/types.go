package remote

import (
	"encoding/json"
	"strconv"
	"strings"
)

// Link is an openEO/STAC link.
type Link struct {
	Rel   string `json:"rel"`
	Href  string `json:"href"`
	Type  string `json:"type,omitempty"`
	Title string `json:"title,omitempty"`
}

// Capabilities is the answer of GET / (the parts a job manager reads).
type Capabilities struct {
	APIVersion     string     `json:"api_version"`
	BackendVersion string     `json:"backend_version"`
	StacVersion    string     `json:"stac_version"`
	ID             string     `json:"id"`
	Title          string     `json:"title"`
	Description    string     `json:"description"`
	Endpoints      []Endpoint `json:"endpoints"`
	Links          []Link     `json:"links"`
	Billing        *Billing   `json:"billing,omitempty"`
}

// Endpoint is one entry of Capabilities.Endpoints.
type Endpoint struct {
	Path    string   `json:"path"`
	Methods []string `json:"methods"`
}

// Billing is the billing part of the capabilities.
type Billing struct {
	Currency    *string `json:"currency"`
	DefaultPlan string  `json:"default_plan,omitempty"`
}

// Supports reports whether the capabilities list method on path (a spec
// path such as "/jobs/{job_id}/results").
func (c *Capabilities) Supports(method, path string) bool {
	for _, e := range c.Endpoints {
		if e.Path == path {
			for _, m := range e.Methods {
				if strings.EqualFold(m, method) {
					return true
				}
			}
		}
	}
	return false
}

// Process is a process graph with metadata, the "process" of a job.
type Process struct {
	ProcessGraph map[string]any `json:"process_graph"`
	ID           string         `json:"id,omitempty"`
	Summary      string         `json:"summary,omitempty"`
	Description  string         `json:"description,omitempty"`
	Parameters   []any          `json:"parameters,omitempty"`
}

// JobRequest is the body of POST /jobs.
type JobRequest struct {
	Process     Process  `json:"process"`
	Title       string   `json:"title,omitempty"`
	Description string   `json:"description,omitempty"`
	Plan        string   `json:"plan,omitempty"`
	Budget      *float64 `json:"budget,omitempty"`
	LogLevel    string   `json:"log_level,omitempty"`
	// JobOptions is the widespread, non-standard job_options object.
	JobOptions map[string]any `json:"job_options,omitempty"`
}

// Metric is one usage metric, e.g. {"value": 40668, "unit": "cpu-seconds"}.
type Metric struct {
	Value float64 `json:"value"`
	Unit  string  `json:"unit"`
}

// String renders the metric as the Python job manager stores it: "value unit".
func (m Metric) String() string {
	return strconv.FormatFloat(m.Value, 'f', -1, 64) + " " + m.Unit
}

// Job is a batch job as GET /jobs/{id} and GET /jobs describe it.
type Job struct {
	ID          string            `json:"id"`
	Status      string            `json:"status"`
	Created     string            `json:"created"`
	Updated     string            `json:"updated,omitempty"`
	Title       string            `json:"title,omitempty"`
	Description string            `json:"description,omitempty"`
	Progress    *float64          `json:"progress,omitempty"`
	Costs       *float64          `json:"costs,omitempty"`
	Usage       map[string]Metric `json:"usage,omitempty"`
	Process     json.RawMessage   `json:"process,omitempty"`
	Links       []Link            `json:"links,omitempty"`
	// Raw is the document as the back-end sent it (GetJob only).
	Raw json.RawMessage `json:"-"`
	// Odd names the fields that had an unexpected type and were read as
	// absent ("costs", "usage.cpu.value", ...); see UnmarshalJSON.
	Odd []string `json:"-"`
}

// Asset is a downloadable file of a job's results.
type Asset struct {
	Href     string   `json:"href"`
	Title    string   `json:"title,omitempty"`
	Type     string   `json:"type,omitempty"`
	Roles    []string `json:"roles,omitempty"`
	FileSize *int64   `json:"file:size,omitempty"`
	// FileChecksum is a multihash in hex (STAC file extension).
	FileChecksum string `json:"file:checksum,omitempty"`
}

// Results is the answer of GET /jobs/{id}/results: a STAC Item or
// Collection. Raw keeps the document as the back-end sent it, for the job's
// metadata file.
type Results struct {
	Type   string           `json:"type"`
	ID     string           `json:"id"`
	Assets map[string]Asset `json:"assets"`
	Links  []Link           `json:"links"`
	Raw    json.RawMessage  `json:"-"`
	// Odd names the fields and assets that had an unexpected type and were
	// read as absent ("assets.b03.tif.file:size", ...).
	Odd []string `json:"-"`
}

// LogEntry is one entry of a job's logs.
type LogEntry struct {
	ID      string `json:"id"`
	Code    string `json:"code,omitempty"`
	Level   string `json:"level"`
	Message string `json:"message"`
	Time    string `json:"time,omitempty"`
	Data    any    `json:"data,omitempty"`
	Path    []any  `json:"path,omitempty"`
}
