// Package dashboard serves a read-only web page of a job table: a map of
// the rows' footprints coloured by status, counts per status and back-end,
// progress over time, totals of costs and usage, the failed rows with their
// last_error, and links to each job's downloaded results and error log.
//
// The page is plain HTML and JavaScript with Leaflet (from npm at the
// version pinned in package-lock.json, copied by `make assets`), all
// embedded in the binary: it loads nothing from another origin unless a
// tile server is configured, and without one it draws the footprints on a
// plain background with a graticule. The page asks /api/data again every
// Options.Interval; each request reads a fresh snapshot through
// Options.Read, so a run writing the table is never disturbed by the page.
package dashboard

import (
	"bytes"
	"context"
	"crypto/sha256"
	"embed"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net/http"
	"net/url"
	"os"
	"path"
	"strings"
	"sync"
	"time"

	"github.com/klauspost/compress/gzhttp"
	"golang.org/x/sync/singleflight"
)

//go:embed web
var web embed.FS

// Options configure a dashboard.
type Options struct {
	// Read returns a snapshot of the table; it is called once per
	// /api/data request (concurrent requests share one call).
	Read func(ctx context.Context) (*Table, error)
	// RootDir is the folder of the jobs' files (<root>/job_<id>/, as
	// worker run --root-dir writes them), served read-only under /files/
	// and confined to it; "" serves no files. A folder that is not there
	// yet (a dashboard started before the run) is opened once it is.
	RootDir string
	// GeometryColumn names the column of the footprints; "" is "geometry".
	GeometryColumn string
	// Tiles is an XYZ tile URL template (https://.../{z}/{x}/{y}.png) for a
	// background map; "" draws a plain background with a graticule, as the
	// page also does while tiles cannot be fetched.
	Tiles string
	// Interval is how often the page asks for new data; 0 is 5 s.
	Interval time.Duration
	// Now returns the current time (the "generated at" of the data); nil is time.Now.
	Now func() time.Time
	// Logger gets one line per failed read; nil discards.
	Logger *slog.Logger
}

// Server is the dashboard's http.Handler.
type Server struct {
	opts  Options
	mux   *http.ServeMux
	group singleflight.Group

	rootMu sync.Mutex
	root   *os.Root // nil until RootDir is there

	mu    sync.Mutex
	geoms map[string]json.RawMessage // footprints of the last read, by cell text
}

// New returns the dashboard. It fails when RootDir is there but cannot be
// opened (a file, say); one that is not there yet is opened once it is.
func New(opts Options) (*Server, error) {
	if opts.Read == nil {
		return nil, errors.New("dashboard: no Read function")
	}
	if opts.Interval <= 0 {
		opts.Interval = 5 * time.Second
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.Tiles != "" && !strings.HasPrefix(opts.Tiles, "https://") && !strings.HasPrefix(opts.Tiles, "http://") {
		return nil, fmt.Errorf("dashboard: tile URL %q is not http(s)", opts.Tiles)
	}
	s := &Server{opts: opts, mux: http.NewServeMux()}
	if opts.RootDir != "" {
		if _, err := s.openRoot(); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return nil, err
		}
		s.mux.Handle("GET /files/", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			// A downloaded HTML file must not run scripts in the page's origin.
			w.Header().Set("Content-Security-Policy", "sandbox")
			root, err := s.openRoot()
			if err != nil {
				http.Error(w, "the results folder is not there (yet)", http.StatusNotFound)
				return
			}
			// os.Root refuses every path leaving the folder, ".." and
			// symbolic links out of it included.
			http.StripPrefix("/files", http.FileServerFS(confined{root.FS(), s.opts.Logger})).ServeHTTP(w, r)
		}))
	}
	static, _ := fs.Sub(web, "web")
	// The page and its data are gzip-compressed for a client that takes
	// it (Accept-Encoding): the data of a large table shrinks several
	// times (BenchmarkServe in cmd/worker). Job files are served as they are.
	s.mux.Handle("GET /", gzhttp.GzipHandler(http.FileServerFS(static)))
	s.mux.Handle("GET /api/data", gzhttp.GzipHandler(http.HandlerFunc(s.data)))
	return s, nil
}

// openRoot returns the root directory, opening it when it is not open
// yet: an error matching fs.ErrNotExist while it is not there.
func (s *Server) openRoot() (*os.Root, error) {
	s.rootMu.Lock()
	defer s.rootMu.Unlock()
	if s.root != nil {
		return s.root, nil
	}
	root, err := os.OpenRoot(s.opts.RootDir)
	if err != nil {
		return nil, fmt.Errorf("dashboard: root directory: %w", err)
	}
	s.root = root
	return root, nil
}

// confined is the root directory's file system as the file server sees it:
// a path os.Root refuses (a symbolic link out of the folder, a loop) is
// forbidden (403), not a server error; the cause is logged.
type confined struct {
	fsys fs.FS
	log  *slog.Logger
}

