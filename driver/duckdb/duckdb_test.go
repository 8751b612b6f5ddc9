package duckdb_test

import (
	"context"
	"database/sql"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/openeo-batch/worker/driver"
	"github.com/openeo-batch/worker/driver/drivertest"
	"github.com/openeo-batch/worker/driver/duckdb"
	"github.com/openeo-batch/worker/internal/crs"
	"github.com/openeo-batch/worker/internal/pin"
)

func TestConformanceParquet(t *testing.T) {
	drivertest.Run(t, func(ctx context.Context, path string) (driver.Store, error) {
		return duckdb.Open(ctx, path)
	}, ".parquet", drivertest.SingleWriter(), drivertest.Foreign(writeForeign), drivertest.Reader(openReader))
}

func TestConformanceDuckDB(t *testing.T) {
	drivertest.Run(t, func(ctx context.Context, path string) (driver.Store, error) {
		return duckdb.Open(ctx, path)
	}, ".duckdb", drivertest.SingleWriter(), drivertest.Foreign(writeForeign), drivertest.Reader(openReader))
}

func openReader(ctx context.Context, path string) (driver.Store, error) {
	return duckdb.OpenReader(ctx, path)
}

// writeForeign writes a table as pandas or another DuckDB user would: a
// Parquet file, or a DuckDB file with a jobs table, holding the given
// columns only, typed by their values.
func writeForeign(path string, columns []string, rows [][]any) error {
	db, err := sql.Open("duckdb", "")
	if err != nil {
		return err
	}
	defer db.Close()
	var defs, marks []string
	for i, c := range columns {
		typ := "VARCHAR"
		for _, r := range rows {
			if _, ok := r[i].(int64); ok {
				typ = "BIGINT"
			}
		}
		defs = append(defs, `"`+c+`" `+typ)
		marks = append(marks, "?")
	}
	if _, err := db.Exec("CREATE TABLE t (" + strings.Join(defs, ", ") + ")"); err != nil {
		return err
	}
	for _, r := range rows {
		if _, err := db.Exec("INSERT INTO t VALUES ("+strings.Join(marks, ", ")+")", r...); err != nil {
			return err
		}
	}
	if strings.HasSuffix(path, ".parquet") {
		_, err = db.Exec("COPY t TO '" + path + "' (FORMAT parquet)")
		return err
	}
	for _, q := range []string{"ATTACH '" + path + "' AS f", "CREATE TABLE f.jobs AS SELECT * FROM t", "DETACH f"} {
		if _, err := db.Exec(q); err != nil {
			return err
		}
	}
	return nil
}

