package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/openeo-batch/worker/dashboard"
	"github.com/openeo-batch/worker/driver"
	"github.com/openeo-batch/worker/internal/crs"
	"github.com/openeo-batch/worker/query"
	"github.com/openeo-batch/worker/tableconv"
)

var serveCmd = command{
	name: "serve",
	usage: `
Usage: worker serve --db TABLE [--addr 127.0.0.1:8080] [--root-dir DIR]

Serves a read-only web dashboard of a job table, running or finished: a map
of the rows' footprints (the geometry column) coloured by status with a
legend, the row of a clicked footprint with links to its downloaded results
and error log (under --root-dir, served read-only), counts per status and
back-end, progress over time, totals of costs and usage, and the failed rows
with their last_error. The page reads the table again every --interval, as
worker query does: it writes nothing and never disturbs a run, on every
table format. Everything the page needs is in the binary; it loads nothing
from the internet unless --tiles names a tile server, and without one (or
while it cannot be reached) it draws the footprints on a plain background
with a graticule. Footprints in a projected CRS (the one a GeoParquet
names, else the row's epsg column as worker split writes it) are drawn in
longitude/latitude; a row whose CRS is not known and whose coordinates are
not longitude/latitude is listed under the map with the reason.

--root-dir may name a folder that is not there yet (a dashboard started
before the run): the rows' files show once it is. A symbolic link out of
it is refused (403). --interval is at least 500ms. A --geometry-column the
table does not have, an --addr that is not host:port and a --db that is
not there or no table format are bad usage (exit 2).

The dashboard listens on loopback by default. It has no login: listen on
another address only on a network you trust.

Example:
  worker serve --db jobs.db --root-dir results
  worker serve --db jobs.parquet --addr 127.0.0.1:9000 --tiles 'https://tile.openstreetmap.org/{z}/{x}/{y}.png'
`,
	run: runServe,
}

func runServe(ctx context.Context, fs *flag.FlagSet, args []string, stdout, stderr io.Writer) error {
	db := fs.String("db", "", "job table (required)")
	addr := fs.String("addr", "127.0.0.1:8080", "address to listen on (host:port; port 0 picks a free one)")
	rootDir := fs.String("root-dir", "", "folder of the jobs' files (as given to worker run), served read-only")
	geometry := fs.String("geometry-column", "geometry", "column holding the footprints (WKT, or WKB in Parquet and DuckDB)")
	tiles := fs.String("tiles", "", "XYZ tile URL template for a background map (none by default: the page stays offline)")
	interval := fs.Duration("interval", 5*time.Second, "how often the page reads the table again")
	logger := logFlags(fs, stderr)
	if err := parse(fs, args); err != nil {
		return err
	}
	if *db == "" {
		return usagef("serve: --db is required")
	}
	if *interval < minServeInterval {
		return usagef("serve: --interval must be at least %s, not %s: every page reads the whole table that often", minServeInterval, *interval)
	}
	if err := checkListenAddr(*addr); err != nil {
		return err
	}
	if _, _, err := driver.Lookup(*db); err != nil {
		return usagef("serve: --db: %v", err)
	}
	if err := mustExist(*db); err != nil {
		var noTable *tableconv.NoTableError
		if errors.As(err, &noTable) {
			return usagef("serve: --db %v; create it with: worker init --from FILE.csv --db %s", err, shellQuote(*db))
		}
		return err
	}
	geometryGiven := false
	fs.Visit(func(f *flag.Flag) { geometryGiven = geometryGiven || f.Name == "geometry-column" })
	log := logger()
	srv, err := dashboard.New(dashboard.Options{
		Read:           func(ctx context.Context) (*dashboard.Table, error) { return readSnapshot(ctx, *db) },
		RootDir:        *rootDir,
		GeometryColumn: *geometry,
		Tiles:          *tiles,
		Interval:       *interval,
		Logger:         log,
	})
	if err != nil {
		return usagef("serve: %v", err)
	}
	defer srv.Close()
	// Read once before listening: a table that cannot be read is an error
	// now, not a page that says so later.
	d, err := srv.Data(ctx)
	if err != nil {
		return err
	}
	if geometryGiven && !slices.Contains(d.Columns, *geometry) {
		return usagef("serve: --geometry-column %q is not a column of %s (its columns: %s)", *geometry, *db, strings.Join(d.Columns, ", "))
	}
	if *rootDir != "" {
		if _, err := os.Stat(*rootDir); errors.Is(err, os.ErrNotExist) {
			log.Info("serve: --root-dir is not there yet; the rows' files show once worker run creates it", "root_dir", *rootDir)
		}
	}
	ln, err := net.Listen("tcp", *addr)
	if err != nil {
		var ae *net.AddrError
		var de *net.DNSError
		if errors.As(err, &ae) || errors.As(err, &de) {
			return usagef("serve: --addr %s: %v", *addr, err)
		}
		return fmt.Errorf("serve: %w", err)
	}
	var handler http.Handler = srv
	if ip := ln.Addr().(*net.TCPAddr).IP; !ip.IsLoopback() {
		log.Warn("serve: the dashboard has no login and listens beyond this machine", "addr", ln.Addr().String())
	} else {
		handler = loopbackHost(srv)
	}
	hs := &http.Server{Handler: handler, ReadHeaderTimeout: 10 * time.Second}
	log.Info("serve: dashboard", "url", "http://"+ln.Addr().String()+"/", "db", *db)
	done := make(chan error, 1)
	go func() { done <- hs.Serve(ln) }()
	select {
	case err := <-done:
		return fmt.Errorf("serve: %w", err)
	case <-ctx.Done():
	}
	shut, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := hs.Shutdown(shut); err != nil && !errors.Is(err, context.DeadlineExceeded) {
		return err
	}
	return nil
}

