package dashboard

import (
	"encoding/json"
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/paulmach/orb/encoding/wkb"
	"github.com/paulmach/orb/geojson"

	"github.com/openeo-batch/worker/driver"
	"github.com/openeo-batch/worker/internal/crs"
	"github.com/openeo-batch/worker/internal/jsoncell"
	"github.com/openeo-batch/worker/query"
	"github.com/openeo-batch/worker/udpjob"
)

// Table is one snapshot of a job table: its column names (the user's, then
// the manager's, see driver.ManagerColumns) and its rows, one value per
// column: nil, string, []byte (a WKB geometry), int64, float64, bool or
// time.Time, as database/sql scans them.
type Table struct {
	Columns []string
	Rows    [][]any
	// EPSG is the CRS the table names for its geometry column (a
	// GeoParquet "crs"), as an EPSG code; 0 when it names none. Without
	// one, a row's epsg column says the CRS of coordinates that are not
	// longitude/latitude (see crs.FootprintEPSG).
	EPSG int
}

// StatusColors maps each status (driver.Statuses) to the CSS colour of its
// footprints and legend entry. Rows in a status not listed here (a table
// written by a newer tool) are drawn in OtherColor.
var StatusColors = map[driver.Status]string{
	driver.NotStarted:     "#9e9e9e",
	driver.QueuedForStart: "#90caf9",
	driver.StartFailed:    "#8e24aa",
	driver.Skipped:        "#bdbdbd",
	driver.Created:        "#4fc3f7",
	driver.Queued:         "#1e88e5",
	driver.Running:        "#fb8c00",
	driver.Finished:       "#43a047",
	driver.Error:          "#e53935",
	driver.Canceled:       "#6d4c41",
}

// OtherColor is the colour of rows whose status is not a known one.
const OtherColor = "#000000"

// failedStatuses are the statuses of rows listed in the failed-rows table.
var failedStatuses = []driver.Status{driver.Error, driver.StartFailed, driver.Canceled}

// endedStatuses are the statuses whose updated_at marks the end of the row's job.
var endedStatuses = []driver.Status{driver.Finished, driver.Error, driver.StartFailed, driver.Canceled, driver.Skipped}

// Data is what /api/data answers: everything the page shows.
type Data struct {
	GeneratedAt    string            `json:"generated_at"` // RFC 3339, UTC
	Columns        []string          `json:"columns"`
	GeometryColumn string            `json:"geometry_column"` // "" when the table has none
	Rows           [][]any           `json:"rows"`            // cells as JSON scalars; geometries as WKT text or "WKB (n bytes)"
	Statuses       []string          `json:"statuses"`        // legend order
	Colors         map[string]string `json:"colors"`
	Features       []Feature         `json:"features"`    // one per row with a footprint
	Unmapped       []Unmapped        `json:"unmapped"`    // rows without a footprint, and why
	Counts         Counts            `json:"counts"`      // as worker status --json
	Totals         Totals            `json:"totals"`      // sums of costs and usage
	Progress       []Point           `json:"progress"`    // cumulative counts over time
	BadTimes       []string          `json:"bad_times"`   // "row 3, column start_time: ..." for times not RFC 3339
	Files          map[int]Files     `json:"files"`       // by row index; only with a root directory
	IntervalMS     int64             `json:"interval_ms"` // how often the page asks again
	Tiles          string            `json:"tiles"`       // XYZ tile URL template; "" for none
	HasRoot        bool              `json:"has_root"`    // files are served (a root directory was given)
}

// Feature is a GeoJSON Feature of one row's footprint; its id is the row's
// index in Data.Rows.
type Feature struct {
	Type       string          `json:"type"` // "Feature"
	ID         int             `json:"id"`
	Geometry   json.RawMessage `json:"geometry"`
	Properties FeatureProps    `json:"properties"`
}

// FeatureProps are the properties the map needs to style a footprint.
type FeatureProps struct {
	Row    int    `json:"row"`
	Status string `json:"status"`
	Color  string `json:"color"`
}

