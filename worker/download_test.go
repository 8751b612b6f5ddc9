package worker_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"testing/synctest"
	"time"

	"github.com/openeo-batch/worker/driver"
	"github.com/openeo-batch/worker/remote"
	"github.com/openeo-batch/worker/remote/remotetest"
	"github.com/openeo-batch/worker/worker"
)

// runErr runs the fixture's table once and returns what Run returned.
func (f *fixture) runErr(t *testing.T) (*worker.Manager, error) {
	t.Helper()
	m, err := worker.New(f.cfg)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	err = m.Run(ctx)
	if ctx.Err() != nil {
		t.Fatalf("Run did not end: %v", err)
	}
	return m, err
}

// missing returns the rows of a *MissingResultsError, or fails.
func missing(t *testing.T, err error) []worker.MissingResult {
	t.Helper()
	var me *worker.MissingResultsError
	if !errors.As(err, &me) || !errors.Is(err, worker.ErrResultsMissing) {
		t.Fatalf("Run: %v, want a *MissingResultsError", err)
	}
	return me.Rows
}

// partials lists the partial downloads under root.
func partials(root string) []string {
	var left []string
	filepath.Walk(root, func(p string, info os.FileInfo, err error) error {
		if err == nil && strings.Contains(filepath.Base(p), ".part") {
			left = append(left, p)
		}
		return nil
	})
	return left
}

// A root folder that cannot be written loses nothing: the rows keep
// download_pending with the cause in last_error, the run ends (it does not
// retry for ever) with an error naming them, and a run after the folder is
// mended downloads them. (Before: the download was given up, the rows
// ended finished and not pending, Run returned nil and a rerun fetched
// nothing.)
func TestUnwritableRootKeepsResultsPending(t *testing.T) {
	synctest.Test(t, unwritableRootKeepsResultsPending)
}

func unwritableRootKeepsResultsPending(t *testing.T) {
	f := newFixture(t, 3, remotetest.Options{})
	blocker := filepath.Join(f.root, "results")
	os.WriteFile(blocker, []byte("a file where the folder should be"), 0o644)
	f.cfg.RootDir = blocker // mkdir results/job_x: not a directory
	m, err := f.runErr(t)
	rows := missing(t, err)
	if len(rows) != 3 {
		t.Errorf("%d rows reported missing, want 3: %+v", len(rows), rows)
	}
	for _, mr := range rows {
		if !mr.Pending || mr.Status != driver.Finished || !strings.Contains(mr.Err, "not a directory") {
			t.Errorf("reported %+v, want a pending finished row with the cause", mr)
		}
	}
	for _, r := range f.rows(t) {
		if r.Status != driver.Finished || !r.DownloadPending || !strings.Contains(r.LastError, "not a directory") {
			t.Errorf("row %d: %q pending=%v last_error=%q, want finished, pending, with the cause", r.Key, r.Status, r.DownloadPending, r.LastError)
		}
	}
	if st := m.Stats(); st["job download"] != 0 || st["job download error"] != 3 {
		t.Errorf("stats = %v", st)
	}

	// Mend the folder: the next run fetches every result and clears the error.
	os.Remove(blocker)
	if _, err := f.runErr(t); err != nil {
		t.Fatalf("second run: %v", err)
	}
	for _, r := range f.rows(t) {
		if r.DownloadPending || r.LastError != "" {
			t.Errorf("row %d after the fix: pending=%v last_error=%q", r.Key, r.DownloadPending, r.LastError)
		}
		if _, err := os.Stat(filepath.Join(worker.JobDir(blocker, r.ID), "result.tif")); err != nil {
			t.Errorf("row %d: %v", r.Key, err)
		}
	}
	if left := partials(blocker); len(left) > 0 {
		t.Errorf("partial files left: %v", left)
	}
}

// A link that is not http(s) is refused at once with the asset's name;
// no attempt can mend it, so the row is not left pending, but the run
// reports the missing results.
func TestUnsupportedAssetLinkRefused(t *testing.T) { synctest.Test(t, unsupportedAssetLinkRefused) }

