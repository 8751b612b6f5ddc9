package query

import (
	"bytes"
	"database/sql"
	"path/filepath"
	"strings"
	"testing"

	"github.com/openeo-batch/worker/tableconv"
)

// Select and Write give a Parquet or DuckDB table's GEOMETRY column as
// WKT, as DuckDB's ST_AsText writes it (3D kept), not as WKB bytes; in
// SQL the column stays GEOMETRY. A SQLite table's WKT text stays as it is.
func TestGeometryAsWKT(t *testing.T) {
	dir := t.TempDir()
	wkts := []any{"POLYGON ((3 50, 4 50, 4 51, 3 51, 3 50))", "POINT Z (1.5 2 3)", nil, "MULTIPOINT (1 2, 3 4)"}
	tab := &tableconv.Table{Columns: []string{"title", "geometry"}}
	for i, w := range wkts {
		tab.Rows = append(tab.Rows, []any{string(rune('a' + i)), w})
	}
	for _, name := range []string{"jobs.parquet", "jobs.duckdb", "jobs.db"} {
		p := filepath.Join(dir, name)
		if _, err := tableconv.Create(t.Context(), p, tab); err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		db, err := Open(t.Context(), p)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		res, err := db.Select(t.Context(), "SELECT title, geometry FROM jobs ORDER BY title")
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		for i, r := range res.Rows {
			if r[1] != wkts[i] {
				t.Errorf("%s: row %d: geometry %#v, want %#v", name, i+1, r[1], wkts[i])
			}
		}
		if name != "jobs.db" {
			// DuckDB's own text for the column agrees, and SQL sees GEOMETRY.
			res, err := db.Select(t.Context(), "SELECT geometry, ST_AsText(geometry), typeof(geometry) FROM jobs ORDER BY title")
			if err != nil {
				t.Fatalf("%s: %v", name, err)
			}
			for i, r := range res.Rows {
				if r[0] != r[1] || !isGeometry(r[2].(string)) {
					t.Errorf("%s: row %d: %#v, ST_AsText %#v, type %v", name, i+1, r[0], r[1], r[2])
				}
			}
		}
		rows, err := db.Query(t.Context(), "SELECT geometry FROM jobs WHERE title = 'b'")
		if err != nil {
			t.Fatal(err)
		}
		var out bytes.Buffer
		err = Write(&out, rows, CSV)
		rows.Close()
		if err != nil || out.String() != "geometry\nPOINT Z (1.5 2 3)\n" {
			t.Errorf("%s: Write: %v\n%s", name, err, out.String())
		}
		db.Close()
	}
}

// A GEOMETRY value that is no WKB is an error naming row and column.
func TestGeometryTextBad(t *testing.T) {
	if _, err := geometryText([]byte("\x01\x63\x00\x00\x00")); err == nil || !strings.Contains(err.Error(), "no WKB") {
		t.Errorf("bad WKB: %v", err)
	}
	if v, err := geometryText("0101000020E6100000000000000000F03F0000000000000040"); v != "POINT (1 2)" || err != nil {
		t.Errorf("PostGIS hex EWKB: %v %v", v, err)
	}
	if v, err := geometryText(nil); v != nil || err != nil {
		t.Errorf("nil: %v %v", v, err)
	}
}