// Unmapped is a row the map cannot draw.
type Unmapped struct {
	Row    int    `json:"row"`
	Reason string `json:"reason"`
}

// Counts are the rows per status and per back-end and status, in the
// shape of `worker status --json`.
type Counts struct {
	Total     int            `json:"total"`
	ByStatus  map[string]int `json:"by_status"`
	ByBackend []BackendCount `json:"by_backend_and_status"`
}

// BackendCount is the number of rows of one back-end in one status.
type BackendCount struct {
	Backend string `json:"backend_name"`
	Status  string `json:"status"`
	Count   int    `json:"count"`
}

// Totals sums the costs (credits, as the back-ends report them) and the
// usage columns. Usage values are "value unit" texts (e.g. "40668
// cpu-seconds"), summed per unit; a value that is not a number and a unit
// is counted in Unparsed, never dropped silently.
type Totals struct {
	Costs    float64            `json:"costs"`
	CPU      map[string]float64 `json:"cpu"`
	Memory   map[string]float64 `json:"memory"`
	Duration map[string]float64 `json:"duration"`
	Unparsed []string           `json:"unparsed"`
}

// Point is the cumulative number of rows submitted (start_time), running
// or past running (running_start_time) and ended (updated_at of a row in
// a final status) at Time.
type Point struct {
	Time      string `json:"time"`
	Submitted int    `json:"submitted"`
	Running   int    `json:"running"`
	Ended     int    `json:"ended"`
}

// Files are the links to a row's files under the root directory, relative
// to the page; empty when absent.
type Files struct {
	Dir      string `json:"dir,omitempty"`
	ErrorLog string `json:"error_log,omitempty"`
	Metadata string `json:"metadata,omitempty"`
}