// A work file without a table, as a kill during the first open left it
// before work files were built under another name, no longer makes every
// later open say "no job table": the table is imported again.
func TestWorkFileWithoutTable(t *testing.T) {
	path := filepath.Join(t.TempDir(), "jobs.parquet")
	if err := writeForeign(path, []string{"title"}, [][]any{{"a"}, {"b"}}); err != nil {
		t.Fatal(err)
	}
	db, err := sql.Open("duckdb", path+".work.duckdb")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := db.Exec("CREATE TABLE unrelated (x INTEGER)"); err != nil {
		t.Fatal(err)
	}
	db.Close()
	s, err := duckdb.Open(t.Context(), path)
	if err != nil {
		t.Fatal(err)
	}
	rows, err := s.Select(t.Context(), driver.Filter{})
	if err != nil || len(rows) != 2 {
		t.Fatalf("rows %v, %v; want 2", rows, err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if left, _ := filepath.Glob(path + ".*"); len(left) > 0 {
		t.Errorf("left %v", left)
	}
}

// Text that is not UTF-8 is refused with its row and column: DuckDB would
// store NULL instead, losing the value for good. The failed Init leaves no
// file behind once the store is closed.
func TestInitRefusesNonUTF8(t *testing.T) {
	for _, ext := range []string{".parquet", ".duckdb"} {
		t.Run(ext, func(t *testing.T) {
			dir := t.TempDir()
			s, err := duckdb.Open(t.Context(), filepath.Join(dir, "jobs"+ext))
			if err != nil {
				t.Fatal(err)
			}
			err = s.Init(t.Context(), []string{"name", "year"}, drivertest.Rows([][]any{{"cafe", int64(1)}, {"caf\xe9", int64(2)}}))
			if err == nil || !strings.Contains(err.Error(), "row 2") || !strings.Contains(err.Error(), `column "name"`) || !strings.Contains(err.Error(), "UTF-8") {
				t.Errorf("err = %v, want row 2, column name, UTF-8", err)
			}
			err = s.Init(t.Context(), []string{"caf\xe9"}, drivertest.Rows([][]any{{"a"}}))
			if err == nil || !strings.Contains(err.Error(), "column 1") || !strings.Contains(err.Error(), "UTF-8") {
				t.Errorf("column name: err = %v, want column 1, UTF-8", err)
			}
			if err := s.Close(); err != nil {
				t.Fatal(err)
			}
			if left, _ := os.ReadDir(dir); len(left) > 0 {
				t.Errorf("a failed Init left %v", left)
			}
		})
	}
}

func copyFile(t *testing.T, from, to string) {
	t.Helper()
	b, err := os.ReadFile(from)
	if err != nil {
		t.Skipf("fixture not present: %v", err)
	}
	os.WriteFile(to, b, 0o644)
}

// GeoParquet written by geopandas: geometries come as WKT, and the table
// goes back out as GeoParquet (geo metadata, WKB) with its values.
func TestGeoParquetRoundTrip(t *testing.T) {
	for _, name := range []string{"example.parquet", "polygon-wkb.parquet"} {
		t.Run(name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), name)
			copyFile(t, filepath.Join("..", "..", "..", "shared", "fixtures", "geoparquet", name), path)
			s, err := duckdb.Open(t.Context(), path)
			if err != nil {
				t.Fatal(err)
			}
			rows, err := s.Select(t.Context(), driver.Filter{})
			if err != nil {
				t.Fatal(err)
			}
			if len(rows) == 0 || rows[0].Status != driver.NotStarted {
				t.Fatalf("rows = %+v", rows)
			}
			geom, _ := rows[0].Data["geometry"].(string)
			if !strings.Contains(geom, "POLYGON") {
				t.Errorf("geometry = %q, want WKT", rows[0].Data["geometry"])
			}
			if err := s.Update(t.Context(), driver.Update{Key: rows[0].Key, Set: driver.Values{driver.ColStatus: driver.Finished, driver.ColID: "j-1"}}); err != nil {
				t.Fatal(err)
			}
			if err := s.Close(); err != nil {
				t.Fatal(err)
			}
			db, _ := sql.Open("duckdb", "")
			defer db.Close()
			var geo string
			if err := db.QueryRow("SELECT decode(value) FROM parquet_kv_metadata(?) WHERE decode(key) = 'geo'", path).Scan(&geo); err != nil || !strings.Contains(geo, `"geometry"`) {
				t.Errorf("geo metadata after rewrite: %q %v", geo, err)
			}
			var st, wkt string
			if err := db.QueryRow("SELECT status, ST_AsText(geometry) FROM read_parquet(?) LIMIT 1", path).Scan(&st, &wkt); err != nil || st != "finished" || wkt != geom {
				t.Errorf("after rewrite: status %q geometry %q (%v)", st, wkt, err)
			}
		})
	}
}

func TestBadParquet(t *testing.T) {
	path := filepath.Join(t.TempDir(), "fake.parquet")
	os.WriteFile(path, []byte("year,title\n2020,a\n"), 0o644)
	_, err := duckdb.Open(t.Context(), path)
	if err == nil || !strings.Contains(err.Error(), "fake.parquet") {
		t.Errorf("err = %v, want it to name the file", err)
	}
	if b, _ := os.ReadFile(path); string(b) != "year,title\n2020,a\n" {
		t.Error("the file was changed")
	}
	if left, _ := filepath.Glob(path + ".*"); len(left) > 0 {
		t.Errorf("left behind: %v", left)
	}
}