func unsupportedAssetLinkRefused(t *testing.T) {
	f := newFixture(t, 1, remotetest.Options{AssetHref: func(_, _ string) string { return "file:///etc/passwd" }})
	_, err := f.runErr(t)
	rows := missing(t, err)
	if len(rows) != 1 || rows[0].Pending {
		t.Errorf("reported %+v, want one row refused for good", rows)
	}
	r := f.rows(t)[0]
	if r.DownloadPending || !strings.Contains(r.LastError, `asset "result.tif"`) || !strings.Contains(r.LastError, "file:///etc/passwd") {
		t.Errorf("row: pending=%v last_error=%q", r.DownloadPending, r.LastError)
	}
	if st := f.servers["a"].Requests(); st["GET /jobs/{job_id}/results"] != 1 {
		t.Errorf("results asked %d times, want once: a refused link is not retried", st["GET /jobs/{job_id}/results"])
	}
}

// Downloads through the manager never hand the token to the asset host,
// redirect or not, and partial files left in a job folder (such as the
// randomly named ones of older versions) are gone once the row is done.
func TestRunKeepsTokenAndCleansParts(t *testing.T) { synctest.Test(t, runKeepsTokenAndCleansParts) }

func runKeepsTokenAndCleansParts(t *testing.T) {
	f := newFixture(t, 2, remotetest.Options{RedirectAssets: true})
	f.cfg.OnJobDone = func(ctx context.Context, ev worker.Event) error {
		os.MkdirAll(ev.Dir, 0o755)
		os.WriteFile(filepath.Join(ev.Dir, "result.tif.x3Yz9.part"), []byte("stale"), 0o644)
		return worker.DownloadResults(ctx, ev)
	}
	f.run(t)
	hosts := 0
	for _, r := range f.servers["a"].AssetRequests() {
		if r.Host == "assets" {
			hosts++
			if r.Authorization != "" {
				t.Errorf("asset host got Authorization %q", r.Authorization)
			}
		}
	}
	if hosts != 2 {
		t.Errorf("%d requests reached the asset host, want 2", hosts)
	}
	if left := partials(f.root); len(left) > 0 {
		t.Errorf("partial files left: %v", left)
	}
	for _, r := range f.rows(t) {
		if r.DownloadPending {
			t.Errorf("row %d pending", r.Key)
		}
	}
}

// A row given up for good keeps no partial download: no later run resumes it.
func TestPartsRemovedWhenGivenUp(t *testing.T) { synctest.Test(t, partsRemovedWhenGivenUp) }

func partsRemovedWhenGivenUp(t *testing.T) {
	f := newFixture(t, 1, remotetest.Options{})
	f.cfg.OnJobDone = func(ctx context.Context, ev worker.Event) error {
		os.MkdirAll(ev.Dir, 0o755)
		os.WriteFile(filepath.Join(ev.Dir, "x.tif.part"), []byte("half"), 0o644)
		return worker.Permanent(errors.New("the back-end describes results that cannot be fetched"))
	}
	_, err := f.runErr(t)
	if rows := missing(t, err); len(rows) != 1 || rows[0].Pending {
		t.Errorf("reported %+v", rows)
	}
	if left := partials(f.root); len(left) > 0 {
		t.Errorf("partial files left: %v", left)
	}
}

// An asset whose name ends in .part is a result, not a partial download:
// the clean-up keeps it. Beside an asset whose partial download would
// bear its name, it is refused with a clear error instead of overwritten.
func TestAssetNamedPartKept(t *testing.T) { synctest.Test(t, assetNamedPartKept) }

func assetNamedPartKept(t *testing.T) {
	f := newFixture(t, 1, remotetest.Options{AssetNames: []string{"tile.part"}})
	f.run(t)
	r := f.rows(t)[0]
	if _, err := os.Stat(filepath.Join(worker.JobDir(f.root, r.ID), "tile.part")); err != nil {
		t.Errorf("result tile.part: %v", err)
	}

	f = newFixture(t, 1, remotetest.Options{AssetNames: []string{"tile.part", "tile"}})
	_, err := f.runErr(t)
	if rows := missing(t, err); len(rows) != 1 || !strings.Contains(rows[0].Err, `"tile.part"`) {
		t.Errorf("reported %+v, want the clash named", rows)
	}
}

// Asset keys with folders, as STAC catalogues produce them, land in the
// same folders under the job folder, as the Python client saves them.
// (Before: every asset and job_<id>.json refused, the row given up.)
func TestAssetKeysWithFolders(t *testing.T) { synctest.Test(t, assetKeysWithFolders) }