func (c confined) Open(name string) (fs.File, error) {
	f, err := c.fsys.Open(name)
	if err != nil && !errors.Is(err, fs.ErrNotExist) && !errors.Is(err, fs.ErrPermission) {
		c.log.Warn("dashboard: file refused", "path", name, "err", err)
		return nil, &fs.PathError{Op: "open", Path: name, Err: fs.ErrPermission}
	}
	return f, err
}

// Close releases the root directory.
func (s *Server) Close() error {
	s.rootMu.Lock()
	defer s.rootMu.Unlock()
	if s.root != nil {
		return s.root.Close()
	}
	return nil
}

// ServeHTTP answers GET and HEAD only: the dashboard changes nothing.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		w.Header().Set("Allow", "GET, HEAD")
		http.Error(w, "the dashboard is read-only", http.StatusMethodNotAllowed)
		return
	}
	csp := "default-src 'self'; img-src 'self' data:"
	if s.opts.Tiles != "" {
		if u := tileOrigin(s.opts.Tiles); u != "" {
			csp = "default-src 'self'; img-src 'self' data: " + u
		}
	}
	w.Header().Set("Content-Security-Policy", csp)
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.Header().Set("Referrer-Policy", "no-referrer")
	s.mux.ServeHTTP(w, r)
}

// tileOrigin is the scheme and host of a tile URL template, with any {s}
// subdomain placeholder widened to a wildcard.
func tileOrigin(tmpl string) string {
	scheme, rest, ok := strings.Cut(tmpl, "://")
	if !ok {
		return ""
	}
	host, _, _ := strings.Cut(rest, "/")
	return scheme + "://" + strings.ReplaceAll(host, "{s}", "*")
}

// data answers the page's data as JSON, with an ETag so that an unchanged
// table costs the page nothing.
func (s *Server) data(w http.ResponseWriter, r *http.Request) {
	// One read serves every request waiting; a request that goes away
	// does not cancel it for the others.
	v, err, _ := s.group.Do("data", func() (any, error) { return s.Data(context.WithoutCancel(r.Context())) })
	if err != nil {
		s.opts.Logger.Warn("dashboard: reading the table", "err", err)
		http.Error(w, err.Error(), http.StatusServiceUnavailable)
		return
	}
	d := *v.(*Data)
	// generated_at changes on every read; the ETag covers the rest. It is
	// the first field, so the body is encoded once without it and the
	// time put in after.
	gen := d.GeneratedAt
	d.GeneratedAt = ""
	body, err := json.Marshal(d)
	if err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	sum := sha256.Sum256(body)
	etag := `"` + hex.EncodeToString(sum[:16]) + `"`
	w.Header().Set("ETag", etag)
	w.Header().Set("Cache-Control", "no-cache")
	if r.Header.Get("If-None-Match") == etag {
		w.WriteHeader(http.StatusNotModified)
		return
	}
	const empty = `{"generated_at":""`
	if !bytes.HasPrefix(body, []byte(empty)) {
		http.Error(w, "dashboard: generated_at is not the first field of the data", http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	fmt.Fprintf(w, `{"generated_at":%q`, gen)
	w.Write(body[len(empty):])
}

// Data reads the table and computes what the page shows.
func (s *Server) Data(ctx context.Context) (*Data, error) {
	t, err := s.opts.Read(ctx)
	if err != nil {
		return nil, err
	}
	s.mu.Lock()
	d, geoms := build(t, s.opts.GeometryColumn, s.opts.Now(), s.geoms)
	s.geoms = geoms
	s.mu.Unlock()
	d.IntervalMS = s.opts.Interval.Milliseconds()
	if s.opts.RootDir != "" {
		// Until the folder is there, no row has files to link.
		d.HasRoot = true
		if root, err := s.openRoot(); err == nil {
			s.files(d, root)
		}
	}
	d.Tiles = s.opts.Tiles
	return d, nil
}

// files links each row with a job id to its folder, error log and
// metadata under the root directory, when they are there.
func (s *Server) files(d *Data, root *os.Root) {
	idCol := -1
	for i, c := range d.Columns {
		if c == "id" {
			idCol = i
		}
	}
	if idCol < 0 {
		return
	}
	entries, err := fs.ReadDir(root.FS(), ".")
	if err != nil {
		s.opts.Logger.Warn("dashboard: listing the root directory", "err", err)
		return
	}
	dirs := map[string]bool{}
	for _, e := range entries {
		if e.IsDir() {
			dirs[e.Name()] = true
		}
	}
	for n, r := range d.Rows {
		id, _ := r[idCol].(string)
		dir := "job_" + id
		if id == "" || strings.ContainsAny(id, `/\`) || !dirs[dir] {
			continue
		}
		f := Files{Dir: "files/" + url.PathEscape(dir) + "/"}
		for _, name := range []struct {
			file string
			to   *string
		}{{dir + "_errors.json", &f.ErrorLog}, {dir + ".json", &f.Metadata}} {
			if _, err := root.Stat(path.Join(dir, name.file)); err == nil {
				*name.to = f.Dir + url.PathEscape(name.file)
			}
		}
		d.Files[n] = f
	}
}