func TestBadGeometryInit(t *testing.T) {
	s, err := duckdb.Open(t.Context(), filepath.Join(t.TempDir(), "j.parquet"))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	err = s.Init(t.Context(), []string{"name", "geometry"}, drivertest.Rows([][]any{{"a", "POINT (1 2)"}, {"b", "POLYGON ((1 2, 3"}}))
	if err == nil || !strings.Contains(err.Error(), "row 2") {
		t.Errorf("err = %v, want it to name row 2", err)
	}
}

// A table in a folder we may not write in (shared fixtures, a read-only
// mount) opens read-only instead of failing.
func TestReadOnlyFolder(t *testing.T) {
	if os.Geteuid() == 0 {
		t.Skip("root writes anywhere: the folder cannot be made read-only")
	}
	dir := t.TempDir()
	path := filepath.Join(dir, "t.parquet")
	s, _ := duckdb.Open(t.Context(), path)
	s.Init(t.Context(), []string{"x"}, drivertest.Rows([][]any{{int64(1)}}))
	s.Close()
	os.Chmod(dir, 0o555)
	defer os.Chmod(dir, 0o755)
	r, err := duckdb.Open(t.Context(), path)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	if rows, err := r.Select(t.Context(), driver.Filter{}); err != nil || len(rows) != 1 {
		t.Errorf("rows %v, %v", rows, err)
	}
}

// titlesInFile reads the title column of a published snapshot in file order.
func titlesInFile(t *testing.T, path string) []string {
	t.Helper()
	db, _ := sql.Open("duckdb", "")
	defer db.Close()
	source := "read_parquet('" + path + "')"
	if strings.HasSuffix(path, ".duckdb") {
		if _, err := db.Exec("ATTACH '" + path + "' AS pub (READ_ONLY)"); err != nil {
			t.Fatal(err)
		}
		source = "pub.jobs"
	}
	rows, err := db.Query("SELECT title FROM " + source)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var s string
		rows.Scan(&s)
		out = append(out, s)
	}
	return out
}

// Snapshots are written without a sort, trusting rows to be stored in key
// order: after many updates of every kind, on a table made by Init and on
// one imported from a snapshot, the file must still be in table order.
func TestSnapshotOrder(t *testing.T) {
	const n = 5000
	var want []string
	var data [][]any
	for i := range n {
		want = append(want, fmt.Sprintf("t%05d", i))
		data = append(data, []any{want[i], "POINT (1 2)"})
	}
	for _, ext := range []string{".parquet", ".duckdb"} {
		t.Run(ext, func(t *testing.T) {
			ctx := t.Context()
			path := filepath.Join(t.TempDir(), "jobs"+ext)
			s, err := duckdb.Open(ctx, path)
			if err != nil {
				t.Fatal(err)
			}
			if err := s.Init(ctx, []string{"title", "geometry"}, drivertest.Rows(data)); err != nil {
				t.Fatal(err)
			}
			for round := range 2 { // the second round works on the imported table
				rng := rand.New(rand.NewPCG(uint64(round), 1))
				for range 300 {
					j, err := s.Claim(ctx, driver.Values{driver.ColStatus: driver.QueuedForStart, driver.ColBackend: "b"})
					if err != nil {
						t.Fatal(err)
					}
					key := int64(rng.IntN(n) + 1)
					set := driver.Values{driver.ColStatus: driver.Running, driver.ColID: strings.Repeat("j", rng.IntN(40)), driver.ColCosts: rng.Float64()}
					if rng.IntN(3) == 0 {
						set = driver.Values{driver.ColID: nil, driver.ColLastError: strings.Repeat("x", 300), driver.ColDownloadPending: true}
					}
					if err := s.Update(ctx, driver.Update{Key: key, Set: set}, driver.Update{Key: j.Key, Set: driver.Values{driver.ColAttempts: int64(round + 1)}}); err != nil {
						t.Fatal(err)
					}
				}
				if err := s.Close(); err != nil {
					t.Fatal(err)
				}
				if got := titlesInFile(t, path); !slices.Equal(got, want) {
					t.Fatalf("round %d: snapshot out of table order (first rows %v)", round, got[:5])
				}
				if s, err = duckdb.Open(ctx, path); err != nil {
					t.Fatal(err)
				}
			}
			s.Close()
		})
	}
}

