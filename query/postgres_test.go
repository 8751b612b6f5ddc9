package query

import (
	"bytes"
	"encoding/json"
	"errors"
	"testing"

	_ "github.com/openeo-batch/worker/driver/postgres"
	"github.com/openeo-batch/worker/driver/postgres/pgtest"
	"github.com/openeo-batch/worker/tableconv"
)

// A PostgreSQL table is queried in PostgreSQL, with its SQL and its $1
// placeholders, in a read-only transaction: a write is a *RefusedError
// and changes nothing, even after a statement that tries to lift it.
func TestPostgres(t *testing.T) {
	loc := pgtest.Location(t)
	ctx := t.Context()
	tab := &tableconv.Table{Columns: []string{"title", "year"}, Rows: [][]any{{"a", int64(2020)}, {"b", int64(2021)}}}
	if _, err := tableconv.Create(ctx, loc, tab); err != nil {
		t.Fatal(err)
	}
	db, err := Open(ctx, loc)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	res, err := db.Select(ctx, "SELECT title, year, status FROM jobs WHERE year > $1", 2020)
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Rows) != 1 || res.Rows[0][0] != "b" || res.Rows[0][1] != int64(2021) || res.Rows[0][2] != "not_started" {
		t.Errorf("rows %#v", res.Rows)
	}
	if _, err := db.Select(ctx, "SELECT set_config('default_transaction_read_only', 'off', false)"); err != nil {
		t.Fatal(err)
	}
	for _, q := range []string{"DELETE FROM jobs", "UPDATE jobs SET status = 'error'", "WITH d AS (DELETE FROM jobs RETURNING 1) SELECT count(*) FROM d",
		"CREATE TABLE x (a int)"} {
		var r *RefusedError
		if _, err := db.Select(ctx, q); !errors.As(err, &r) {
			t.Errorf("%s: %v, want a refusal", q, err)
		}
	}
	if _, err := db.Select(ctx, "SELECT 1; SELECT 2"); !errors.As(err, new(*RefusedError)) {
		t.Errorf("two statements: %v", err)
	}
	res, err = db.Select(ctx, "SELECT count(*) FROM jobs WHERE status = 'not_started'")
	if err != nil || res.Rows[0][0] != int64(2) {
		t.Errorf("after the refusals: %v, %v", res, err)
	}
	// NUMERIC is a number with its digits, NaN and infinities are text,
	// keys in the SELECT's order.
	rows, err := db.Query(ctx, "SELECT title, 12.30::numeric(6,2) AS d, 'NaN'::numeric AS nn, 'NaN'::float8 AS n, '-Infinity'::float8 AS i FROM jobs WHERE year = 2020")
	if err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	err = Write(&out, rows, JSON)
	rows.Close()
	var compact bytes.Buffer
	json.Compact(&compact, out.Bytes())
	if want := `[{"title":"a","d":12.30,"nn":"NaN","n":"NaN","i":"-Infinity"}]`; err != nil || compact.String() != want {
		t.Errorf("JSON: %v\n%s\nwant\n%s", err, out.String(), want)
	}
}