func assetKeysWithFolders(t *testing.T) {
	names := []string{"data/b03.tif", "data/b04.tif", "data/qa/mask.tif", "thumb.png"}
	f := newFixture(t, 2, remotetest.Options{AssetNames: names, AssetSize: 300})
	f.run(t)
	for _, r := range f.rows(t) {
		if r.Status != driver.Finished || r.DownloadPending || r.LastError != "" {
			t.Errorf("row %d: %q pending=%v last_error=%q", r.Key, r.Status, r.DownloadPending, r.LastError)
		}
		dir := worker.JobDir(f.root, r.ID)
		for _, name := range names {
			b, err := os.ReadFile(filepath.Join(dir, filepath.FromSlash(name)))
			if err != nil || !bytes.Equal(b, remotetest.AssetBytes(r.ID, name, 300)) {
				t.Errorf("row %d asset %s: %d bytes, %v", r.Key, name, len(b), err)
			}
		}
		if _, err := os.Stat(worker.MetadataPath(f.root, r.ID)); err != nil {
			t.Errorf("row %d: %v", r.Key, err)
		}
	}
	if left := partials(f.root); len(left) > 0 {
		t.Errorf("partial files left: %v", left)
	}
}

// A refused asset name costs no other asset nor job_<id>.json: the
// harmless assets are saved, the row is given up (no attempt can mend a
// name) with every refused asset named in last_error, and nothing is
// written outside the job folder. (Before: nothing of the job written.)
func TestRefusedAssetKeepsTheOthers(t *testing.T) { synctest.Test(t, refusedAssetKeepsTheOthers) }

func refusedAssetKeepsTheOthers(t *testing.T) {
	hostile := []string{"../../escape.tif", `..\..\escape2.tif`, "C:/escape3.tif", "/tmp/escape4.tif", "data/../../escape5.tif"}
	good := []string{"good.tif", "data/ok.tif", `win\style.tif`}
	f := newFixture(t, 1, remotetest.Options{AssetNames: append(append([]string{}, hostile...), good...)})
	_, err := f.runErr(t)
	rows := missing(t, err)
	if len(rows) != 1 || rows[0].Pending {
		t.Fatalf("reported %+v, want the row given up", rows)
	}
	r := f.rows(t)[0]
	if r.Status != driver.Finished || r.DownloadPending {
		t.Errorf("row: %q pending=%v", r.Status, r.DownloadPending)
	}
	if !strings.Contains(r.LastError, "5 of 8 assets missing") {
		t.Errorf("last_error %q does not count the missing assets", r.LastError)
	}
	for _, name := range hostile {
		if q := fmt.Sprintf("%q", name); !strings.Contains(r.LastError, q) {
			t.Errorf("last_error %q does not name %s", r.LastError, q)
		}
	}
	dir := worker.JobDir(f.root, r.ID)
	for _, name := range []string{"good.tif", "data/ok.tif", "win/style.tif", "job_" + r.ID + ".json"} {
		if _, err := os.Stat(filepath.Join(dir, filepath.FromSlash(name))); err != nil {
			t.Errorf("%s not saved: %v", name, err)
		}
	}
	filepath.Walk(filepath.Dir(f.root), func(p string, info os.FileInfo, err error) error {
		if err == nil && strings.Contains(p, "escape") {
			t.Errorf("hostile asset written to %s", p)
		}
		return nil
	})
}

// An asset whose download fails costs no other asset nor job_<id>.json;
// the row keeps download_pending with the missing asset named in
// last_error, and a rerun fetches that asset alone and clears the error.
// (Before: no job_<id>.json, and the rerun fetched every asset again.)
func TestFailedAssetStaysPending(t *testing.T) { synctest.Test(t, failedAssetStaysPending) }

