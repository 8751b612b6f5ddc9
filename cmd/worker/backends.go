package main

import (
	"context"
	"fmt"
	"net/url"
	"os"
	"slices"
	"strings"

	"github.com/openeo-batch/worker/driver"
	"github.com/openeo-batch/worker/remote"
)

// backendName gives a --backend value that starts with a URL (no NAME=)
// the URL's host name as its name: "https://openeo.vito.be/openeo/1.2,parallel=4"
// becomes "openeo.vito.be=https://openeo.vito.be/openeo/1.2,parallel=4".
// Other values are returned as they are.
func backendName(v string) string {
	lower := strings.ToLower(v)
	if !strings.HasPrefix(lower, "http://") && !strings.HasPrefix(lower, "https://") {
		return v
	}
	raw, _, _ := strings.Cut(v, ",")
	u, err := url.Parse(raw)
	if err != nil || u.Hostname() == "" {
		return v // parseBackend reports it
	}
	return u.Hostname() + "=" + v
}

// clients connects, on demand, to the back-ends given with --backend,
// with the credentials run uses (see connectBackend), each once.
type clients struct {
	specs  backendFlag
	conns  map[string]*remote.Client
	getenv func(string) string
}

func newClients(specs backendFlag) *clients {
	return &clients{specs: specs, conns: map[string]*remote.Client{}, getenv: os.Getenv}
}

// get returns the client of the back-end called name (a row's
// backend_name), or an error saying which --backend to give.
func (c *clients) get(ctx context.Context, name string) (*remote.Client, error) {
	if cl := c.conns[name]; cl != nil {
		return cl, nil
	}
	i := slices.IndexFunc(c.specs, func(b backendSpec) bool { return b.name == name })
	if i < 0 {
		if name == "" {
			return nil, fmt.Errorf("the row has no back-end (backend_name is empty)")
		}
		return nil, fmt.Errorf("back-end %s: not given; add --backend %s=URL", name, name)
	}
	cl, err := connectBackend(ctx, c.specs[i], c.getenv)
	if err != nil {
		return nil, err
	}
	c.conns[name] = cl
	return cl, nil
}

// check checks that each row's back-end was given with --backend
// before any request is sent, so a typo fails fast.
func (c *clients) check(rows []driver.Job) error {
	for _, r := range rows {
		if !slices.ContainsFunc(c.specs, func(b backendSpec) bool { return b.name == r.Backend }) {
			if r.Backend == "" {
				return fmt.Errorf("row %d has job %s but no backend_name", r.Key, r.ID)
			}
			return usagef("row %d is on back-end %s: add --backend %s=URL", r.Key, r.Backend, r.Backend)
		}
	}
	return nil
}
