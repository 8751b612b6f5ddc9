package worker

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"unicode/utf8"

	"golang.org/x/sync/errgroup"

	"github.com/openeo-batch/worker/driver"
	"github.com/openeo-batch/worker/internal/atomicfile"
	"github.com/openeo-batch/worker/remote"
)

// JobDir returns the folder of a job's files: <root>/job_<id>, as the
// Python client lays it out.
func JobDir(root, jobID string) string {
	return filepath.Join(root, "job_"+jobID)
}

// MetadataPath returns <root>/job_<id>/job_<id>.json.
func MetadataPath(root, jobID string) string {
	return filepath.Join(JobDir(root, jobID), "job_"+jobID+".json")
}

// ResultsFile is the name of a job's results metadata in its job folder:
// the document of GET /jobs/{id}/results (a STAC Item or Collection),
// byte for byte as the back-end sent it, asset hrefs included (signed
// links too; nothing of ours is added). It is the file the openEO Python
// client's JobResults.download_files(target, include_stac_metadata=True)
// writes (openeo.rest.job.DEFAULT_JOB_RESULTS_FILENAME), which its
// MultiBackendJobManager calls for each finished job; the STAC export
// reads it for the results' own geometry, time and media types.
const ResultsFile = "job-results.json"

// ResultsPath returns <root>/job_<id>/job-results.json (see ResultsFile).
func ResultsPath(root, jobID string) string {
	return filepath.Join(JobDir(root, jobID), ResultsFile)
}

// ErrorLogPath returns <root>/job_<id>/job_<id>_errors.json.
func ErrorLogPath(root, jobID string) string {
	return filepath.Join(JobDir(root, jobID), "job_"+jobID+"_errors.json")
}

// DownloadResults is the default handler for finished jobs: it downloads
// every result asset into ev.Dir (a few at a time, each checked against its
// announced size and checksum), writes the job's description to
// job_<id>.json there and the results metadata to job-results.json (see
// ResultsFile), the layout of the Python client's MultiBackendJobManager. Each asset is saved under its key (see
// AssetPath: "data/b03.tif" in ev.Dir/data/b03.tif). Expired result links
// are renewed by asking for the results again; a download cut off, here or
// by a kill, resumes from its <file>.part (see remote.Client.DownloadAsset),
// and partial files left over are removed once the download is complete.
//
// Each asset is handled alone: one that is refused or fails costs no other,
// and job_<id>.json and job-results.json are written whatever becomes of
// the assets (both atomically, so a reader never sees half a file). An asset
// whose file is already on disk and matches the announced size and
// checksum is not fetched again, so a later attempt fetches only what is
// missing. When assets are missing the error is an *AssetsError naming
// them (and their causes); it is Permanent when no later attempt can fetch
// any of them as the back-end describes them (names that leave the job
// folder or clash, links that are not http(s)), or when the back-end no
// longer knows the job. Any other failure (a folder that cannot be
// written, a back-end that does not answer) leaves the download pending.
func DownloadResults(ctx context.Context, ev Event) error {
	id := ev.Row.ID
	res, err := ev.Conn.Results(ctx, id)
	if err != nil {
		err = fmt.Errorf("results of job %s: %w", id, err)
		gone := errors.Is(err, remote.ErrJobNotFound)
		if ev.Job != nil && ev.Job.Raw != nil || !gone && ctx.Err() == nil {
			if merr := writeMetadata(ctx, ev); merr != nil {
				err = fmt.Errorf("%w; %w", err, merr)
			}
		}
		if gone {
			return Permanent(err)
		}
		return err
	}
	paths, refused := AssetPaths(id, res.Assets)
	var failures []AssetFailure
	for key, err := range refused {
		failures = append(failures, AssetFailure{Key: key, Err: err, Permanent: true})
	}
	if err := jobDir(ev.Dir); err != nil {
		return err
	}
	var mu sync.Mutex // guards assets while links are renewed, and failures
	assets := maps.Clone(res.Assets)
	var g errgroup.Group // not WithContext: one failed asset stops no other
	g.SetLimit(4)
	for key, rel := range paths {
		g.Go(func() error {
			err := downloadAsset(ctx, ev.Conn, id, key, filepath.Join(ev.Dir, filepath.FromSlash(rel)), &mu, assets)
			if err != nil {
				permanent := errors.Is(err, remote.ErrUnsupportedLink) || errors.Is(err, remote.ErrJobNotFound)
				mu.Lock()
				failures = append(failures, AssetFailure{Key: key, Err: err, Permanent: permanent})
				mu.Unlock()
			}
			return nil
		})
	}
	g.Wait()
	if err := ctx.Err(); err != nil {
		return err // stopped: what is missing is fetched next time
	}
	merr := errors.Join(writeMetadata(ctx, ev), writeResults(ev.Dir, id, res.Raw))
	if len(failures) == 0 {
		if merr != nil {
			return merr
		}
		keep := map[string]bool{} // results whose names end in .part
		for _, rel := range paths {
			keep[rel] = true
		}
		_, err := remote.RemoveParts(ev.Dir, keep)
		return err
	}
	sortFailures(failures)
	aerr := &AssetsError{JobID: id, Total: len(res.Assets), Missing: failures}
	switch {
	case merr != nil:
		return fmt.Errorf("%w; %w", aerr, merr)
	case aerr.permanent():
		return Permanent(aerr)
	}
	return aerr
}

