package remote

import (
	"context"
	"encoding/json"
	"fmt"
	"strconv"
)

// Estimate is the answer of GET /jobs/{job_id}/estimate (openEO API 1.2,
// JOBS.md section 2): what a created job is expected to cost before it is
// started. Each field is nil when the back-end did not say.
type Estimate struct {
	// Costs is in the back-end's billing currency (capabilities
	// billing.currency, often "credits"); the spec asks for an upper limit.
	Costs *float64 `json:"costs"`
	// Duration is an ISO 8601 duration such as "PT1H30M", as sent.
	Duration string `json:"duration,omitempty"`
	// Size is the expected size of the results, in bytes.
	Size *int64 `json:"size,omitempty"`
	// Expires is when the estimate stops holding (RFC 3339), as sent.
	Expires string `json:"expires,omitempty"`
}

// EstimatePath is the spec path of the estimate endpoint, as listed in the
// capabilities (see Capabilities.Supports).
const EstimatePath = "/jobs/{job_id}/estimate"

// EstimateJob asks the back-end what job id is expected to cost
// (GET /jobs/{id}/estimate). A back-end that cannot estimate answers 500
// EstimateComplexity, returned as an *APIError; ask only back-ends whose
// capabilities list EstimatePath. A costs value that is not a number is
// an error naming it.
func (c *Client) EstimateJob(ctx context.Context, id string) (*Estimate, error) {
	var raw map[string]json.RawMessage
	if err := c.getJSON(ctx, c.endpoint("jobs/%s/estimate", id), &raw); err != nil {
		return nil, err
	}
	var e Estimate
	if v, ok := raw["costs"]; ok && string(v) != "null" {
		f, err := strconv.ParseFloat(string(v), 64)
		if err != nil || f < 0 {
			return nil, fmt.Errorf("estimate of job %s: costs %s is not a number >= 0", id, v)
		}
		e.Costs = &f
	}
	if v, ok := raw["duration"]; ok {
		json.Unmarshal(v, &e.Duration)
	}
	if v, ok := raw["size"]; ok {
		var n int64
		if json.Unmarshal(v, &n) == nil {
			e.Size = &n
		}
	}
	if v, ok := raw["expires"]; ok {
		json.Unmarshal(v, &e.Expires)
	}
	return &e, nil
}