// A work file whose rows are not stored in key order (left by an older
// version, say) still publishes a snapshot in key order.
func TestSnapshotOrderSorts(t *testing.T) {
	path := filepath.Join(t.TempDir(), "jobs.parquet")
	s, err := duckdb.Open(t.Context(), path)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Init(t.Context(), []string{"title"}, drivertest.Rows([][]any{{"a"}, {"b"}, {"c"}})); err != nil {
		t.Fatal(err)
	}
	s.Close()
	// A crashed run's work file, its rows stored backwards.
	db, err := sql.Open("duckdb", path+".work.duckdb")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := db.Exec("CREATE TABLE jobs AS SELECT * FROM (SELECT row_number() OVER () AS _key, * FROM read_parquet('" + path + "')) ORDER BY _key DESC"); err != nil {
		t.Fatal(err)
	}
	db.Close()
	if got := titlesInFile(t, path+".work.duckdb"); !slices.Equal(got, []string{"c", "b", "a"}) {
		t.Fatalf("work file rows %v, want them backwards", got)
	}
	s, err = duckdb.Open(t.Context(), path) // picks up the work file and publishes it
	if err != nil {
		t.Fatal(err)
	}
	s.Close()
	if got := titlesInFile(t, path); !slices.Equal(got, []string{"a", "b", "c"}) {
		t.Errorf("snapshot %v, want a b c", got)
	}
}

// Readers see the published snapshot: a change reaches them on Flush.
func TestFlushPublishes(t *testing.T) {
	ctx := t.Context()
	path := filepath.Join(t.TempDir(), "jobs.parquet")
	s := oneClaim(t, path)
	defer s.Close()
	queued := func() int {
		r, err := duckdb.Open(ctx, path)
		if err != nil {
			t.Fatal(err)
		}
		defer r.Close()
		rows, err := r.Select(ctx, driver.Filter{Statuses: []driver.Status{driver.QueuedForStart}})
		if err != nil {
			t.Fatal(err)
		}
		return len(rows)
	}
	if n := queued(); n != 0 {
		t.Errorf("a reader sees %d claimed rows before Flush, want 0", n)
	}
	if err := s.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	if n := queued(); n != 1 {
		t.Errorf("a reader sees %d claimed rows after Flush, want 1", n)
	}
}

