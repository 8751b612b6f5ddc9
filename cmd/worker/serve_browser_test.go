package main

import (
	"bytes"
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/openeo-batch/worker/dashboard"
	"github.com/openeo-batch/worker/driver"
)

// chromiumPath is Debian's chromium (.ci/run installs it).
func chromiumPath(t *testing.T) string {
	for _, p := range []string{"/usr/bin/chromium", "chromium"} {
		if path, err := exec.LookPath(p); err == nil {
			return path
		}
	}
	t.Skip("chromium is not installed (apt-get install chromium; .ci/run does): the dashboard's browser test cannot run")
	return ""
}

// The dashboard in a real browser: worker serve on a table with
// geometries and every status; the map holds one footprint per row in its
// status's colour, the counts are those of worker status --json, and a
// click on a footprint shows the row with a link to its error log. The
// screenshot is a test artifact (go test -artifacts keeps it; with
// WORKER_SCREENSHOT=FILE it is also written there, as for the README).
func TestServeBrowser(t *testing.T) {
	chromium := chromiumPath(t)
	dir := t.TempDir()
	const n = 1000 // the acceptance size: the map draws every footprint
	db := writeServeTable(t, dir, n)
	want := workerStatus(t, db)
	root := filepath.Join(dir, "results")
	// Row 8 is in error (statuses in driver.Statuses order): its error log is on disk.
	const clicked = 8
	if s := driver.Statuses()[clicked%len(driver.Statuses())]; s != driver.Error {
		t.Fatalf("row %d is %s, want error", clicked, s)
	}
	jobDir := filepath.Join(root, fmt.Sprintf("job_j-%d", clicked))
	os.MkdirAll(jobDir, 0o755)
	os.WriteFile(filepath.Join(jobDir, fmt.Sprintf("job_j-%d_errors.json", clicked)), []byte(`[{"message":"out of memory"}]`), 0o644)
	// The page reads the table again every 500ms (serve's shortest), so that the live update
	// below comes soon; the test waits for it, not for a time.
	// A tile server that fails every tile: the page must still show the
	// footprints, on a plain background with a graticule.
	var tileRequests atomic.Int64
	tiles := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		tileRequests.Add(1)
		http.Error(w, "down", http.StatusServiceUnavailable)
	}))
	defer tiles.Close()
	base := startServe(t, "--db", db, "--root-dir", root, "--interval", "500ms", "--tiles", tiles.URL+"/{z}/{x}/{y}.png")

	// A guard against a hung browser, not a timed assertion.
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
	defer cancel()
	alloc, cancelAlloc := chromedp.NewExecAllocator(ctx,
		chromedp.ExecPath(chromium),
		chromedp.Headless,
		chromedp.NoSandbox,
		chromedp.DisableGPU,
		chromedp.NoFirstRun,
		chromedp.NoDefaultBrowserCheck,
		chromedp.Flag("disable-quic", true),
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.UserDataDir(t.TempDir()),
		chromedp.WindowSize(1100, 900),
	)
	defer cancelAlloc()
	bctx, cancelBrowser := chromedp.NewContext(alloc, chromedp.WithLogf(t.Logf))
	defer cancelBrowser()

	type path struct {
		Class string `json:"cls"`
		Fill  string `json:"fill"`
	}
	if err := chromedp.Do(bctx,
		chromedp.Navigate(base+"/"),
		chromedp.WaitReady(chromedp.CSS(`body[data-loaded="true"]`)),
	); err != nil {
		t.Fatal(err)
	}
	paths, err := chromedp.Run(bctx, chromedp.Evaluate[[]path](
		`[...document.querySelectorAll('path.footprint')].map(p => ({cls: p.getAttribute('class'), fill: p.getAttribute('fill')}))`))
	if err != nil {
		t.Fatal(err)
	}
	counts, err := chromedp.Run(bctx, chromedp.Evaluate[map[string]string](
		`Object.fromEntries([...document.querySelectorAll('[id^="count-"]')].filter(e => e.id !== 'count-total').map(e => [e.id.slice(6), e.textContent]))`))
	if err != nil {
		t.Fatal(err)
	}
	total, err := chromedp.Run(bctx, chromedp.Text(chromedp.CSS(`#count-total`)))
	if err != nil {
		t.Fatal(err)
	}
	graticule, err := chromedp.Run(bctx, chromedp.Evaluate[int](`document.querySelectorAll('path.graticule').length`))
	if err != nil {
		t.Fatal(err)
	}
	if graticule == 0 {
		t.Errorf("no graticule while the tile server fails")
	}
	if len(paths) != n {
		t.Fatalf("the map holds %d footprints, want %d (one per row)", len(paths), n)
	}
	rows := map[string]bool{}
	perStatus := map[string]int{}
	for _, p := range paths {
		var status, row string
		for _, c := range strings.Fields(p.Class) {
			if s, ok := strings.CutPrefix(c, "status-"); ok {
				status = s
			}
			if r, ok := strings.CutPrefix(c, "row-"); ok {
				row = r
			}
		}
		if rows[row] {
			t.Errorf("row %s drawn twice", row)
		}
		rows[row] = true
		perStatus[status]++
		if want := dashboard.StatusColors[driver.Status(status)]; p.Fill != want || want == "" {
			t.Errorf("row %s (%s) filled %q, want %q", row, status, p.Fill, want)
		}
	}
	if !mapsEqual(perStatus, want.ByStatus) {
		t.Errorf("footprints per status %v, worker status --json says %v", perStatus, want.ByStatus)
	}
	shown := map[string]int{}
	for s, v := range counts {
		var k int
		fmt.Sscan(v, &k)
		shown[s] = k
	}
	if !mapsEqual(shown, want.ByStatus) || total != fmt.Sprint(want.Total) {
		t.Errorf("page counts %v (total %s), worker status --json says %v (total %d)", shown, total, want.ByStatus, want.Total)
	}

	if err := chromedp.Do(bctx,
		chromedp.Click(chromedp.CSS(fmt.Sprintf(`path.footprint.row-%d`, clicked))),
		chromedp.WaitVisible(chromedp.CSS(`#row-table`)),
	); err != nil {
		t.Fatal(err)
	}
	id, err := chromedp.Run(bctx, chromedp.Text(chromedp.CSS(`#row-table tr[data-column="id"] td:last-child`)))
	if err != nil {
		t.Fatal(err)
	}
	lastErr, err := chromedp.Run(bctx, chromedp.Text(chromedp.CSS(`#row-table tr[data-column="last_error"] td:last-child`)))
	if err != nil {
		t.Fatal(err)
	}
	errorLog, err := chromedp.Run(bctx, chromedp.Evaluate[string](`document.querySelector('#row-links a.error-log')?.getAttribute('href') ?? ''`))
	if err != nil {
		t.Fatal(err)
	}
	if id != fmt.Sprintf("j-%d", clicked) || lastErr != fmt.Sprintf("row %d: out of memory", clicked) {
		t.Errorf("the clicked row shows id %q, last_error %q", id, lastErr)
	}
	if want := fmt.Sprintf("files/job_j-%d/job_j-%d_errors.json", clicked, clicked); errorLog != want {
		t.Errorf("error log link %q, want %q", errorLog, want)
	}

	// The failed rows' table filters, and a click on one of its rows
	// shows that row and zooms the map to it (for the screenshot too).
	if err := chromedp.Do(bctx, chromedp.SendKeys(chromedp.CSS(`#filter`), fmt.Sprintf("row %d:", clicked))); err != nil {
		t.Fatal(err)
	}
	listed, err := chromedp.Run(bctx, chromedp.Evaluate[[]string](`[...document.querySelectorAll('#failed tbody tr')].map(r => r.dataset.row)`))
	if err != nil {
		t.Fatal(err)
	}
	if len(listed) != 1 || listed[0] != fmt.Sprint(clicked) {
		t.Errorf("the filter lists rows %v, want [%d]", listed, clicked)
	}
	if err := chromedp.Do(bctx, chromedp.Click(chromedp.CSS(fmt.Sprintf(`#failed tbody tr[data-row="%d"]`, clicked)))); err != nil {
		t.Fatal(err)
	}
	visible, err := chromedp.Run(bctx, chromedp.Evaluate[bool](fmt.Sprintf(
		`(() => { const r = document.querySelector('path.footprint.row-%d').getBoundingClientRect(); return r.width > 20 && r.height > 20; })()`, clicked)))
	if err != nil || !visible {
		t.Errorf("the map did not zoom to the row picked in the failed rows (%v)", err)
	}

	if _, err := chromedp.Run(bctx, chromedp.Evaluate[chromedp.Void](`window.scrollTo(0, 0)`)); err != nil {
		t.Fatal(err)
	}
	if tileRequests.Load() == 0 {
		t.Errorf("the page never asked the tile server (--tiles) for a tile")
	}
	png, err := chromedp.Run(bctx, chromedp.CaptureScreenshot())
	if err != nil {
		t.Fatal(err)
	}
	shot := filepath.Join(t.ArtifactDir(), "dashboard.png")
	if err := os.WriteFile(shot, png, 0o644); err != nil {
		t.Fatal(err)
	}
	t.Logf("screenshot: %s (%d bytes)", shot, len(png))
	if to := os.Getenv("WORKER_SCREENSHOT"); to != "" {
		if err := os.WriteFile(to, png, 0o644); err != nil {
			t.Fatal(err)
		}
	}

	// Live update: retry (as from another terminal during a run) puts the
	// failed rows back to not_started; the open page follows.
	var out bytes.Buffer
	if code := run(t.Context(), []string{"retry", "--db", db}, &out, &out); code != 0 {
		t.Fatalf("retry: %s", out.String())
	}
	after := workerStatus(t, db)
	if after.ByStatus["error"] != 0 {
		t.Fatalf("retry left %v", after.ByStatus)
	}
	if _, err := chromedp.Run(bctx, chromedp.Poll[chromedp.Void](fmt.Sprintf(
		`document.querySelector('#count-not_started')?.textContent === '%d' && !document.querySelector('#count-error') `+
			`&& document.querySelectorAll('path.footprint.status-not_started').length === %d `+
			`&& document.querySelectorAll('path.footprint').length === %d`,
		after.ByStatus["not_started"], after.ByStatus["not_started"], n),
		chromedp.WithPollingMutation(), chromedp.WithPollingTimeout(0))); err != nil {
		t.Fatalf("the page did not follow the table: %v", err)
	}
}
