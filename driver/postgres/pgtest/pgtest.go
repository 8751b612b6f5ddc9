// Package pgtest gives tests a PostgreSQL table of their own on the server
// that WORKER_TEST_POSTGRES names (a connection URL; .ci/postgres starts
// one on 127.0.0.1 and prints it). Without it, the tests that need one
// skip, saying so.
package pgtest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"net/url"
	"os"
	"testing"

	"github.com/openeo-batch/worker/driver/postgres"
)

// Env is the environment variable that holds the test server's URL.
const Env = "WORKER_TEST_POSTGRES"

// Location returns a postgres:// location naming a table no other test
// uses (so tests run in parallel), dropped when the test ends. It skips
// the test when Env is not set.
func Location(t testing.TB) string {
	t.Helper()
	base := os.Getenv(Env)
	if base == "" {
		t.Skipf("no PostgreSQL server configured: set %s to a connection URL (.ci/postgres starts one and prints it)", Env)
	}
	u, err := url.Parse(base)
	if err != nil {
		t.Fatalf("%s: %v", Env, err)
	}
	var b [6]byte
	rand.Read(b[:])
	q := u.Query()
	q.Set("table", "t_"+hex.EncodeToString(b[:]))
	u.RawQuery = q.Encode()
	loc := u.String()
	t.Cleanup(func() {
		if err := postgres.Drop(context.WithoutCancel(context.Background()), loc); err != nil {
			t.Errorf("drop the test table: %v", err)
		}
	})
	return loc
}
