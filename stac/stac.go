// Package stac writes a static STAC Collection of a campaign's results:
// one Item per finished job, whose assets are the files the manager
// downloaded into the job's folder (<root>/job_<id>/, the Python client's
// layout), so that QGIS, a STAC browser or odc-stac can load them.
//
// The catalogue follows STAC 1.1.0 (https://stacspec.org) and its best
// practices for static catalogues: DIR/collection.json, and each Item in
// DIR/<item id>/<item id>.json. Every link and asset href is relative, so
// that DIR and the results can be moved together; put DIR inside the
// results folder to move them as one.
package stac

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"math"
	"mime"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"time"
	"unicode"

	"github.com/paulmach/orb"
	"github.com/paulmach/orb/encoding/wkt"
	"github.com/paulmach/orb/geojson"

	"github.com/openeo-batch/worker/driver"
	"github.com/openeo-batch/worker/internal/atomicfile"
	"github.com/openeo-batch/worker/internal/crs"
	"github.com/openeo-batch/worker/worker"
)

// Version is the STAC version of the documents Export writes.
const Version = "1.1.0"

// ResultsFile is the name of a job's results metadata (the STAC document
// of GET /jobs/{id}/results) in its job folder, as the openEO Python
// client's JobResults.download_files writes it and worker.DownloadResults
// too (worker.ResultsFile). Export reads it when it is there: the
// results' own geometry, datetime and asset media types win over what the
// row says.
const ResultsFile = worker.ResultsFile

// Options tune Export. The zero value (besides RootDir) is fine.
type Options struct {
	// RootDir is the folder holding the job folders, as given to
	// `worker run --root-dir`.
	RootDir string
	// ID, Title, Description and License describe the Collection. ID
	// defaults to "openeo-batch-results", Description to a sentence naming
	// Table, License to "other" (STAC's value for a license that is not
	// one SPDX identifier).
	ID, Title, Description, License string
	// Table names the job table in the default description.
	Table string
	// GeometryColumn is the column holding each row's footprint as WKT;
	// "geometry" when empty. Footprints in another CRS than
	// longitude/latitude (the one the table names, as a GeoParquet "crs",
	// else the row's epsg column, as worker split writes it; see
	// crs.FootprintEPSG) are reprojected to longitude/latitude (EPSG:4326),
	// which STAC requires.
	GeometryColumn string
	// Logger receives a warning per row with a problem; none when nil.
	Logger *slog.Logger
	// RequireComplete makes Export write nothing (no folder either) when
	// a finished row has a Problem: the Result lists them, with Items 0.
	// Without it, the catalogue of the other rows is written.
	RequireComplete bool

	tableEPSG int // the CRS the table names for GeometryColumn; 0 for none
}

// Problem is a finished row whose Item is missing or incomplete.
type Problem struct {
	Key   int64  // the row's key (number)
	JobID string // its job id
	// Skipped is true when no Item was written for the row; false when the
	// Item was written but something is missing (results not complete on
	// disk).
	Skipped bool
	// NoJobFolder is true when the row's job folder is not in RootDir at
	// all: its results were never downloaded there, or RootDir is not the
	// folder they were downloaded to.
	NoJobFolder bool
	// ResultsMissing is true when results are not all on disk: no job
	// folder, no job_<id>.json, or files that job-results.json lists
	// missing or short of their file:size (as `worker download --dry-run`
	// reports them). Fetching them again may complete the Item.
	ResultsMissing bool
	// Geometry is true when the row is left out for its geometry column
	// (not WKT, or not longitude/latitude as STAC requires): the table is
	// at fault, not the results.
	Geometry bool
	Err      string // one line
}

// Result tells what Export wrote.
type Result struct {
	Dir      string // the Collection's folder
	Finished int    // finished rows in the table
	Items    int    // Items written
	Problems []Problem
}

