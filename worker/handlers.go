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
// result links are renewed by asking for the results again.
func DownloadResults(ctx context.Context, ev Event) error {
	id := ev.Row.ID
	res, err := ev.Conn.Results(ctx, id)
	if err != nil {
		return fmt.Errorf("results of job %s: %w", id, err)
	}
	files := map[string]string{} // asset key -> file name
	for name, a := range res.Assets {
		if files[name], err = assetFileName(name, a.Href); err != nil {
			return fmt.Errorf("job %s: %w", id, err)
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
	return atomicfile.WriteFile(filepath.Join(ev.Dir, "job_"+id+".json"), meta.Raw, 0o644)
}

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