// minServeInterval is the shortest --interval serve takes: each page
// reads the whole table that often.
const minServeInterval = 500 * time.Millisecond

// checkListenAddr refuses, as bad usage, a --addr that is not host:port
// with a port from 0 to 65535.
func checkListenAddr(addr string) error {
	_, port, err := net.SplitHostPort(addr)
	if err != nil {
		return usagef("serve: --addr %s: %v (want host:port, such as 127.0.0.1:8080)", addr, err)
	}
	if n, err := strconv.Atoi(port); err != nil || n < 0 || n > 65535 {
		return usagef("serve: --addr %s: port %q is not a number from 0 to 65535", addr, port)
	}
	return nil
}

// loopbackHost refuses requests whose Host is not a loopback name or
// address: a web page elsewhere that points its own host name at 127.0.0.1
// (DNS rebinding) must not read the table through the user's browser.
func loopbackHost(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		host := r.Host
		if name, _, err := net.SplitHostPort(host); err == nil {
			host = name
		}
		ip := net.ParseIP(host)
		if host != "localhost" && (ip == nil || !ip.IsLoopback()) {
			http.Error(w, "the dashboard listens on loopback: use http://127.0.0.1 or http://localhost", http.StatusMisdirectedRequest)
			return
		}
		h.ServeHTTP(w, r)
	})
}

// readSnapshot reads a snapshot of a table as worker query does (package
// query), so it is safe while a run writes the table: Parquet and DuckDB
// tables through DuckDB (query.Open, which reads the version of the file
// it found even when a run replaces it meanwhile), SQLite and CSV tables
// through their store (tableconv.ReadStore, which query.Open copies into
// DuckDB; the dashboard needs no SQL over them). Each read opens DuckDB
// afresh, to see the table's latest version.
func readSnapshot(ctx context.Context, location string) (*dashboard.Table, error) {
	_, path, _ := strings.Cut(location, "://")
	if path == "" {
		path = location
	}
	switch strings.ToLower(filepath.Ext(path)) {
	case ".parquet", ".geoparquet", ".duckdb", ".ddb":
		return selectSnapshot(ctx, location)
	}
	t, err := tableconv.ReadStore(ctx, location)
	if err != nil {
		return nil, err
	}
	return &dashboard.Table{Columns: t.Columns, Rows: t.Rows, EPSG: t.EPSG}, nil
}

// selectSnapshot reads every row of a table through query.Open.
func selectSnapshot(ctx context.Context, location string) (*dashboard.Table, error) {
	db, err := query.Open(ctx, location)
	if err != nil {
		return nil, err
	}
	defer db.Close()
	res, err := db.Select(ctx, "SELECT * FROM jobs")
	if err != nil {
		return nil, fmt.Errorf("%s: %w", location, err)
	}
	t := &dashboard.Table{Columns: res.Columns, Rows: res.Rows}
	if slices.Contains(res.Columns, tableconv.GeometryColumn) && len(res.Rows) > 0 {
		// The CRS a GeoParquet names is in its GEOMETRY column's type.
		typ, err := db.Select(ctx, "SELECT typeof("+tableconv.GeometryColumn+") FROM jobs LIMIT 1")
		if err != nil {
			return nil, fmt.Errorf("%s: %w", location, err)
		}
		if s, ok := typ.Rows[0][0].(string); ok {
			if def, ok := crs.OfGeometryType(s); ok {
				if t.EPSG, err = crs.EPSGOfPROJJSON(def); err != nil {
					return nil, fmt.Errorf("%s: column %q: the CRS of its geometries: %w", location, tableconv.GeometryColumn, err)
				}
			}
		}
	}
	return t, nil
}