func failedAssetStaysPending(t *testing.T) {
	f := newFixture(t, 1, remotetest.Options{AssetNames: []string{"a.tif", "b.tif"},
		Faults: remotetest.Faults{FailingAssets: []string{"b.tif"}}})
	srv := f.servers["a"]
	c, err := remote.New(srv.APIURL, &remote.Options{HTTPClient: virtualClient(f.clock),
		Policy: &remote.Policy{MinBackoff: 10 * time.Millisecond, MaxBackoff: 100 * time.Millisecond}})
	if err != nil {
		t.Fatal(err)
	}
	c.SetToken(srv.ValidToken())
	f.cfg.Backends[0].Client = c
	_, err = f.runErr(t)
	if rows := missing(t, err); len(rows) != 1 || !rows[0].Pending {
		t.Fatalf("reported %+v, want the row pending", rows)
	}
	r := f.rows(t)[0]
	if !r.DownloadPending || !strings.Contains(r.LastError, `1 of 2 assets missing: asset "b.tif"`) {
		t.Errorf("row: pending=%v last_error=%q, want pending with b.tif named", r.DownloadPending, r.LastError)
	}
	dir := worker.JobDir(f.root, r.ID)
	for _, name := range []string{"a.tif", "job_" + r.ID + ".json"} {
		if _, err := os.Stat(filepath.Join(dir, name)); err != nil {
			t.Errorf("%s not saved: %v", name, err)
		}
	}
	if _, err := os.Stat(filepath.Join(dir, "b.tif")); err == nil {
		t.Errorf("b.tif saved although every download of it failed")
	}

	outside(func() { srv.SetFaults(remotetest.Faults{}) })
	before := len(srv.AssetRequests())
	if _, err := f.runErr(t); err != nil {
		t.Fatalf("rerun: %v", err)
	}
	r = f.rows(t)[0]
	if r.DownloadPending || r.LastError != "" {
		t.Errorf("row after the rerun: pending=%v last_error=%q", r.DownloadPending, r.LastError)
	}
	b, err := os.ReadFile(filepath.Join(dir, "b.tif"))
	if err != nil || !bytes.Equal(b, srv.AssetContent(r.ID, "b.tif")) {
		t.Errorf("b.tif after the rerun: %d bytes, %v", len(b), err)
	}
	for _, req := range srv.AssetRequests()[before:] {
		if strings.HasSuffix(req.Path, "/a.tif") {
			t.Errorf("the rerun fetched a.tif again: %+v", req)
		}
	}
}

// The results metadata (GET /jobs/{id}/results) lands in
// job_<id>/job-results.json, as the Python client's
// JobResults.download_files(include_stac_metadata=True) writes it: the
// back-end's document as sent, the result geometry, datetime and media
// types in it, hrefs as the back-end wrote them (a relative, signed link
// is not resolved nor stripped), and never our token.
func TestResultsMetadataWritten(t *testing.T) { synctest.Test(t, resultsMetadataWritten) }

func resultsMetadataWritten(t *testing.T) {
	names := []string{"data/b03.tif", "out.nc"}
	signed := func(id, name string) string { return "assets/" + id + "/" + name + "?X-Amz-Signature=abc123" }
	f := newFixture(t, 2, remotetest.Options{AssetNames: names, AssetSize: 100, AssetHref: signed,
		AssetTypes: map[string]string{"out.nc": "application/netcdf"}})
	f.cfg.StartJob = func(ctx context.Context, row driver.Job, conn *remote.Client) (string, error) {
		lon := 5 + float64(row.Key) // a triangle per row
		return conn.CreateJob(ctx, &remote.JobRequest{
			Title: fmt.Sprint(row.Data["title"]),
			Process: remote.Process{ProcessGraph: map[string]any{
				"stats": map[string]any{"process_id": "aggregate_spatial", "result": true, "arguments": map[string]any{
					"geometries": map[string]any{"type": "Polygon", "coordinates": [][][]float64{{{lon, 51}, {lon + 1, 51}, {lon, 52.5}, {lon, 51}}}},
				}},
			}},
		})
	}
	f.run(t)
	srv := f.servers["a"]
	c, err := remote.New(srv.APIURL, &remote.Options{HTTPClient: virtualClient(f.clock)})
	if err != nil {
		t.Fatal(err)
	}
	token := srv.ValidToken()
	c.SetToken(token)
	for _, r := range f.rows(t) {
		if r.Status != driver.Finished || r.DownloadPending || r.LastError != "" {
			t.Errorf("row %d: %q pending=%v last_error=%q", r.Key, r.Status, r.DownloadPending, r.LastError)
		}
		path := worker.ResultsPath(f.root, r.ID)
		if filepath.Dir(path) != worker.JobDir(f.root, r.ID) || filepath.Base(path) != "job-results.json" {
			t.Fatalf("results metadata at %s, want job_%s/job-results.json", path, r.ID)
		}
		got, err := os.ReadFile(path)
		if err != nil {
			t.Fatalf("row %d: %v", r.Key, err)
		}
		res, err := c.Results(t.Context(), r.ID)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got, res.Raw) {
			t.Errorf("row %d: job-results.json is not the back-end's document:\n%s\nwant\n%s", r.Key, got, res.Raw)
		}
		if bytes.Contains(got, []byte(token)) {
			t.Errorf("row %d: job-results.json holds our token", r.Key)
		}
		var doc struct {
			Geometry struct {
				Type        string
				Coordinates [][][]float64
			}
			BBox       []float64
			Properties struct{ Datetime string }
			Assets     map[string]struct{ Href, Type string }
		}
		if err := json.Unmarshal(got, &doc); err != nil {
			t.Fatalf("row %d: %v", r.Key, err)
		}
		lon := 5 + float64(r.Key)
		if doc.Geometry.Type != "Polygon" || fmt.Sprint(doc.BBox) != fmt.Sprint([]float64{lon, 51, lon + 1, 52.5}) {
			t.Errorf("row %d: result geometry %+v bbox %v, want the job's extent", r.Key, doc.Geometry, doc.BBox)
		}
		if _, err := time.Parse(time.RFC3339, doc.Properties.Datetime); err != nil {
			t.Errorf("row %d: result datetime %q: %v", r.Key, doc.Properties.Datetime, err)
		}
		if b03, nc := doc.Assets["data/b03.tif"], doc.Assets["out.nc"]; b03.Type != "image/tiff; application=geotiff" || nc.Type != "application/netcdf" {
			t.Errorf("row %d: asset types %q and %q", r.Key, b03.Type, nc.Type)
		}
		for _, name := range names {
			if h := doc.Assets[name].Href; h != signed(r.ID, name) {
				t.Errorf("row %d: href of %s is %q, want the back-end's %q", r.Key, name, h, signed(r.ID, name))
			}
			b, err := os.ReadFile(filepath.Join(worker.JobDir(f.root, r.ID), filepath.FromSlash(name)))
			if err != nil || !bytes.Equal(b, remotetest.AssetBytes(r.ID, name, 100)) {
				t.Errorf("row %d asset %s: %d bytes, %v", r.Key, name, len(b), err)
			}
		}
		if tmp, _ := filepath.Glob(filepath.Join(worker.JobDir(f.root, r.ID), ".*.tmp")); len(tmp) > 0 {
			t.Errorf("row %d: temporary files left: %v", r.Key, tmp)
		}
	}
}

