package main

import "testing"

// FuzzParseBackend: any --backend value parses or errors, never panics, and
// a parsed one has a name, a URL and no negative limit.
func FuzzParseBackend(f *testing.F) {
	for _, s := range []string{"a=http://x", "vito=https://openeo.vito.be,parallel=4,queue=10", "=x", "a=", "a=u,parallel=0", "a=u,foo=1"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, v string) {
		spec, err := parseBackend(v)
		if err != nil {
			return
		}
		if spec.name == "" || spec.url == "" || spec.parallel < 0 || spec.queue < 0 {
			t.Fatalf("parseBackend(%q) = %+v", v, spec)
		}
	})
}