// CheckOptions refuses a Collection id or license STAC 1.1 does not take,
// naming the value:
//   - ID: letters, digits, "-", "_" and "." only (not "." or ".."), so
//     that it is safe in a file name and a URL path, as the STAC best
//     practices advise for ids;
//   - License: one SPDX license identifier ("CC-BY-4.0"), or "other" for
//     any other license (STAC 1.1; "proprietary" and "various", which it
//     deprecates in favour of "other", are still taken): the pattern
//     ^[\w\-\.\+]+$ of STAC's licensing schema.
//
// Empty values are the defaults (see Options).
// The error is an *OptionError.
func CheckOptions(o Options) error {
	if o.ID != "" && !safeID(o.ID) {
		return &OptionError{"ID", o.ID, "use letters, digits, '-', '_' and '.' only, so that it is safe in a path or URL"}
	}
	if o.License != "" && !licensePattern.MatchString(o.License) {
		return &OptionError{"License", o.License, "not an SPDX license identifier (such as CC-BY-4.0 or MIT, see https://spdx.org/licenses/): give one, or other"}
	}
	return nil
}

// OptionError is an Options field whose value STAC does not take.
type OptionError struct {
	Field string // "ID" or "License"
	Value string
	Why   string
}

func (e *OptionError) Error() string {
	name := "license"
	if e.Field == "ID" {
		name = "collection id"
	}
	return fmt.Sprintf("%s %q: %s", name, e.Value, e.Why)
}

// licensePattern is the license pattern of STAC 1.1's licensing schema.
var licensePattern = regexp.MustCompile(`^[\w\-\.\+]+$`)

func safeID(id string) bool {
	if id == "." || id == ".." {
		return false
	}
	for _, r := range id {
		if !unicode.IsLetter(r) && !unicode.IsDigit(r) && !strings.ContainsRune("-_.", r) {
			return false
		}
	}
	return true
}

// ErrExists is returned when the target folder exists and is not empty.
var ErrExists = errors.New("exists and is not empty")

// reserved are the field names that STAC's common metadata gives a
// meaning and a type (item-spec/json-schema/*.json), and those Export
// sets itself. A column of one of these names is written as "table:NAME"
// so that its value never breaks the schema or hides ours; "title" and
// "description" keep their name when they hold text, as they name the job.
var reserved = map[string]bool{
	"title": true, "description": true, "keywords": true, "roles": true,
	"datetime": true, "start_datetime": true, "end_datetime": true, "created": true, "updated": true,
	"license": true, "providers": true, "platform": true, "instruments": true, "constellation": true,
	"mission": true, "gsd": true, "bands": true, "data_type": true, "nodata": true, "statistics": true,
	"unit": true,
}

// PropertyName returns the Item property a table column is written as,
// given its value: the column's name, or "table:NAME" for a name STAC
// reserves (see the package's rules) and for a name with a colon, which
// STAC gives to the fields of an extension ("proj:epsg", "eo:cloud_cover"):
// Export declares no extension (stac_extensions), so a column's value must
// not pass for one's field, whose schema it need not meet.
func PropertyName(column string, value any) string {
	if !reserved[column] && !strings.Contains(column, ":") {
		return column
	}
	if s, ok := value.(string); ok && s != "" && (column == "title" || column == "description") {
		return column
	}
	return "table:" + column
}