// downloadAsset fetches asset key of job id to dst, unless dst already
// holds it whole, renewing expired links (a few times) by asking for the
// results again. mu guards assets, shared by the downloads of the job.
func downloadAsset(ctx context.Context, conn *remote.Client, id, key, dst string, mu *sync.Mutex, assets map[string]remote.Asset) error {
	mu.Lock()
	a := assets[key]
	mu.Unlock()
	if remote.VerifyFile(dst, a) == nil {
		return nil // fetched by an earlier attempt
	}
	if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
		return err
	}
	for renewals := 0; ; renewals++ {
		_, err := conn.DownloadAsset(ctx, a, dst)
		if !errors.Is(err, remote.ErrLinkExpired) || renewals == 2 {
			return err
		}
		fresh, err := conn.Results(ctx, id)
		if err != nil {
			return fmt.Errorf("renew result links: %w", err)
		}
		mu.Lock()
		if fa, ok := fresh.Assets[key]; ok {
			assets[key] = fa
		}
		a = assets[key]
		mu.Unlock()
	}
}

// writeMetadata writes the job's description to job_<id>.json in ev.Dir:
// ev.Job's when the manager has it, else the back-end's answer.
func writeMetadata(ctx context.Context, ev Event) error {
	meta := ev.Job
	if meta == nil || meta.Raw == nil {
		var err error
		if meta, err = ev.Conn.GetJob(ctx, ev.Row.ID); err != nil {
			return fmt.Errorf("describe job %s: %w", ev.Row.ID, err)
		}
	}
	if err := os.MkdirAll(ev.Dir, 0o755); err != nil {
		return err
	}
	return atomicfile.WriteFile(filepath.Join(ev.Dir, "job_"+ev.Row.ID+".json"), meta.Raw, 0o644)
}

// writeResults writes job id's results metadata raw (GET
// /jobs/{id}/results) to job-results.json in dir, as the back-end sent it:
// the Python client writes the document it read (json.dumps of it), hrefs
// unchanged, and so do we, byte for byte.
func writeResults(dir, id string, raw []byte) error {
	if len(raw) == 0 {
		return fmt.Errorf("results of job %s: no document to write to %s", id, ResultsFile)
	}
	return atomicfile.WriteFile(filepath.Join(dir, ResultsFile), raw, 0o644)
}

// HandlerError is the last_error the manager records for a row in status
// whose handler failed with err: "handling <status> job: <err>".
func HandlerError(status driver.Status, err error) string {
	return OneLine(handlerErrPrefix + string(status) + " job: " + err.Error())
}

// IsHandlerError reports whether lastError was recorded for a failed
// handler (see HandlerError), so that a later success clears it.
func IsHandlerError(lastError string) bool { return strings.HasPrefix(lastError, handlerErrPrefix) }