// A table with large cells (detailed polygons) needs more memory than
// MemoryLimit for some operations: they run again with DuckDB's own limit
// instead of failing.
func TestLargeCellsOutgrowMemoryLimit(t *testing.T) {
	old := duckdb.MemoryLimit
	duckdb.MemoryLimit = "8MB"
	defer func() { duckdb.MemoryLimit = old }()
	var b strings.Builder
	b.WriteString("POLYGON ((")
	for i := range 500 {
		fmt.Fprintf(&b, "%d.123456 %d.654321, ", i, i%90)
	}
	b.WriteString("0.123456 0.654321))")
	poly := b.String()
	var data [][]any
	for i := range 4000 { // 36 MB of geometry
		data = append(data, []any{fmt.Sprint("tile ", i), poly})
	}
	ctx := t.Context()
	path := filepath.Join(t.TempDir(), "jobs.parquet")
	s, err := duckdb.Open(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Init(ctx, []string{"title", "geometry"}, drivertest.Rows(data)); err != nil {
		t.Fatalf("Init: %v", err)
	}
	s.Close()
	s, err = duckdb.Open(ctx, path)
	if err != nil {
		t.Fatalf("reopen: %v", err)
	}
	defer s.Close()
	if _, err := s.Claim(ctx, driver.Values{driver.ColStatus: driver.QueuedForStart}); err != nil {
		t.Fatal(err)
	}
	if err := s.Flush(ctx); err != nil {
		t.Fatalf("Flush: %v", err)
	}
	rows, err := s.Select(ctx, driver.Filter{Limit: 1})
	if err != nil || len(rows) != 1 || rows[0].Status != driver.QueuedForStart || len(rows[0].Data["geometry"].(string)) < len(poly)/2 {
		t.Errorf("first row after flush: %v", err)
	}
}

// A folder named like a Hive partition (year=2020) adds no column.
func TestHiveLikeFolder(t *testing.T) {
	ctx := t.Context()
	dir := filepath.Join(t.TempDir(), "year=2020")
	os.Mkdir(dir, 0o755)
	path := filepath.Join(dir, "jobs.parquet")
	s, err := duckdb.Open(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Init(ctx, []string{"title"}, drivertest.Rows([][]any{{"a"}})); err != nil {
		t.Fatal(err)
	}
	s.Close()
	s, err = duckdb.Open(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if cols, err := s.Columns(ctx); err != nil || !slices.Equal(cols, []string{"title"}) {
		t.Errorf("columns %v, %v; want [title]", cols, err)
	}
}

// crashedRun leaves in a new folder what a run killed after a claim
// leaves: the published table and the work file holding the claim.
func crashedRun(t *testing.T) string {
	t.Helper()
	src := filepath.Join(t.TempDir(), "jobs.parquet")
	defer oneClaim(t, src).Close()
	dir := t.TempDir()
	for _, name := range []string{"jobs.parquet", "jobs.parquet.work.duckdb", "jobs.parquet.work.duckdb.wal", "jobs.parquet.work.duckdb.journal"} {
		if b, err := os.ReadFile(filepath.Join(filepath.Dir(src), name)); err == nil {
			os.WriteFile(filepath.Join(dir, name), b, 0o644)
		}
	}
	return filepath.Join(dir, "jobs.parquet")
}

func queuedIn(t *testing.T, path string) int {
	t.Helper()
	db, _ := sql.Open("duckdb", "")
	defer db.Close()
	var n int
	if err := db.QueryRow("SELECT count(*) FROM read_parquet('" + path + "') WHERE status = 'queued_for_start'").Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

// A killed run's work file is picked up and published.
func TestResumeWorkFile(t *testing.T) {
	path := crashedRun(t)
	if n := queuedIn(t, path); n != 0 {
		t.Fatalf("the published table already has %d claims", n)
	}
	s, err := duckdb.Open(t.Context(), path)
	if err != nil {
		t.Fatal(err)
	}
	s.Close()
	if n := queuedIn(t, path); n != 1 {
		t.Errorf("%d claims after resuming, want 1", n)
	}
}

// A table rewritten after the crash (the Python client resumed it) is not
// overwritten by the stale work file: the open fails, changes nothing and
// says how to go on.
func TestWorkFileOfAnotherVersionRefused(t *testing.T) {
	path := crashedRun(t)
	db, _ := sql.Open("duckdb", "")
	if _, err := db.Exec("COPY (SELECT * REPLACE ('finished' AS status) FROM read_parquet('" + path + "')) TO '" + path + ".new' (FORMAT parquet)"); err != nil {
		t.Fatal(err)
	}
	db.Close()
	os.Rename(path+".new", path)
	python, _ := os.ReadFile(path)
	_, err := duckdb.Open(t.Context(), path)
	if err == nil || !strings.Contains(err.Error(), "remove "+path+".work.duckdb") {
		t.Fatalf("err = %v", err)
	}
	if now, _ := os.ReadFile(path); string(now) != string(python) {
		t.Error("the table was changed")
	}
	if _, err := os.Stat(path + ".work.duckdb"); err != nil {
		t.Errorf("the work file is gone: %v", err)
	}
	os.Remove(path + ".work.duckdb")
	os.Remove(path + ".work.duckdb.wal")
	s, err := duckdb.Open(t.Context(), path)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if rows, _ := s.Select(t.Context(), driver.Filter{Statuses: []driver.Status{driver.Finished}}); len(rows) != 2 {
		t.Errorf("%d finished rows, want the rewritten table's 2", len(rows))
	}
}

// oneClaim makes a two-row table at path and claims its first row, which
// stays in the work file until a flush.
func oneClaim(t *testing.T, path string) *duckdb.Store {
	t.Helper()
	s, err := duckdb.Open(t.Context(), path)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Init(t.Context(), []string{"title"}, drivertest.Rows([][]any{{"a"}, {"b"}})); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Claim(t.Context(), driver.Values{driver.ColStatus: driver.QueuedForStart}); err != nil {
		t.Fatal(err)
	}
	return s
}

// A reader never takes the writer's role, nor makes a work file: a run can
// start while it reads.
func TestReaderLeavesTheWorkFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "jobs.parquet")
	oneClaim(t, path).Close()
	r, err := duckdb.OpenReader(t.Context(), path)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	if _, err := os.Stat(path + ".work.duckdb"); !os.IsNotExist(err) {
		t.Errorf("the reader made a work file: %v", err)
	}
	if rows, _ := r.Select(t.Context(), driver.Filter{Statuses: []driver.Status{driver.QueuedForStart}}); len(rows) != 1 {
		t.Errorf("reader sees %d claimed rows, want 1", len(rows))
	}
	w, err := duckdb.Open(t.Context(), path)
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	if err := w.Writable(); err != nil {
		t.Errorf("a writer opened while a reader reads: %v", err)
	}
}

// A work file being built that a kill cut short, down to a file DuckDB
// cannot read, is made over: the table opens for writing.
func TestBrokenBuildingFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "jobs.parquet")
	if err := writeForeign(path, []string{"title"}, [][]any{{"a"}}); err != nil {
		t.Fatal(err)
	}
	os.WriteFile(path+".work.duckdb.new", []byte("DUCK, half written"), 0o644)
	s, err := duckdb.Open(t.Context(), path)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if err := s.Writable(); err != nil {
		t.Errorf("Writable: %v", err)
	}
}