// build computes the page's data from a snapshot. geometryCol names the
// geometry column ("" for the default, "geometry"). Footprints are taken
// from cache, by their cell's text, when there; build returns the cache of
// this snapshot's footprints, for the next read (footprints seldom change
// during a run, and parsing them is a good part of a read's time).
func build(t *Table, geometryCol string, now time.Time, cache map[string]json.RawMessage) (*Data, map[string]json.RawMessage) {
	next := map[string]json.RawMessage{}
	d := &Data{
		GeneratedAt: now.UTC().Format(time.RFC3339),
		Columns:     t.Columns,
		Rows:        make([][]any, len(t.Rows)),
		Colors:      map[string]string{},
		Features:    []Feature{},
		Unmapped:    []Unmapped{},
		Counts:      Counts{ByStatus: map[string]int{}, ByBackend: []BackendCount{}},
		Totals:      Totals{CPU: map[string]float64{}, Memory: map[string]float64{}, Duration: map[string]float64{}, Unparsed: []string{}},
		Progress:    []Point{},
		BadTimes:    []string{},
		Files:       map[int]Files{},
	}
	for _, s := range driver.Statuses() {
		d.Statuses = append(d.Statuses, string(s))
		d.Colors[string(s)] = StatusColors[s]
	}
	col := map[string]int{}
	for i, c := range t.Columns {
		col[c] = i
	}
	geo := -1
	if geometryCol == "" {
		geometryCol = "geometry"
	}
	if i, ok := col[geometryCol]; ok {
		geo, d.GeometryColumn = i, geometryCol
	}
	epsgCol, hasEPSG := col["epsg"]
	text := func(r []any, name string) string {
		i, ok := col[name]
		if !ok || r[i] == nil {
			return ""
		}
		return cellText(r[i])
	}
	byBackend := map[[2]string]int{}
	type event struct {
		t    time.Time
		kind int // 0 submitted, 1 running, 2 ended
	}
	var events []event
	for n, r := range t.Rows {
		status := text(r, driver.ColStatus)
		backend := text(r, driver.ColBackend)
		d.Counts.Total++
		d.Counts.ByStatus[status]++
		byBackend[[2]string{backend, status}]++
		if _, known := d.Colors[status]; !known {
			d.Colors[status] = OtherColor
			d.Statuses = append(d.Statuses, status)
		}
		out := make([]any, len(r))
		for i, v := range r {
			out[i] = jsonCell(v)
		}
		d.Rows[n] = out
		if geo >= 0 {
			var epsg any
			if hasEPSG {
				epsg = r[epsgCol]
			}
			key, cacheable := geometryKey(r[geo], epsg)
			g, err := cache[key], error(nil)
			if !cacheable || g == nil {
				g, err = footprint(r[geo], t.EPSG, epsg)
			}
			if err == nil && cacheable {
				next[key] = g
			}
			if err != nil {
				d.Unmapped = append(d.Unmapped, Unmapped{n, fmt.Sprintf("column %q: %v", geometryCol, err)})
			} else {
				d.Features = append(d.Features, Feature{"Feature", n, g, FeatureProps{n, status, d.Colors[status]}})
			}
		} else {
			d.Unmapped = append(d.Unmapped, Unmapped{n, "the table has no geometry column"})
		}
		if i, ok := col[driver.ColCosts]; ok && r[i] != nil {
			if c, ok := number(r[i]); ok {
				d.Totals.Costs += c
			} else {
				d.Totals.Unparsed = append(d.Totals.Unparsed, fmt.Sprintf("row %d, column %s: %q", n+1, driver.ColCosts, cellText(r[i])))
			}
		}
		for name, sums := range map[string]map[string]float64{driver.ColCPU: d.Totals.CPU, driver.ColMemory: d.Totals.Memory, driver.ColDuration: d.Totals.Duration} {
			v := text(r, name)
			if v == "" {
				continue
			}
			num, unit, _ := strings.Cut(strings.TrimSpace(v), " ")
			f, err := strconv.ParseFloat(num, 64)
			if err != nil || math.IsNaN(f) {
				d.Totals.Unparsed = append(d.Totals.Unparsed, fmt.Sprintf("row %d, column %s: %q", n+1, name, v))
				continue
			}
			sums[strings.TrimSpace(unit)] += f
		}
		for kind, name := range []string{driver.ColStartTime, driver.ColRunningStartTime, driver.ColUpdatedAt} {
			if kind == 2 && !slices.Contains(endedStatuses, driver.Status(status)) {
				continue
			}
			i, ok := col[name]
			if !ok || r[i] == nil || r[i] == "" {
				continue
			}
			var at time.Time
			switch x := r[i].(type) {
			case time.Time:
				at = x
			default:
				p, err := time.Parse(time.RFC3339, cellText(x))
				if err != nil {
					d.BadTimes = append(d.BadTimes, fmt.Sprintf("row %d, column %s: %q is not an RFC 3339 time", n+1, name, cellText(x)))
					continue
				}
				at = p
			}
			events = append(events, event{at.UTC(), kind})
		}
	}
	for k, n := range byBackend {
		d.Counts.ByBackend = append(d.Counts.ByBackend, BackendCount{k[0], k[1], n})
	}
	slices.SortFunc(d.Counts.ByBackend, func(a, b BackendCount) int {
		if c := strings.Compare(a.Backend, b.Backend); c != 0 {
			return c
		}
		return strings.Compare(a.Status, b.Status)
	})
	slices.SortFunc(events, func(a, b event) int { return a.t.Compare(b.t) })
	var cum [3]int
	for i, e := range events {
		cum[e.kind]++
		if i+1 < len(events) && events[i+1].t.Equal(e.t) {
			continue // one point per instant
		}
		d.Progress = append(d.Progress, Point{e.t.Format(time.RFC3339), cum[0], cum[1], cum[2]})
	}
	return d, next
}

// geometryKey is the cache key of a geometry cell: its text or bytes,
// and the row's epsg cell, which says the CRS of its coordinates.
func geometryKey(v, epsg any) (string, bool) {
	e := "\x00" + fmt.Sprint(epsg)
	switch x := v.(type) {
	case string:
		return x + e, true
	case []byte:
		return "b:" + string(x) + e, true
	}
	return "", false
}