// Export writes the STAC Collection of every finished row of store into
// the folder dir, which must not exist or be empty. It builds the
// catalogue in a sibling folder and renames it into place, so dir holds a
// whole catalogue or nothing.
//
// Each finished row becomes one Item, its id the job id:
//   - geometry: the results' own geometry (job-results.json, or a
//     "geometry" in job_<id>.json) when given, else the row's geometry
//     column (WKT, longitude/latitude), else null; bbox from it;
//   - datetime: the results' datetime or start/end interval when given,
//     else the interval from the row's start_time (or the job's created)
//     to the job's updated (or the row's updated_at);
//   - properties: every non-empty column of the row (manager columns
//     included) under its name, see PropertyName; the geometry column is
//     the footprint and is not repeated;
//   - assets: every file of the job folder and its sub-folders (partial
//     downloads left out), keyed by its path there ("data/b03.tif"), with
//     its media type from the results metadata or its extension, and roles
//     "data" or, for the job's metadata files, "metadata".
//
// A row that cannot be an Item (a job id that is no plain name, a
// geometry that is not longitude/latitude WKT) is left out and reported
// in Result.Problems, as is a row whose results are not complete on disk
// (a file that job-results.json lists missing or short of its file:size,
// see worker.MissingAssetFiles; its Item is written with the files there,
// unless Options.RequireComplete). A RootDir that is not a folder (an error
// matching fs.ErrNotExist when it is not there), and errors reading the
// table or writing the folder are returned; nothing is written then.
func Export(ctx context.Context, store driver.Store, dir string, opts Options) (*Result, error) {
	if opts.RootDir == "" {
		return nil, errors.New("stac: no root folder of the job folders given")
	}
	if err := CheckOptions(opts); err != nil {
		return nil, fmt.Errorf("stac: %w", err)
	}
	if st, err := os.Stat(opts.RootDir); err != nil {
		return nil, fmt.Errorf("the root folder of the job folders: %w", err)
	} else if !st.IsDir() {
		return nil, fmt.Errorf("the root folder of the job folders, %s, is a file", opts.RootDir)
	}
	opts = withDefaults(opts)
	if st, err := os.Stat(dir); err == nil && !st.IsDir() {
		return nil, fmt.Errorf("%s is a file, not a folder for the catalogue: choose another", dir)
	}
	if entries, err := os.ReadDir(dir); err == nil && len(entries) > 0 {
		return nil, fmt.Errorf("%s %w: choose another folder", dir, ErrExists)
	}
	absDir, err := filepath.Abs(dir)
	if err != nil {
		return nil, err
	}
	absRoot, err := filepath.Abs(opts.RootDir)
	if err != nil {
		return nil, err
	}
	columns, err := store.Columns(ctx)
	if err != nil {
		return nil, err
	}
	if k, ok := store.(driver.CRSKeeper); ok {
		if def := k.GeometryCRS(opts.GeometryColumn); def != "" {
			if opts.tableEPSG, err = crs.EPSGOfPROJJSON(def); err != nil {
				return nil, fmt.Errorf("column %q: the CRS of its geometries: %w", opts.GeometryColumn, err)
			}
		}
	}
	rows, err := store.Select(ctx, driver.Filter{Statuses: []driver.Status{driver.Finished}})
	if err != nil {
		return nil, err
	}

	res := &Result{Dir: dir, Finished: len(rows)}
	var items []*item
	seen := map[string]bool{}
	for _, row := range rows {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		it, warn, err := buildItem(row, columns, absRoot, absDir, opts)
		if err == nil && seen[it.ID] {
			err = fmt.Errorf("job id %q is that of an earlier row too", row.ID)
		}
		if err != nil {
			var ge geometryError
			res.Problems = append(res.Problems, Problem{Key: row.Key, JobID: row.ID, Skipped: true, Geometry: errors.As(err, &ge), Err: oneLine(err)})
			opts.warn("row left out of the STAC collection", row, err)
			continue
		}
		if warn != nil {
			var nf noJobFolder
			var mr missingResults
			noFolder := errors.As(warn, &nf)
			res.Problems = append(res.Problems, Problem{Key: row.Key, JobID: row.ID, NoJobFolder: noFolder,
				ResultsMissing: noFolder || errors.As(warn, &mr), Err: oneLine(warn)})
			opts.warn("row's Item is incomplete", row, warn)
		}
		seen[it.ID] = true
		items = append(items, it)
	}
	if opts.RequireComplete && len(res.Problems) > 0 {
		return res, nil
	}
	if err := os.MkdirAll(filepath.Dir(absDir), 0o755); err != nil {
		return nil, err
	}

	tmp, err := os.MkdirTemp(filepath.Dir(absDir), "."+filepath.Base(absDir)+".tmp-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(tmp) // gone once renamed; removes a half-written one
	coll := collection(items, opts)
	for _, it := range items {
		if err := os.Mkdir(filepath.Join(tmp, it.ID), 0o755); err != nil {
			return nil, err
		}
		if err := writeJSON(filepath.Join(tmp, it.ID, it.ID+".json"), it); err != nil {
			return nil, err
		}
	}
	if err := writeJSON(filepath.Join(tmp, "collection.json"), coll); err != nil {
		return nil, err
	}
	if err := os.Chmod(tmp, 0o755); err != nil {
		return nil, err
	}
	os.Remove(absDir) // an empty folder may be there; a full one or a file was refused
	if err := os.Rename(tmp, absDir); err != nil {
		return nil, err
	}
	res.Items = len(items)
	return res, nil
}

// noJobFolder is the Problem of a row whose job folder is not there.
type noJobFolder struct{ dir string }

func (e noJobFolder) Error() string { return "no job folder " + e.dir + ": its results are not there" }

// missingResults is the Problem of a row whose results are not all in its
// job folder.
type missingResults struct{ msg string }

func (e missingResults) Error() string { return e.msg }

// geometryError is the Problem of a row whose geometry column cannot be
// an Item's geometry.
type geometryError struct {
	column string
	err    error
}

func (e geometryError) Error() string { return fmt.Sprintf("column %q: %v", e.column, e.err) }
func (e geometryError) Unwrap() error { return e.err }

// oneLine is err's message on one line: errors.Join puts one per line.
func oneLine(err error) string { return strings.ReplaceAll(err.Error(), "\n", "; ") }

func withDefaults(o Options) Options {
	if o.ID == "" {
		o.ID = "openeo-batch-results"
	}
	if o.License == "" {
		o.License = "other"
	}
	if o.Description == "" {
		o.Description = "Results of the openEO batch jobs of a job table"
		if o.Table != "" {
			o.Description += " (" + o.Table + ")"
		}
		o.Description += ", one item per finished job."
	}
	if o.GeometryColumn == "" {
		o.GeometryColumn = "geometry"
	}
	return o
}

func (o Options) warn(msg string, row driver.Job, err error) {
	if o.Logger != nil {
		o.Logger.Warn(msg, "row", row.Key, "job", row.ID, "err", err)
	}
}

// link is a STAC link.
type link struct {
	Rel   string `json:"rel"`
	Href  string `json:"href"`
	Type  string `json:"type,omitempty"`
	Title string `json:"title,omitempty"`
}

// asset is a STAC asset.
type asset struct {
	Href  string   `json:"href"`
	Type  string   `json:"type,omitempty"`
	Title string   `json:"title,omitempty"`
	Roles []string `json:"roles,omitempty"`
}

// item is a STAC Item (a GeoJSON Feature).
type item struct {
	Type        string           `json:"type"`
	StacVersion string           `json:"stac_version"`
	ID          string           `json:"id"`
	Geometry    json.RawMessage  `json:"geometry"`
	BBox        []float64        `json:"bbox,omitempty"`
	Properties  map[string]any   `json:"properties"`
	Links       []link           `json:"links"`
	Assets      map[string]asset `json:"assets"`
	Collection  string           `json:"collection"`

	bound      *orb.Bound // nil without geometry
	start, end time.Time  // the Item's time span
}

const jsonType = "application/json"

// jobMeta is what Export reads of job_<id>.json (GET /jobs/{id}) and of
// job-results.json (GET /jobs/{id}/results).
type jobMeta struct {
	Created    string          `json:"created"`
	Updated    string          `json:"updated"`
	Geometry   json.RawMessage `json:"geometry"`
	Properties struct {
		Datetime      *string `json:"datetime"`
		StartDatetime *string `json:"start_datetime"`
		EndDatetime   *string `json:"end_datetime"`
	} `json:"properties"`
	Assets map[string]resultAsset `json:"assets"`

	raw []byte // the file's content
}

// resultAsset is what Export reads of an asset of job-results.json.
type resultAsset struct {
	Href  string   `json:"href"`
	Type  string   `json:"type"`
	Title string   `json:"title"`
	Roles []string `json:"roles"`
}

// byFile keys the assets of results by the file each is saved as in the
// job folder (worker.AssetPath: "data\b03.tif" is data/b03.tif). Assets
// whose names are refused, or that would share a file, are left out: no
// file is theirs.
func (m *jobMeta) byFile() map[string]resultAsset {
	if m == nil {
		return nil
	}
	out, shared := map[string]resultAsset{}, map[string]bool{}
	for key, a := range m.Assets {
		p, err := worker.AssetPath(key, a.Href)
		if err != nil {
			continue
		}
		if _, dup := out[p]; dup {
			shared[p] = true
		}
		out[p] = a
	}
	for p := range shared {
		delete(out, p)
	}
	return out
}

// readMeta reads a metadata file: nil and an error (os.ErrNotExist when
// it is not there) unless it is there and holds a JSON object.
func readMeta(path string) (*jobMeta, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var m jobMeta
	if err := json.Unmarshal(b, &m); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	m.raw = b
	return &m, nil
}

// buildItem makes the Item of one finished row. err means the row gets no
// Item; warn that its Item lacks something.
func buildItem(row driver.Job, columns []string, root, dir string, opts Options) (it *item, warn, err error) {
	if !plainName(row.ID) {
		return nil, nil, fmt.Errorf("job id %q cannot name a file: no Item", row.ID)
	}
	jobDir := worker.JobDir(root, row.ID)
	metaPath := worker.MetadataPath(root, row.ID)
	job, err := readMeta(metaPath)
	if errors.Is(err, os.ErrNotExist) {
		warn = missingResults{metaPath + " is missing: the results are not (completely) downloaded"}
	} else if err != nil {
		warn = fmt.Errorf("%w: not used", err) // the back-end's document is at fault, not the row
	}
	results, err := readMeta(filepath.Join(jobDir, ResultsFile))
	switch {
	case errors.Is(err, os.ErrNotExist) && job != nil && !holdsResultFile(jobDir, root, row.ID):
		// Nothing lists the job's files, and none is there: a finished
		// job without data is no Item to publish.
		warn = errors.Join(warn, missingResults{"no " + ResultsFile + " and no result file in " + jobDir})
	case err != nil && !errors.Is(err, os.ErrNotExist):
		warn = errors.Join(warn, fmt.Errorf("%w: not used", err))
	}
	it = &item{
		Type: "Feature", StacVersion: Version, ID: row.ID, Geometry: json.RawMessage("null"),
		Properties: map[string]any{}, Assets: map[string]asset{}, Collection: opts.ID,
		Links: []link{
			{Rel: "root", Href: "../collection.json", Type: jsonType},
			{Rel: "parent", Href: "../collection.json", Type: jsonType},
			{Rel: "collection", Href: "../collection.json", Type: jsonType},
		},
	}

	// Footprint: the job's own result geometry wins over the row's.
	var geom orb.Geometry
	rowGeometry := false // the footprint is the row's geometry column
	for _, m := range []*jobMeta{results, job} {
		if m == nil || len(m.Geometry) == 0 || string(m.Geometry) == "null" {
			continue
		}
		g, err := geojson.UnmarshalGeometry(m.Geometry)
		if err == nil {
			err = checkGeometry(g.Geometry())
		}
		if err != nil {
			// The back-end's document is at fault, not the row: its own
			// geometry serves, and the row is reported.
			warn = errors.Join(warn, fmt.Errorf("job %s: the result geometry is refused (%v): the row's is used", row.ID, err))
			continue
		}
		geom = g.Geometry()
		break
	}
	if geom == nil {
		if s, ok := row.Data[opts.GeometryColumn].(string); ok && strings.TrimSpace(s) != "" {
			g, err := wkt.Unmarshal(s)
			if err != nil {
				return nil, nil, geometryError{opts.GeometryColumn, fmt.Errorf("not WKT: %w", err)}
			}
			n, err := crs.FootprintEPSG(opts.tableEPSG, row.Data["epsg"], g.Bound())
			if err == nil {
				g, err = crs.ToLonLat(g, n)
			}
			if err != nil {
				return nil, nil, geometryError{opts.GeometryColumn, fmt.Errorf("%w; STAC requires longitude/latitude (EPSG:4326)", err)}
			}
			if err := checkGeometry(g); err != nil {
				return nil, nil, geometryError{opts.GeometryColumn, err}
			}
			geom, rowGeometry = g, true
		}
	}
	if geom != nil {
		b := geom.Bound()
		raw, err := json.Marshal(geojson.NewGeometry(geom))
		if err != nil {
			return nil, nil, err
		}
		it.Geometry, it.BBox, it.bound = raw, []float64{b.Min[0], b.Min[1], b.Max[0], b.Max[1]}, &b
	}

	// Time: the results' own, else the job's run.
	if err := setTimes(it, row, job, results); err != nil {
		return nil, nil, err
	}

	// Properties: the row's columns.
	for _, c := range columns {
		if c == opts.GeometryColumn && rowGeometry || row.Data[c] == nil {
			continue
		}
		if err := setProperty(it, c, row.Data[c]); err != nil {
			return nil, nil, err
		}
	}
	for _, c := range driver.ManagerColumns() {
		if v := row.Value(c.Name); v != nil {
			if err := setProperty(it, c.Name, v); err != nil {
				return nil, nil, err
			}
		}
	}

	// Assets: the files of the job folder, sub-folders included (an asset
	// key with folders, "data/b03.tif", is saved as such).
	if _, err := os.Stat(jobDir); errors.Is(err, os.ErrNotExist) {
		// The folder's absence says it all: the metadata file in it is
		// missing too.
		return it, noJobFolder{jobDir}, nil
	}
	itemDir := filepath.Join(dir, row.ID)
	resultAssets := results.byFile()
	err = filepath.WalkDir(jobDir, func(path string, e os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		name := e.Name()
		if !e.Type().IsRegular() {
			return nil
		}
		relFile, err := filepath.Rel(jobDir, path)
		if err != nil {
			return err
		}
		key := filepath.ToSlash(relFile)
		// A partial download (.part, .part.meta) or a temporary file of an
		// atomic write left by a kill is no result, unless the back-end
		// lists a result of that name.
		if _, listed := resultAssets[key]; !listed && (strings.HasSuffix(name, ".part") || strings.HasSuffix(name, ".part.meta") || atomicfile.IsTemp(name)) {
			return nil
		}
		rel, err := filepath.Rel(itemDir, path)
		if err != nil {
			return err
		}
		a := asset{Href: relHref(rel), Title: key, Type: MediaType(name), Roles: []string{"data"}}
		ra, isResult := resultAssets[key]
		switch key {
		case filepath.Base(metaPath), ResultsFile, filepath.Base(worker.ErrorLogPath(root, row.ID)):
			a.Roles, a.Type = []string{"metadata"}, jsonType
			isResult = false // the manager's file, whatever the back-end lists
		}
		if isResult {
			if ra.Type != "" {
				a.Type = ra.Type
			}
			if len(ra.Roles) > 0 {
				a.Roles = ra.Roles
			}
			if ra.Title != "" {
				a.Title = ra.Title
			}
		}
		it.Assets[key] = a
		return nil
	})
	if err != nil {
		return nil, nil, err
	}
	// The files job-results.json lists must all be there, whole, as
	// `worker download` checks them.
	if results != nil {
		missing, err := worker.MissingResultFiles(jobDir, row.ID, results.raw)
		var bad worker.BadResultsError
		switch {
		case errors.As(err, &bad):
			warn = errors.Join(warn, fmt.Errorf("%w: its asset list is not checked", err))
		case err != nil:
			return nil, nil, err
		case len(missing) > 0:
			warn = errors.Join(warn, missingResults{fmt.Sprintf("%s lists results not on disk: missing %s",
				ResultsFile, strings.Join(missing, ", "))})
		}
	}
	return it, warn, nil
}

// checkGeometry refuses what cannot be an Item's geometry (GeoJSON, RFC
// 7946, in longitude/latitude as STAC requires): a GeometryCollection,
// lines of fewer than two positions, rings of fewer than four or not
// closed, positions that are not finite or outside -180..180, -90..90.
func checkGeometry(g orb.Geometry) error {
	var err error
	pos := func(p orb.Point) {
		if err == nil && !(p[0] >= -180 && p[0] <= 180 && p[1] >= -90 && p[1] <= 90) {
			err = fmt.Errorf("position %v is not longitude/latitude (EPSG:4326), which STAC requires", p)
		}
	}
	line := func(ps []orb.Point, min int, ring bool) {
		if err == nil && len(ps) < min {
			err = fmt.Errorf("a line or ring of %d positions", len(ps))
		}
		if err == nil && ring && ps[0] != ps[len(ps)-1] {
			err = errors.New("a ring that is not closed")
		}
		for _, p := range ps {
			pos(p)
		}
	}
	switch g := g.(type) {
	case orb.Point:
		pos(g)
	case orb.MultiPoint:
		for _, p := range g {
			pos(p)
		}
	case orb.LineString:
		line(g, 2, false)
	case orb.MultiLineString:
		for _, l := range g {
			line(l, 2, false)
		}
	case orb.Polygon:
		for _, r := range g {
			line(r, 4, true)
		}
	case orb.MultiPolygon:
		for _, p := range g {
			for _, r := range p {
				line(r, 4, true)
			}
		}
	case nil:
		return errors.New("no geometry")
	default:
		return fmt.Errorf("a %s cannot be an Item's geometry", g.GeoJSONType())
	}
	return err
}

// setProperty puts a column's value into the Item's properties.
func setProperty(it *item, column string, v any) error {
	if f, ok := v.(float64); ok && (math.IsNaN(f) || math.IsInf(f, 0)) {
		return fmt.Errorf("column %q: %v has no JSON form", column, f)
	}
	name := PropertyName(column, v)
	if _, dup := it.Properties[name]; dup {
		return fmt.Errorf("column %q: property %q is set twice", column, name)
	}
	it.Properties[name] = v
	return nil
}

// setTimes sets datetime, or start_datetime and end_datetime.
func setTimes(it *item, row driver.Job, job, results *jobMeta) error {
	if results != nil {
		p := results.Properties
		start, sok := parseTime(deref(p.StartDatetime))
		end, eok := parseTime(deref(p.EndDatetime))
		if sok && eok {
			return interval(it, start, end)
		}
		if t, ok := parseTime(deref(p.Datetime)); ok {
			it.Properties["datetime"] = t.Format(time.RFC3339Nano)
			it.start, it.end = t, t
			return nil
		}
	}
	start, sok := parseTime(row.StartTime)
	if !sok && job != nil {
		start, sok = parseTime(job.Created)
	}
	var end time.Time
	eok := false
	if job != nil {
		end, eok = parseTime(job.Updated)
	}
	if !eok {
		end, eok = parseTime(row.UpdatedAt)
	}
	switch {
	case sok && eok:
		return interval(it, start, end)
	case sok || eok:
		t := start
		if eok {
			t = end
		}
		it.Properties["datetime"] = t.Format(time.RFC3339Nano)
		it.start, it.end = t, t
		return nil
	}
	return errors.New("no time: neither start_time nor updated_at nor the job's metadata give one")
}

func interval(it *item, start, end time.Time) error {
	if end.Before(start) {
		start, end = end, start
	}
	it.Properties["datetime"] = nil
	it.Properties["start_datetime"] = start.Format(time.RFC3339Nano)
	it.Properties["end_datetime"] = end.Format(time.RFC3339Nano)
	it.start, it.end = start, end
	return nil
}

func deref(s *string) string {
	if s == nil {
		return ""
	}
	return *s
}

// parseTime reads RFC 3339 and the forms pandas writes; a time without a
// zone is UTC, as the manager writes them. The result is in UTC.
func parseTime(s string) (time.Time, bool) {
	s = strings.TrimSpace(s)
	if s == "" {
		return time.Time{}, false
	}
	for _, layout := range []string{time.RFC3339Nano, "2006-01-02T15:04:05.999999999", "2006-01-02 15:04:05.999999999Z07:00", "2006-01-02 15:04:05.999999999"} {
		if t, err := time.Parse(layout, s); err == nil {
			return t.UTC(), true
		}
	}
	return time.Time{}, false
}

// collection builds the Collection document over items.
func collection(items []*item, o Options) map[string]any {
	links := []link{{Rel: "root", Href: "./collection.json", Type: jsonType, Title: o.Title}}
	var box *orb.Bound
	var start, end time.Time
	for _, it := range items {
		links = append(links, link{Rel: "item", Href: relHref(it.ID + "/" + it.ID + ".json"), Type: "application/geo+json"})
		if it.bound != nil {
			if box == nil {
				b := *it.bound
				box = &b
			} else {
				b := box.Union(*it.bound)
				box = &b
			}
		}
		if start.IsZero() || it.start.Before(start) {
			start = it.start
		}
		if it.end.After(end) {
			end = it.end
		}
	}
	bbox := []float64{-180, -90, 180, 90}
	if box != nil {
		bbox = []float64{box.Min[0], box.Min[1], box.Max[0], box.Max[1]}
	}
	interval := []any{nil, nil}
	if len(items) > 0 {
		interval = []any{start.Format(time.RFC3339Nano), end.Format(time.RFC3339Nano)}
	}
	c := map[string]any{
		"type": "Collection", "stac_version": Version, "id": o.ID, "description": o.Description,
		"license": o.License,
		"extent": map[string]any{
			"spatial":  map[string]any{"bbox": [][]float64{bbox}},
			"temporal": map[string]any{"interval": [][]any{interval}},
		},
		"links": links,
	}
	if o.Title != "" {
		c["title"] = o.Title
	}
	return c
}

// mediaTypes are the media types of the result formats openEO back-ends
// write, as the STAC best practices name them.
var mediaTypes = map[string]string{
	".tif": "image/tiff; application=geotiff", ".tiff": "image/tiff; application=geotiff",
	".nc": "application/x-netcdf", ".json": "application/json", ".geojson": "application/geo+json",
	".parquet": "application/vnd.apache.parquet", ".csv": "text/csv", ".png": "image/png",
	".jpg": "image/jpeg", ".jpeg": "image/jpeg", ".jp2": "image/jp2", ".txt": "text/plain",
	".gpkg": "application/geopackage+sqlite3", ".h5": "application/x-hdf5", ".zip": "application/zip",
	".xml": "application/xml", ".html": "text/html",
}

// MediaType returns the media type of a file from its extension (GeoTIFF,
// netCDF, JSON, GeoJSON, Parquet, CSV, PNG, JPEG ...), or "" when unknown.
func MediaType(name string) string {
	ext := strings.ToLower(filepath.Ext(name))
	if t, ok := mediaTypes[ext]; ok {
		return t
	}
	return mime.TypeByExtension(ext)
}

// relHref turns a relative file path into a relative URL reference: slash
// separated, each segment escaped, never taken for a scheme.
func relHref(rel string) string {
	u := url.URL{Path: filepath.ToSlash(rel)}
	s := u.EscapedPath()
	if first, _, _ := strings.Cut(s, "/"); strings.Contains(first, ":") {
		s = "./" + s
	}
	return s
}

// plainName reports whether s can name a file and a folder by itself.
func plainName(s string) bool {
	return s != "" && s != "." && s != ".." && !strings.ContainsAny(s, "/\\\x00") &&
		!slices.Contains([]string{"collection.json"}, s) && filepath.VolumeName(s) == ""
}

func writeJSON(path string, v any) error {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	enc.SetIndent("", "  ")
	if err := enc.Encode(v); err != nil {
		return err
	}
	return atomicfile.WriteFile(path, buf.Bytes(), 0o644)
}

// holdsResultFile reports whether the job folder holds a regular file
// other than the manager's own (job_<id>.json, the error log), in it or
// in a sub-folder; temporary files of a write cut short do not count.
func holdsResultFile(jobDir, root, id string) bool {
	own := map[string]bool{worker.MetadataPath(root, id): true, worker.ErrorLogPath(root, id): true}
	found := false
	filepath.WalkDir(jobDir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || found {
			return nil
		}
		name := d.Name()
		if d.Type().IsRegular() && !own[p] && !strings.HasSuffix(name, ".tmp") && !strings.HasSuffix(name, ".part") && !strings.HasSuffix(name, ".part.meta") {
			found = true
			return filepath.SkipAll
		}
		return nil
	})
	return found
}