// FuzzGeometryText: any bytes give WKT whose parentheses balance, or an
// error; never a panic, nor an allocation sized by a count in the input.
func FuzzGeometryText(f *testing.F) {
	for _, seed := range [][]byte{
		[]byte("\x01\x01\x00\x00\x00\x00\x00\x00\x00\x00\x00\xf0?\x00\x00\x00\x00\x00\x00\x00@"),                              // POINT (1 2)
		[]byte("\x01\xe9\x03\x00\x00\x00\x00\x00\x00\x00\x00\xf0?\x00\x00\x00\x00\x00\x00\x00@\x00\x00\x00\x00\x00\x00\x08@"), // POINT Z (1 2 3)
		[]byte("\x00\x00\x00\x00\x03\x00\x00\x00\x01\x00\x00\x00\x00"),                                                        // big-endian POLYGON, one empty ring
		[]byte("\x01\x07\x00\x00\x00\x01\x00\x00\x00\x01\x04\x00\x00\x00\x00\x00\x00\x00"),                                    // GEOMETRYCOLLECTION (MULTIPOINT EMPTY)
		{},
	} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		v, err := geometryText(b)
		if err != nil {
			return
		}
		s := v.(string)
		depth := 0
		for _, c := range s {
			switch c {
			case '(':
				depth++
			case ')':
				depth--
			}
			if depth < 0 {
				break
			}
		}
		if depth != 0 || s == "" {
			t.Errorf("WKT %q of %x: parentheses do not balance", s, b)
		}
	})
}

// wkbToWKT writes what DuckDB's ST_AsText writes, for every kind of
// geometry, dimension and empty geometry, and numbers of every size.
func TestWKBAsDuckDBWrites(t *testing.T) {
	db, err := sql.Open("duckdb", "")
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	for _, g := range []string{
		"POINT EMPTY", "POINT (0.1 1e21)", "POINT (-0 1e-7)", "POINT (0.0001 0.00001)", "POINT (1e15 1e16)",
		"POINT (123456789.123456789 1.7976931348623157e308)", "POINT M (1 2 3)", "POINT ZM (1 2 3 4)",
		"LINESTRING EMPTY", "LINESTRING Z (1 2 3, 4 5 6)", "POLYGON EMPTY", "POLYGON ((0 0, 1 0, 1 1, 0 0), (0.2 0.2, 0.5 0.2, 0.2 0.5, 0.2 0.2))",
		"MULTIPOINT EMPTY", "MULTIPOINT (1 2, EMPTY)", "MULTIPOINT Z (1 2 3, 4 5 6)",
		"MULTILINESTRING ((1 2, 3 4), (5 6, 7 8))", "MULTIPOLYGON (((0 0, 1 0, 1 1, 0 0)), ((5 5, 6 5, 6 6, 5 5)))",
		"GEOMETRYCOLLECTION EMPTY", "GEOMETRYCOLLECTION (POINT (1 2), LINESTRING (1 2, 3 4), GEOMETRYCOLLECTION (POINT EMPTY))",
		"GEOMETRYCOLLECTION Z (POINT Z (1 2 3), MULTIPOLYGON Z (((0 0 1, 1 0 1, 1 1 1, 0 0 1))))",
	} {
		var want string
		var b []byte
		if err := db.QueryRow("SELECT ST_AsText(CAST(? AS GEOMETRY)), CAST(? AS GEOMETRY)", g, g).Scan(&want, &b); err != nil {
			t.Fatalf("%s: %v", g, err)
		}
		if got, err := wkbToWKT(b); err != nil || got != want {
			t.Errorf("%s: wkbToWKT = %q, %v; DuckDB writes %q", g, got, err, want)
		}
	}
	// EWKB, as PostGIS writes it: Z flag and an SRID.
	ewkb := []byte("\x01\x01\x00\x00\xa0\xe6\x10\x00\x00\x00\x00\x00\x00\x00\x00\xf0?\x00\x00\x00\x00\x00\x00\x00@\x00\x00\x00\x00\x00\x00\x08@")
	if got, err := wkbToWKT(ewkb); err != nil || got != "POINT Z (1 2 3)" {
		t.Errorf("EWKB point: %q, %v", got, err)
	}
	for _, bad := range [][]byte{nil, {2}, {1, 9, 0, 0, 0}, {1, 2, 0, 0, 0, 0xff, 0xff, 0xff, 0xff}, []byte("\x01\x04\x00\x00\x00\x01\x00\x00\x00\x01\x02\x00\x00\x00\x00\x00\x00\x00")} {
		if got, err := wkbToWKT(bad); err == nil {
			t.Errorf("%x: %q, want an error", bad, got)
		}
	}
}
