package query

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/openeo-batch/worker/internal/pin"
	"github.com/openeo-batch/worker/tableconv"
)

// versions writes n versions of a table in the format of name into dir,
// version i with i+1 rows whose title is "v<i>", and returns their paths.
func versions(t *testing.T, dir, name string, n int) []string {
	t.Helper()
	var paths []string
	for v := range n {
		tab := &tableconv.Table{Columns: []string{"title", "year"}}
		for r := range v + 1 {
			tab.Rows = append(tab.Rows, []any{fmt.Sprint("v", v), int64(2000 + r)})
		}
		p := filepath.Join(dir, fmt.Sprintf("v%d-%s", v, name))
		if _, err := tableconv.Create(t.Context(), p, tab); err != nil {
			t.Fatal(err)
		}
		paths = append(paths, p)
	}
	return paths
}

// replace renames a copy of src over dst, as a run publishes a table.
func replace(t *testing.T, src, dst string) {
	b, err := os.ReadFile(src)
	if err != nil {
		t.Error(err)
		return
	}
	tmp := dst + ".new"
	if err := os.WriteFile(tmp, b, 0o644); err != nil {
		t.Error(err)
		return
	}
	if err := os.Rename(tmp, dst); err != nil {
		t.Error(err)
	}
}

// versionOf reads the DB and returns the version it shows, failing when
// the rows are not all of one version, whole.
func versionOf(t *testing.T, db *DB) string {
	t.Helper()
	res, err := db.Select(t.Context(), "SELECT title, count(*) FROM jobs GROUP BY title")
	if err != nil {
		t.Fatalf("read during a replacement: %v", err)
	}
	if len(res.Rows) != 1 {
		t.Fatalf("rows of several versions: %v", res.Rows)
	}
	v, n := res.Rows[0][0].(string), res.Rows[0][1].(int64)
	if want := fmt.Sprintf("v%d", n-1); v != want {
		t.Fatalf("%d rows of %s: part of a version", n, v)
	}
	return v
}

// A Parquet or DuckDB table replaced after Open has found its file, and
// before DuckDB opens it, reads as the version Open found, in every
// statement of the DB; the next Open sees the new version. The new file
// is not even a table: DuckDB never opens the path again.
func TestReplacedWhileOpen(t *testing.T) {
	for _, name := range []string{"jobs.parquet", "jobs.duckdb"} {
		t.Run(name, func(t *testing.T) {
			dir := t.TempDir()
			vs := versions(t, dir, name, 2)
			path := filepath.Join(dir, name)
			replace(t, vs[0], path)
			garbage := filepath.Join(dir, "garbage")
			os.WriteFile(garbage, []byte("PAR1 not a table at all PAR1"), 0o644)
			pin.BeforeCopy = func(p string) { replace(t, garbage, p) }
			db, err := Open(t.Context(), path)
			pin.BeforeCopy = nil
			if err != nil {
				t.Fatal(err)
			}
			for range 3 {
				if v := versionOf(t, db); v != "v0" {
					t.Errorf("read %s, want v0, the version Open found", v)
				}
			}
			replace(t, vs[1], path)
			if v := versionOf(t, db); v != "v0" {
				t.Errorf("after another replacement: read %s, want v0", v)
			}
			if err := db.Close(); err != nil {
				t.Fatal(err)
			}
			db, err = Open(t.Context(), path)
			if err != nil {
				t.Fatal(err)
			}
			defer db.Close()
			if v := versionOf(t, db); v != "v1" {
				t.Errorf("a new Open read %s, want v1", v)
			}
		})
	}
}

// Reads while another goroutine keeps replacing a Parquet table, as a run
// does: each of a fixed number of reads succeeds and sees one version
// whole (before the fix, one now and then failed with DuckDB's
// "TProtocolException: Invalid data").
func TestReadsDuringReplacements(t *testing.T) {
	dir := t.TempDir()
	vs := versions(t, dir, "jobs.parquet", 3)
	path := filepath.Join(dir, "jobs.parquet")
	replace(t, vs[0], path)
	stop := make(chan struct{})
	var wg sync.WaitGroup
	t.Cleanup(func() { close(stop); wg.Wait() }) // before the folder goes
	wg.Go(func() {
		for i := 1; ; i++ {
			select {
			case <-stop:
				return
			default:
			}
			replace(t, vs[i%len(vs)], path)
		}
	})
	for range 25 {
		db, err := Open(t.Context(), path)
		if err != nil {
			t.Fatal(err)
		}
		versionOf(t, db)
		db.Close()
	}
}

// Errors name the table, not the copy DuckDB reads.
func TestErrorNamesTable(t *testing.T) {
	path := filepath.Join(t.TempDir(), "broken.parquet")
	os.WriteFile(path, []byte("PAR1 this is no Parquet file PAR1"), 0o644)
	_, err := Open(t.Context(), path)
	if err == nil || strings.Contains(err.Error(), "worker-query-") || strings.Count(err.Error(), path) < 2 {
		t.Errorf("Open of a broken Parquet file: %v; want an error naming %s, in DuckDB's words too", err, path)
	}
}

// BenchmarkOpenParquet reads a 20,000-row Parquet table as the dashboard
// does (Open, select every row, Close), and, as the baseline of the same
// run, only the copy that Open makes of the file (pin): their ratio is
// the share of a read that the snapshot costs.
func BenchmarkOpenParquet(b *testing.B) {
	dir := b.TempDir()
	tab := &tableconv.Table{Columns: []string{"title", "year", "geometry"}}
	for i := range 20000 {
		tab.Rows = append(tab.Rows, []any{fmt.Sprint("tile ", i), int64(2000 + i%20), fmt.Sprintf("POLYGON ((%d 0, %d 1, %d 1, %d 0, %d 0))", i, i, i+1, i+1, i)})
	}
	path := filepath.Join(dir, "jobs.parquet")
	if _, err := tableconv.Create(b.Context(), path, tab); err != nil {
		b.Fatal(err)
	}
	b.Run("copy", func(b *testing.B) {
		for b.Loop() {
			p, err := pin.Pin(path)
			if err != nil {
				b.Fatal(err)
			}
			p.Release()
		}
	})
	b.Run("read", func(b *testing.B) {
		for b.Loop() {
			db, err := Open(b.Context(), path)
			if err != nil {
				b.Fatal(err)
			}
			if _, err := db.Select(b.Context(), "SELECT * FROM jobs"); err != nil {
				b.Fatal(err)
			}
			db.Close()
		}
	})
}
