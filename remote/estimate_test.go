package remote_test

import (
	"errors"
	"testing"

	"github.com/openeo-batch/worker/remote"
	"github.com/openeo-batch/worker/remote/remotetest"
)

// A back-end that offers estimates lists the endpoint and answers it; one
// that does not, does neither. /me accepts a valid token and refuses a
// wrong one as ErrAuth. The client counts the requests it sent.
func TestEstimateAndMe(t *testing.T) {
	srv := remotetest.NewServer(remotetest.Options{
		Estimate: func(j *remote.JobRequest) (float64, error) {
			if j.Title == "hard" {
				return 0, errors.New("too complex")
			}
			return 2.5, nil
		},
	})
	defer srv.Close()
	plain := remotetest.NewServer(remotetest.Options{})
	defer plain.Close()
	ctx := t.Context()

	c := connect(t, srv)
	caps, err := c.Capabilities(ctx)
	if err != nil || !caps.Supports("GET", remote.EstimatePath) {
		t.Fatalf("capabilities: %v, estimate listed: %v", err, caps != nil && caps.Supports("GET", remote.EstimatePath))
	}
	id, err := c.CreateJob(ctx, &remote.JobRequest{Title: "easy", Process: graph()})
	if err != nil {
		t.Fatal(err)
	}
	e, err := c.EstimateJob(ctx, id)
	if err != nil || e.Costs == nil || *e.Costs != 2.5 || e.Duration != "PT1M" {
		t.Errorf("estimate: %+v, %v", e, err)
	}
	hard, _ := c.CreateJob(ctx, &remote.JobRequest{Title: "hard", Process: graph()})
	var apiErr *remote.APIError
	if _, err := c.EstimateJob(ctx, hard); !errors.As(err, &apiErr) || apiErr.Code != "EstimateComplexity" {
		t.Errorf("estimate of a hard job: %v", err)
	}
	if err := c.CheckAccess(ctx); err != nil {
		t.Errorf("me: %v", err)
	}
	before := c.Requests()
	c.CheckAccess(ctx)
	if n := c.Requests() - before; n != 1 {
		t.Errorf("%d requests counted for one call", n)
	}

	p := connect(t, plain)
	if caps, err := p.Capabilities(ctx); err != nil || caps.Supports("GET", remote.EstimatePath) {
		t.Errorf("a back-end without estimates lists them: %v", err)
	}
	p.SetToken("basic//wrong")
	if err := p.CheckAccess(ctx); !errors.Is(err, remote.ErrAuth) {
		t.Errorf("me with a wrong token: %v, want ErrAuth", err)
	}
}