// A column of the user's called _key was dropped on import, its values
// lost; it is refused by name instead.
func TestForeignKeyColumn(t *testing.T) {
	path := filepath.Join(t.TempDir(), "jobs.parquet")
	if err := writeForeign(path, []string{"_key", "title"}, [][]any{{"k1", "a"}}); err != nil {
		t.Fatal(err)
	}
	_, err := duckdb.Open(t.Context(), path)
	if err == nil || !strings.Contains(err.Error(), `column "_key"`) || !strings.Contains(err.Error(), "jobs.parquet") {
		t.Errorf("err = %v, want the column named", err)
	}
	if left, _ := filepath.Glob(path + ".*"); len(left) > 0 {
		t.Errorf("left %v", left)
	}
}

// A reader reads one version of the table whole while a writer renames a
// new one over it: the version it opened, never the footer of one and the
// data of another ("TProtocolException: Invalid data").
func TestReaderReadsOneVersion(t *testing.T) {
	for _, ext := range []string{".parquet", ".duckdb"} {
		t.Run(ext, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "jobs"+ext)
			oneClaim(t, path).Close()
			replaced := false
			pin.BeforeCopy = func(p string) {
				// What a writer's publish does: a new file renamed over.
				tmp := p + ".new"
				if err := os.WriteFile(tmp, []byte("not the table any more"), 0o644); err != nil {
					t.Fatal(err)
				}
				if err := os.Rename(tmp, p); err != nil {
					t.Fatal(err)
				}
				replaced = true
			}
			defer func() { pin.BeforeCopy = nil }()
			r, err := duckdb.OpenReader(t.Context(), path)
			if err != nil {
				t.Fatalf("reader, with the file replaced during its open: %v", err)
			}
			defer r.Close()
			if !replaced {
				t.Fatal("the reader read the file by its name, not one opened version")
			}
			if rows, _ := r.Select(t.Context(), driver.Filter{Statuses: []driver.Status{driver.QueuedForStart}}); len(rows) != 1 {
				t.Errorf("reader sees %d claimed rows, want 1", len(rows))
			}
		})
	}
}