// An asset named job-results.json would be overwritten by the results
// metadata (as the Python client does): it is refused with the reason,
// the other assets and both metadata files are saved.
func TestAssetNamedLikeResultsMetadata(t *testing.T) { synctest.Test(t, assetNamedLikeResultsMetadata) }

func assetNamedLikeResultsMetadata(t *testing.T) {
	f := newFixture(t, 1, remotetest.Options{AssetNames: []string{"job-results.json", "ok.tif"}})
	_, err := f.runErr(t)
	if rows := missing(t, err); len(rows) != 1 || rows[0].Pending || !strings.Contains(rows[0].Err, `"job-results.json" would be the results metadata`) {
		t.Fatalf("reported %+v, want the asset refused for good with the reason", rows)
	}
	r := f.rows(t)[0]
	dir := worker.JobDir(f.root, r.ID)
	for _, name := range []string{"ok.tif", "job_" + r.ID + ".json"} {
		if _, err := os.Stat(filepath.Join(dir, name)); err != nil {
			t.Errorf("%s not saved: %v", name, err)
		}
	}
	b, err := os.ReadFile(worker.ResultsPath(f.root, r.ID))
	if err != nil || !bytes.Contains(b, []byte(`"assets"`)) {
		t.Errorf("job-results.json is not the results metadata: %q, %v", b, err)
	}
}

// A temporary file that a process killed while it wrote job_<id>.json left
// in the job folder is removed by the next download there, so that no
// export takes it for a result.
func TestDownloadRemovesStaleTemps(t *testing.T) { synctest.Test(t, downloadRemovesStaleTemps) }

func downloadRemovesStaleTemps(t *testing.T) {
	f := newFixture(t, 1, remotetest.Options{})
	var stale string
	f.cfg.OnJobDone = func(ctx context.Context, ev worker.Event) error {
		os.MkdirAll(ev.Dir, 0o755)
		stale = filepath.Join(ev.Dir, ".job_"+ev.Row.ID+".json.535000463.tmp")
		os.WriteFile(stale, []byte("{half"), 0o644)
		old := time.Unix(1e9, 0) // before this process: a killed one's
		os.Chtimes(stale, old, old)
		return worker.DownloadResults(ctx, ev)
	}
	f.run(t)
	if _, err := os.Stat(stale); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("stale temporary file: %v, want it removed", err)
	}
	if _, err := os.Stat(filepath.Join(filepath.Dir(stale), "result.tif")); err != nil {
		t.Errorf("result: %v", err)
	}
}