// permanentError marks a handler error that no later attempt can mend.
type permanentError struct{ err error }

func (e *permanentError) Error() string { return e.err.Error() }
func (e *permanentError) Unwrap() error { return e.err }

// Permanent marks err as a failure no later attempt can mend (the back-end
// describes results that cannot be downloaded): a handler returning it is
// not retried, and the row's download_pending is cleared with err in
// last_error. Any other handler error leaves the row pending, for this run
// to retry a few times and for the next run after that.
func Permanent(err error) error {
	if err == nil {
		return nil
	}
	return &permanentError{err}
}

// IsPermanent reports whether err was marked with Permanent.
func IsPermanent(err error) bool {
	var pe *permanentError
	return errors.As(err, &pe)
}

// ErrResultsMissing is matched (errors.Is) by the *MissingResultsError
// that Run returns when the table is done except for rows whose results
// or error logs could not be written.
var ErrResultsMissing = errors.New("results missing")

// MissingResult is a row whose handler (download of results, or of error
// logs) failed in this run.
type MissingResult struct {
	Key     int64
	JobID   string
	Backend string
	Status  driver.Status
	// Err says why, as recorded in the row's last_error.
	Err string
	// Pending is true when the row keeps download_pending, so that the
	// next run tries again; false for a Permanent failure.
	Pending bool
}

// MissingResultsError is what Run returns when every row is done but the
// results (or error logs) of some could not be written in this run. The
// table records each in last_error; those still Pending are tried again
// by the next run.
type MissingResultsError struct {
	Rows []MissingResult // in the order of their row keys
}

func (e *MissingResultsError) Error() string {
	pending := 0
	for _, r := range e.Rows {
		if r.Pending {
			pending++
		}
	}
	msg := fmt.Sprintf("results of %d row(s) are missing", len(e.Rows))
	if pending > 0 {
		msg += fmt.Sprintf("; %d still pending: fix the cause and run again to fetch them", pending)
	}
	return msg
}

// Is makes errors.Is(err, ErrResultsMissing) true.
func (e *MissingResultsError) Is(target error) bool { return target == ErrResultsMissing }

// SaveErrorLogs is the default handler for failed jobs: it writes the
// job's error-level logs to job_<id>_errors.json in ev.Dir, as the Python
// client does, and records the first one's message as the row's
// last_error, so that `worker status` and queries show why.
func SaveErrorLogs(ctx context.Context, ev Event) error {
	logs, err := ev.Conn.Logs(ctx, ev.Row.ID, "error")
	if errors.Is(err, remote.ErrJobNotFound) {
		return Permanent(fmt.Errorf("error logs of job %s: %w", ev.Row.ID, err))
	}
	if err != nil {
		return fmt.Errorf("error logs of job %s: %w", ev.Row.ID, err)
	}
	if len(logs) == 0 {
		return nil
	}
	if ev.SetError != nil {
		ev.SetError(summary(logs[0]))
	}
	b, err := json.MarshalIndent(logs, "", "  ")
	if err != nil {
		return err
	}
	if err := jobDir(ev.Dir); err != nil {
		return err
	}
	return atomicfile.WriteFile(filepath.Join(ev.Dir, "job_"+ev.Row.ID+"_errors.json"), b, 0o644)
}

// jobDir makes the job folder dir, and removes the temporary files that a
// process killed while it wrote there left (atomicfile.RemoveStale), so
// that they are not taken for results. What it cannot remove stays, and
// is still no asset (export --stac skips such names).
func jobDir(dir string) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	atomicfile.RemoveStale(dir)
	return nil
}

// maxSummary is the most of a log message last_error keeps, in bytes.
const maxSummary = 500

// summary is a log entry in one line: its code and message, cut short.
func summary(e remote.LogEntry) string {
	msg := strings.Join(strings.Fields(e.Message), " ")
	if e.Code != "" {
		msg = e.Code + ": " + msg
	}
	if len(msg) > maxSummary {
		cut := maxSummary
		for cut > 0 && !utf8.RuneStart(msg[cut]) {
			cut--
		}
		msg = msg[:cut] + "…"
	}
	return msg
}
