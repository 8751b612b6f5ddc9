package worker

import (
	"cmp"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"net/url"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strings"
	"unicode/utf8"

	"github.com/openeo-batch/worker/remote"
)

// ErrAssetRefused is matched (errors.Is) by the error of an asset that is
// not saved because of its name: one that would leave the job folder (see
// AssetPath), or one whose file would clash with another asset's file, its
// partial download, job_<id>.json or job-results.json (ResultsFile).
var ErrAssetRefused = errors.New("refusing asset name")

// AssetPath returns the path, relative to the job folder and with forward
// slashes, that a result asset is saved under: its key in the result
// document, as the Python client's MultiBackendJobManager saves it
// (job_<id>/<key>), so a key with folders such as "data/b03.tif" (as STAC
// catalogues produce) lands in job_<id>/data/b03.tif. An empty key takes
// the last segment of the asset's href instead.
//
// Backslashes count as folder separators on every system, so that a job
// folder means the same on Windows and elsewhere ("data\b03.tif" is
// data/b03.tif). The path is cleaned ("a/./b", "a//b" and "a/x/../b" are
// a/b). Only names that would not be a file inside the job folder are
// refused, with an error matching ErrAssetRefused: an empty name, one with a
// NUL byte, an absolute path ("/etc/x", "\\server\share\x"), one that starts
// with a drive letter ("C:x", "C:\x": any one character and a colon), one
// that leads out of the folder after cleaning ("..", "../x", "a/../../x"),
// one that names the folder itself ("a/.."), and one this system would not
// keep inside the folder (filepath.IsLocal: on Windows also reserved device
// names such as NUL or COM1, and names with a colon). The rule is the
// DESIGN's: downloaded file names come from the back-end, and none may
// escape the job folder.
func AssetPath(key, href string) (string, error) {
	name := key
	if name == "" {
		name = hrefBase(href)
	}
	refuse := func(why string) (string, error) {
		return "", fmt.Errorf("%w %q: %s", ErrAssetRefused, key, why)
	}
	p := strings.ReplaceAll(name, `\`, "/")
	switch {
	case name == "":
		return refuse("the asset has neither a name nor a link to take one from")
	case strings.ContainsRune(name, 0):
		return refuse("it contains a NUL byte")
	case strings.HasPrefix(p, "/"):
		return refuse("it is an absolute path, not a file inside the job folder")
	case hasDriveLetter(p):
		return refuse("it starts with a drive letter, not a file inside the job folder")
	}
	clean := path.Clean(p)
	switch {
	case clean == ".":
		return refuse("it names the job folder itself, not a file inside it")
	case clean == ".." || strings.HasPrefix(clean, "../"):
		return refuse("it leads out of the job folder")
	case !filepath.IsLocal(filepath.FromSlash(clean)):
		return refuse("this system would not keep it inside the job folder")
	}
	return clean, nil
}

// hasDriveLetter reports whether p starts with a Windows drive letter: one
// character and a colon. Windows (and Go's path/filepath there) takes any
// character for a drive letter, not just A-Z.
func hasDriveLetter(p string) bool {
	_, size := utf8.DecodeRuneInString(p)
	return len(p) > size && p[size] == ':'
}

// hrefBase returns the last segment of a link's path, or "".
func hrefBase(href string) string {
	u, err := url.Parse(href)
	if err != nil {
		return ""
	}
	b := path.Base(u.Path)
	if b == "/" || b == "." {
		return ""
	}
	return b
}

// AssetPaths decides where each asset of job id is saved (paths, by asset
// key, relative with forward slashes) and which are refused (by key, with
// the reason): names AssetPath refuses, and names whose files clash, as
// file, partial download or folder, with another asset's or with the
// manager's own files, job_<id>.json and job-results.json. Every asset of
// a clash is refused, so the outcome does not depend on the order of the
// result document. (The Python client would overwrite such an asset with
// its metadata file; refusing it says so instead.)
func AssetPaths(id string, assets map[string]remote.Asset) (paths map[string]string, refused map[string]error) {
	paths, refused = map[string]string{}, map[string]error{}
	type use struct {
		key  string // "" for the manager's own files
		role string // "file", "partial download", "folder"; for key "", what the file is
	}
	uses := map[string][]use{} // file or folder path -> who needs it
	uses["job_"+id+".json"] = []use{{"", "the job's metadata"}}
	uses[ResultsFile] = []use{{"", "the results metadata"}}
	for _, key := range slices.Sorted(maps.Keys(assets)) {
		p, err := AssetPath(key, assets[key].Href)
		if err != nil {
			refused[key] = err
			continue
		}
		paths[key] = p
		uses[p] = append(uses[p], use{key, "file"})
		uses[p+remote.PartSuffix] = append(uses[p+remote.PartSuffix], use{key, "partial download"})
		uses[p+remote.PartSuffix+".meta"] = append(uses[p+remote.PartSuffix+".meta"], use{key, "partial download"})
		for i := range len(p) {
			if p[i] == '/' {
				uses[p[:i]] = append(uses[p[:i]], use{key, "folder"})
			}
		}
	}
	describe := func(u use) string {
		if u.key == "" {
			return u.role
		}
		return fmt.Sprintf("the %s of asset %q", u.role, u.key)
	}
	for _, name := range slices.Sorted(maps.Keys(uses)) {
		us := uses[name]
		files, keys := 0, map[string]bool{}
		for _, u := range us {
			keys[u.key] = true
			if u.role != "folder" {
				files++
			}
		}
		if len(keys) < 2 || files == 0 {
			continue // one asset's own names, or a folder assets share
		}
		var who []string
		for _, u := range us {
			who = append(who, describe(u))
		}
		for _, u := range us {
			if _, done := refused[u.key]; u.key != "" && !done {
				refused[u.key] = fmt.Errorf("%w %q: %q would be %s", ErrAssetRefused, u.key, name, strings.Join(who, " and "))
				delete(paths, u.key)
			}
		}
	}
	return paths, refused
}

// AssetFailure is an asset of a job that is not on disk.
type AssetFailure struct {
	// Key is the asset's key in the result document.
	Key string
	// Err says why: a refused name (ErrAssetRefused), a link that is not
	// http(s) (remote.ErrUnsupportedLink), a failed download.
	Err error
	// Permanent is true when no later attempt can fetch it as the back-end
	// describes it (a refused name, an unsupported link).
	Permanent bool
}

// AssetsError is what DownloadResults returns when some assets of a job
// are missing: the others are on disk, and so is job_<id>.json. Its text
// names the missing assets, and so does the row's last_error.
type AssetsError struct {
	JobID string
	// Total is the number of assets of the job.
	Total int
	// Missing are the assets not on disk, by key.
	Missing []AssetFailure
}

// maxNamedAssets bounds the assets whose causes an AssetsError's text
// gives; beyond, it gives their keys alone, up to maxListedAssets.
const maxNamedAssets, maxListedAssets = 10, 100

func (e *AssetsError) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "job %s: %d of %d assets missing: ", e.JobID, len(e.Missing), e.Total)
	for i, f := range e.Missing {
		switch {
		case i == maxListedAssets:
			fmt.Fprintf(&b, " and %d others", len(e.Missing)-i)
			return b.String()
		case i == maxNamedAssets:
			fmt.Fprintf(&b, "; and %d more: %q", len(e.Missing)-i, f.Key)
		case i > maxNamedAssets:
			fmt.Fprintf(&b, ", %q", f.Key)
		default:
			if i > 0 {
				b.WriteString("; ")
			}
			if errors.Is(f.Err, ErrAssetRefused) {
				b.WriteString(f.Err.Error()) // names the asset itself
			} else {
				fmt.Fprintf(&b, "asset %q: %v", f.Key, f.Err)
			}
		}
	}
	return b.String()
}

// Unwrap returns the assets' errors, for errors.Is and errors.As.
func (e *AssetsError) Unwrap() []error {
	errs := make([]error, len(e.Missing))
	for i, f := range e.Missing {
		errs[i] = f.Err
	}
	return errs
}

// permanent reports whether every missing asset is missing for good.
func (e *AssetsError) permanent() bool {
	for _, f := range e.Missing {
		if !f.Permanent {
			return false
		}
	}
	return true
}

// sortFailures orders failures by asset key.
func sortFailures(fs []AssetFailure) {
	slices.SortFunc(fs, func(a, b AssetFailure) int { return cmp.Compare(a.Key, b.Key) })
}

// MissingAssetFiles compares the assets of job id's results, as the
// back-end lists them (GET /jobs/{id}/results, saved as job-results.json),
// with the files in the job folder dir. It returns, sorted, the file of
// each asset (its path in the job folder, forward slashes, see AssetPath)
// that is not there, the file of each whose size differs from its
// announced file:size ("data/b03.tif (100 of 65536 bytes)"), and each
// asset AssetPaths refuses, with the reason: what `worker download` would
// fetch, or could not. A file that cannot be examined (other than not
// being there) is an error. The manager's own files, job_<id>.json and
// job-results.json, are not among the assets: callers check them.
func MissingAssetFiles(dir, id string, assets map[string]remote.Asset) ([]string, error) {
	var missing []string
	paths, refused := AssetPaths(id, assets)
	for key, err := range refused {
		missing = append(missing, fmt.Sprintf("%s (%v)", key, err))
	}
	for key, file := range paths {
		a := assets[key]
		fi, err := os.Stat(filepath.Join(dir, filepath.FromSlash(file)))
		switch {
		case errors.Is(err, os.ErrNotExist):
			missing = append(missing, file)
		case err != nil:
			return nil, err
		case a.FileSize != nil && fi.Size() != *a.FileSize:
			missing = append(missing, fmt.Sprintf("%s (%d of %d bytes)", file, fi.Size(), *a.FileSize))
		}
	}
	slices.Sort(missing)
	return missing, nil
}

// BadResultsError is a saved results document (ResultsFile) that is no
// openEO batch job results document: its asset list cannot be read.
type BadResultsError struct{ Err error }

func (e BadResultsError) Error() string { return fmt.Sprintf("%s: %v", ResultsFile, e.Err) }
func (e BadResultsError) Unwrap() error { return e.Err }

// MissingResultFiles is MissingAssetFiles for the assets that a saved
// results document (the bytes of job_<id>/job-results.json) lists. A
// document whose asset list cannot be read is a BadResultsError.
func MissingResultFiles(dir, id string, resultsJSON []byte) ([]string, error) {
	var r remote.Results
	if err := json.Unmarshal(resultsJSON, &r); err != nil {
		return nil, BadResultsError{err}
	}
	return MissingAssetFiles(dir, id, r.Assets)
}
