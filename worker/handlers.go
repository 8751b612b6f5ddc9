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

// ErrorLogPath returns <root>/job_<id>/job_<id>_errors.json.
func ErrorLogPath(root, jobID string) string {
	return filepath.Join(JobDir(root, jobID), "job_"+jobID+"_errors.json")
}

// DownloadResults is the default handler for finished jobs: it downloads
// every result asset into ev.Dir (a few at a time, each checked against its
// announced size and checksum) and writes the job's description to
// job_<id>.json there, last, so that file marks a complete download. Expired
// result links are renewed by asking for the results again; a download cut
// off, here or by a kill, resumes from its <file>.part (see
// remote.Client.DownloadAsset), and partial files left over are removed
// once the download is complete.
//
// Results that can never be downloaded as the back-end describes them (an
// asset name that leaves the job folder, a link that is not http(s), a job
// the back-end no longer knows) are Permanent errors; any other failure
// (a folder that cannot be written, a back-end that does not answer) leaves
// the download pending.
func DownloadResults(ctx context.Context, ev Event) error {
	id := ev.Row.ID
	res, err := ev.Conn.Results(ctx, id)
	if errors.Is(err, remote.ErrJobNotFound) {
		return Permanent(fmt.Errorf("results of job %s: %w", id, err))
	}
	if err != nil {
		return fmt.Errorf("results of job %s: %w", id, err)
	}
	files := map[string]string{} // asset key -> file name
	keep := map[string]bool{}    // file names of the results
	for name, a := range res.Assets {
		if files[name], err = assetFileName(name, a.Href); err != nil {
			return Permanent(fmt.Errorf("job %s: %w", id, err))
		}
		keep[files[name]] = true
	}
	for name, file := range files {
		for _, suffix := range []string{remote.PartSuffix, remote.PartSuffix + ".meta"} {
			if keep[file+suffix] {
				return Permanent(fmt.Errorf("job %s: asset %q would be saved as %q, the name of the partial download of asset %q: refusing both",
					id, name, file+suffix, name))
			}
		}
	}
	if err := os.MkdirAll(ev.Dir, 0o755); err != nil {
		return err
	}
	var mu sync.Mutex // guards assets while links are renewed
	assets := maps.Clone(res.Assets)
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(4)
	for name, file := range files {
		g.Go(func() error {
			for renewals := 0; ; renewals++ {
				mu.Lock()
				a := assets[name]
				mu.Unlock()
				_, err := ev.Conn.DownloadAsset(gctx, a, filepath.Join(ev.Dir, file))
				if !errors.Is(err, remote.ErrLinkExpired) || renewals == 2 {
					if errors.Is(err, remote.ErrUnsupportedLink) {
						return Permanent(fmt.Errorf("job %s asset %q: %w", id, name, err))
					}
					if err != nil {
						return fmt.Errorf("job %s asset %q: %w", id, name, err)
					}
					return nil
				}
				fresh, err := ev.Conn.Results(gctx, id)
				if err != nil {
					return fmt.Errorf("renew result links of job %s: %w", id, err)
				}
				mu.Lock()
				if fa, ok := fresh.Assets[name]; ok {
					assets[name] = fa
				}
				mu.Unlock()
			}
		})
	}
	if err := g.Wait(); err != nil {
		return err
	}
	meta := ev.Job
	if meta == nil || meta.Raw == nil {
		if meta, err = ev.Conn.GetJob(ctx, id); err != nil {
			return fmt.Errorf("describe job %s: %w", id, err)
		}
	}
	if err := atomicfile.WriteFile(filepath.Join(ev.Dir, "job_"+id+".json"), meta.Raw, 0o644); err != nil {
		return err
	}
	_, err = remote.RemoveParts(ev.Dir, keep)
	return err
}

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

// assetFileName returns the file name an asset is saved under: its key,
// which must be a plain name that stays inside the job folder.
func assetFileName(key, href string) (string, error) {
	name := key
	if name == "" {
		name = filepath.Base(href)
	}
	if name == "" || name == "." || name == ".." || strings.ContainsAny(name, `/\`) ||
		filepath.IsAbs(name) || filepath.VolumeName(name) != "" || strings.ContainsRune(name, 0) {
		return "", fmt.Errorf("refusing asset name %q: it is not a plain file name inside the job folder", key)
	}
	return name, nil
}

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
	if err := os.MkdirAll(ev.Dir, 0o755); err != nil {
		return err
	}
	return atomicfile.WriteFile(filepath.Join(ev.Dir, "job_"+ev.Row.ID+"_errors.json"), b, 0o644)
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