// decimals is the precision of the map's longitudes and latitudes: 1e-6
// degrees is about 0.1 m, far below what a footprint on the map shows,
// and keeps the payload small.
const decimals = 1e6

// footprint turns a geometry cell into a GeoJSON geometry in
// longitude/latitude, as the map draws it: coordinates in another CRS
// (the table's, else the row's epsg cell; see crs.FootprintEPSG) are
// reprojected through PROJ; all are rounded to 6 decimals. Coordinates
// that are not longitude/latitude and whose CRS nobody names are an error
// saying so.
func footprint(cell any, tableEPSG int, epsgCell any) (json.RawMessage, error) {
	g, err := geometryJSON(cell)
	if err != nil {
		return nil, err
	}
	b, ok := crs.PositionsBound(g)
	if !ok {
		return g, nil // an empty geometry
	}
	n, err := crs.FootprintEPSG(tableEPSG, epsgCell, b)
	if err != nil {
		return nil, err
	}
	return crs.MapPositions(g, func(x, y float64) (float64, float64, error) {
		x, y, err := crs.Transform(n, x, y)
		return math.Round(x*decimals) / decimals, math.Round(y*decimals) / decimals, err
	})
}

// geometryJSON turns a geometry cell into a GeoJSON geometry: WKT text (CSV,
// SQLite, and what DuckDB shows of a GEOMETRY column) or WKB bytes
// (GeoParquet).
func geometryJSON(v any) (json.RawMessage, error) {
	if b, ok := wkbBytes(v); ok {
		v = b
	}
	switch x := v.(type) {
	case nil:
		return nil, fmt.Errorf("no geometry")
	case string:
		if strings.TrimSpace(x) == "" {
			return nil, fmt.Errorf("no geometry")
		}
		g, err := udpjob.WKTToGeoJSON(x)
		if err != nil {
			return nil, err
		}
		return json.Marshal(g)
	case []byte:
		g, err := wkb.Unmarshal(x)
		if err != nil {
			// Some readers hand WKT text over as bytes.
			if wg, werr := udpjob.WKTToGeoJSON(string(x)); werr == nil {
				return json.Marshal(wg)
			}
			return nil, fmt.Errorf("neither WKB nor WKT: %v", err)
		}
		return json.Marshal(geojson.NewGeometry(g))
	}
	return nil, fmt.Errorf("a %T is not a geometry", v)
}

// wkbBytes returns a cell that holds WKB as bytes: []byte, or a string
// whose first byte is WKB's byte-order mark (0 or 1), as a reader that
// hands binary columns over as text gives it (WKT starts with a letter).
func wkbBytes(v any) ([]byte, bool) {
	switch x := v.(type) {
	case []byte:
		return x, true
	case string:
		if len(x) >= 5 && (x[0] == 0 || x[0] == 1) {
			return []byte(x), true
		}
	}
	return nil, false
}

// cellText is a cell as the page shows it: a WKB geometry by its type and
// size, anything else as worker query's table format shows it (query.Cell).
func cellText(v any) string {
	if b, ok := wkbBytes(v); ok {
		if g, err := wkb.Unmarshal(b); err == nil {
			return fmt.Sprintf("%s (WKB, %d bytes)", g.GeoJSONType(), len(b))
		}
	}
	return query.Cell(v)
}

// jsonCell is a cell as JSON: numbers and booleans stay themselves
// (non-finite floats become text, which JSON cannot hold, spelt as in
// worker query --json: see jsoncell), the rest is text.
func jsonCell(v any) any {
	switch x := v.(type) {
	case nil, bool, int64, int32, int:
		return x
	case float64:
		return jsoncell.Float(x)
	}
	return cellText(v)
}

func number(v any) (float64, bool) {
	switch x := v.(type) {
	case float64:
		return x, !math.IsNaN(x)
	case int64:
		return float64(x), true
	case string:
		f, err := strconv.ParseFloat(strings.TrimSpace(x), 64)
		return f, err == nil && !math.IsNaN(f)
	}
	return 0, false
}