// TestGeometryCRS: a CRS given before Init makes the geometry column's
// CRS, which the GeoParquet metadata carries and every later open reads
// back, also after a run rewrote the table.
func TestGeometryCRS(t *testing.T) {
	utm, err := crs.LookupCRS(32631)
	if err != nil {
		t.Fatal(err)
	}
	for _, ext := range []string{".parquet", ".duckdb"} {
		t.Run(ext, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "j"+ext)
			s, err := duckdb.Open(t.Context(), path)
			if err != nil {
				t.Fatal(err)
			}
			if err := s.SetGeometryCRS("geometry", utm.PROJJSON); err != nil {
				t.Fatal(err)
			}
			rows := func(yield func([]any, error) bool) { yield([]any{"a", "POINT (500000 5600000)"}, nil) }
			if err := s.Init(t.Context(), []string{"tile", "geometry"}, rows); err != nil {
				t.Fatal(err)
			}
			if err := s.SetGeometryCRS("geometry", utm.PROJJSON); err == nil {
				t.Error("SetGeometryCRS after Init: no error")
			}
			if err := s.Update(t.Context(), driver.Update{Key: 1, Set: driver.Values{driver.ColStatus: driver.Finished, driver.ColID: "j-1"}}); err != nil {
				t.Fatal(err)
			}
			if err := s.Close(); err != nil {
				t.Fatal(err)
			}
			r, err := duckdb.OpenReader(t.Context(), path)
			if err != nil {
				t.Fatal(err)
			}
			defer r.Close()
			if n, err := crs.EPSGOfPROJJSON(r.GeometryCRS("geometry")); n != 32631 || err != nil {
				t.Errorf("CRS read back: %d %v (%.80s)", n, err, r.GeometryCRS("geometry"))
			}
			got, err := r.Select(t.Context(), driver.Filter{})
			if err != nil || len(got) != 1 || got[0].Data["geometry"] != "POINT (500000 5600000)" || got[0].Status != driver.Finished {
				t.Errorf("rows read back: %+v %v", got, err)
			}
		})
	}
}

// TestGeometryCRSAfterKill: a run killed after a change leaves the work
// file, whose DuckDB storage forgets a column's CRS; the next open resumes
// it and the table it publishes still names the CRS (kept in _crs).
func TestGeometryCRSAfterKill(t *testing.T) {
	if dir := os.Getenv("DUCKDB_TEST_KILLED_DIR"); dir != "" {
		// The child: make the table, change a row, and end without Close,
		// as a killed run does.
		utm, err := crs.LookupCRS(32631)
		if err != nil {
			t.Fatal(err)
		}
		s, err := duckdb.Open(t.Context(), filepath.Join(dir, "j.parquet"))
		if err != nil {
			t.Fatal(err)
		}
		if err := s.SetGeometryCRS("geometry", utm.PROJJSON); err != nil {
			t.Fatal(err)
		}
		rows := func(yield func([]any, error) bool) { yield([]any{"a", "POINT (500000 5600000)"}, nil) }
		if err := s.Init(t.Context(), []string{"tile", "geometry"}, rows); err != nil {
			t.Fatal(err)
		}
		if err := s.Update(t.Context(), driver.Update{Key: 1, Set: driver.Values{driver.ColStatus: driver.Finished, driver.ColID: "j-1"}}); err != nil {
			t.Fatal(err)
		}
		os.Exit(0)
	}
	dir := t.TempDir()
	cmd := exec.CommandContext(t.Context(), os.Args[0], "-test.run=^TestGeometryCRSAfterKill$", "-test.count=1")
	cmd.Env = append(os.Environ(), "DUCKDB_TEST_KILLED_DIR="+dir)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("child: %v\n%s", err, out)
	}
	path := filepath.Join(dir, "j.parquet")
	if _, err := os.Stat(path + ".work.duckdb"); err != nil {
		t.Fatalf("the killed run left no work file: %v", err)
	}
	s, err := duckdb.Open(t.Context(), path)
	if err != nil {
		t.Fatal(err)
	}
	if n, err := crs.EPSGOfPROJJSON(s.GeometryCRS("geometry")); n != 32631 || err != nil {
		t.Errorf("CRS after the resume: %d %v", n, err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	r, err := duckdb.OpenReader(t.Context(), path)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	if n, err := crs.EPSGOfPROJJSON(r.GeometryCRS("geometry")); n != 32631 || err != nil {
		t.Errorf("CRS of the table published after the resume: %d %v", n, err)
	}
	got, err := r.Select(t.Context(), driver.Filter{})
	if err != nil || len(got) != 1 || got[0].Status != driver.Finished {
		t.Errorf("rows after the resume: %+v %v", got, err)
	}
}
