package remote

import (
	"bytes"
	"context"
	"crypto/md5"
	"crypto/sha1"
	"crypto/sha256"
	"crypto/sha512"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/openeo-batch/worker/internal/atomicfile"
)

// ErrVerify means a downloaded file does not match the size or checksum
// the back-end announced.
var ErrVerify = errors.New("downloaded file does not match its announced size or checksum")

// ErrBusy means another download (in this process or another) writes the
// same file at the moment.
var ErrBusy = errors.New("another download of the same file is in progress")

// PartSuffix ends the name of a partial download: <file>.part, beside
// <file>. The validator the server gave for it (ETag or Last-Modified), if
// any, is kept in <file>.part.meta so that a later process can resume it.
const PartSuffix = ".part"

const metaSuffix = PartSuffix + ".meta"

// Download streams the file at href to dst. See DownloadAsset.
func (c *Client) Download(ctx context.Context, href, dst string) (int64, error) {
	return c.DownloadAsset(ctx, Asset{Href: href}, dst)
}

// DownloadAsset downloads a result asset to dst and checks the file
// against the asset's file:size and file:checksum when it has them.
//
// The bytes go to dst.part, locked while the download runs (two downloads
// of one file never share it: the second gets ErrBusy), and dst.part is
// renamed to dst once whole and checked, so dst exists only whole. A
// transfer that breaks, in this process or in a killed one, is resumed from
// where dst.part ends with an HTTP Range request guarded by If-Range with
// the server's validator; when the server ignores the range, or the file
// changed since, the download starts over. A download that fails otherwise
// keeps dst.part to resume later; one that fails its check removes it.
//
// Only http and https links are fetched (ErrUnsupportedLink otherwise,
// before anything is sent). The openEO token is sent only when href is on
// the back-end's own origin, and never after a redirect to another origin.
func (c *Client) DownloadAsset(ctx context.Context, a Asset, dst string) (int64, error) {
	u := c.resolve(a.Href)
	wrap := func(err error) error { return fmt.Errorf("download %s: %w", redactURL(u), err) }
	if err := checkLink(u); err != nil {
		return 0, fmt.Errorf("download: %w", err)
	}
	p, err := openPart(dst)
	if err != nil {
		return 0, wrap(err)
	}
	defer p.close()
	n, err := c.fetchInto(ctx, u, p)
	var apiErr *APIError
	if errors.As(err, &apiErr) && apiErr.StatusCode == http.StatusRequestedRangeNotSatisfiable {
		// The part is as long as the file or longer: start over.
		if err = p.reset(""); err == nil {
			n, err = c.fetchInto(ctx, u, p)
		}
	}
	if err != nil {
		return 0, wrap(err) // the part stays: the next attempt resumes it
	}
	if err := verify(p.f, n, a); err != nil {
		p.remove()
		return 0, wrap(err)
	}
	if err := p.commit(dst); err != nil {
		return 0, wrap(err)
	}
	return n, nil
}

// fetchInto downloads u into the part file, resuming from its end where it
// has a validator, and returns the file's length.
func (c *Client) fetchInto(ctx context.Context, u string, p *part) (int64, error) {
	n := p.size // bytes on disk so far
	err := c.call(ctx, request{method: http.MethodGet, url: u, download: true,
		prepare: func(req *http.Request) {
			if n > 0 {
				req.Header.Set("Range", "bytes="+strconv.FormatInt(n, 10)+"-")
				if p.validator != "" {
					req.Header.Set("If-Range", p.validator)
				}
			}
		},
		handle: func(resp *http.Response) error {
			resumed := n > 0 && resp.StatusCode == http.StatusPartialContent &&
				strings.HasPrefix(resp.Header.Get("Content-Range"), fmt.Sprintf("bytes %d-", n))
			if !resumed && resp.StatusCode == http.StatusPartialContent {
				// A part of the file, but not the one asked for: retry
				// for the whole file.
				asked := n
				n = 0
				if err := p.reset(""); err != nil {
					return err
				}
				return &transportError{fmt.Errorf("asked for the bytes from %d on, got the range %q",
					asked, resp.Header.Get("Content-Range"))}
			}
			if !resumed {
				// The whole file: the server ignored the range, or the file
				// changed since the part was written.
				n = 0
				if err := p.reset(validatorOf(resp)); err != nil {
					return err
				}
			}
			if _, err := p.f.Seek(n, io.SeekStart); err != nil {
				return err
			}
			copied, err := io.Copy(p.f, resp.Body)
			n += copied
			p.size = n
			if err == nil && resp.ContentLength >= 0 && copied != resp.ContentLength {
				err = io.ErrUnexpectedEOF
			}
			if err != nil {
				var pe *os.PathError
				if errors.As(err, &pe) {
					return err // writing failed, not the transfer
				}
				// A broken transfer: the retry resumes from n.
				return &transportError{fmt.Errorf("after %d bytes: %w", n, err)}
			}
			return nil
		}})
	return n, err
}

// validatorOf returns what identifies the version of a file the server
// sent, for If-Range: a strong ETag, else Last-Modified, else "".
func validatorOf(resp *http.Response) string {
	if et := resp.Header.Get("ETag"); et != "" && !strings.HasPrefix(et, "W/") {
		return et
	}
	return resp.Header.Get("Last-Modified")
}

// part is a partial download, dst.part, open and locked.
type part struct {
	f         *os.File
	path      string // dst.part
	size      int64  // bytes to resume from
	validator string // the server's validator of those bytes
}

// openPart opens and locks dst.part. Its bytes count for a resume only with
// a validator from an earlier download; without one they are written over.
func openPart(dst string) (*part, error) {
	path := dst + PartSuffix
	for range 3 {
		f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o644)
		if err != nil {
			return nil, err
		}
		locked, err := tryLock(f)
		if err != nil || !locked {
			f.Close()
			if err == nil {
				err = fmt.Errorf("%s: %w", path, ErrBusy)
			}
			return nil, err
		}
		// Between the open and the lock, the download that held it may
		// have renamed or removed the file: lock the file at path, or retry.
		held, err1 := f.Stat()
		now, err2 := os.Stat(path)
		if err1 != nil || err2 != nil || !os.SameFile(held, now) {
			unlock(f)
			f.Close()
			continue
		}
		p := &part{f: f, path: path}
		if meta, err := os.ReadFile(dst + metaSuffix); err == nil && len(meta) > 0 {
			p.validator = strings.TrimSpace(string(meta))
			p.size = held.Size()
		}
		return p, nil
	}
	return nil, fmt.Errorf("%s: %w", path, ErrBusy)
}

// reset empties the part for a download from the start whose validator is
// validator ("" for none).
func (p *part) reset(validator string) error {
	if err := p.f.Truncate(0); err != nil {
		return err
	}
	p.size, p.validator = 0, validator
	meta := strings.TrimSuffix(p.path, PartSuffix) + metaSuffix
	if validator == "" {
		if err := os.Remove(meta); err != nil && !errors.Is(err, os.ErrNotExist) {
			return err
		}
		return nil
	}
	return os.WriteFile(meta, []byte(validator+"\n"), 0o644)
}

// commit syncs the part and renames it to dst, then syncs the folder, so
// that dst survives a crash once DownloadAsset returned.
func (p *part) commit(dst string) error {
	if err := p.f.Sync(); err != nil {
		return err
	}
	if renameWhileLocked {
		// Renamed under the lock: a download waiting for it finds no part.
		if err := os.Rename(p.path, dst); err != nil {
			return err
		}
		p.close()
	} else {
		p.close()
		if err := os.Rename(p.path, dst); err != nil {
			return err
		}
	}
	os.Remove(strings.TrimSuffix(p.path, PartSuffix) + metaSuffix)
	return atomicfile.SyncDir(filepath.Dir(dst))
}

// remove deletes the part and its validator.
func (p *part) remove() {
	os.Remove(p.path)
	os.Remove(strings.TrimSuffix(p.path, PartSuffix) + metaSuffix)
}

func (p *part) close() {
	if p.f != nil {
		unlock(p.f)
		p.f.Close()
		p.f = nil
	}
}

// RemoveParts deletes the partial downloads (name.part, name.part.meta)
// in dir and its sub-folders that no download is writing, except those
// named in keep (files that are results in their own right, by their path
// relative to dir with forward slashes, such as "data/b03.tif.part"), and
// returns the relative paths it removed. Call it once a job's results are
// complete, or given up, so that no partial file outlives the run.
// Symbolic links are not followed.
func RemoveParts(dir string, keep map[string]bool) ([]string, error) {
	if _, err := os.Lstat(dir); errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	var removed []string
	var errs []error
	err := filepath.WalkDir(dir, func(p string, e os.DirEntry, err error) error {
		if err != nil {
			if p != dir && errors.Is(err, os.ErrNotExist) {
				return nil // removed while we walk
			}
			errs = append(errs, err)
			return nil
		}
		rel, _ := filepath.Rel(dir, p)
		rel = filepath.ToSlash(rel)
		if e.IsDir() || !e.Type().IsRegular() || keep[rel] {
			return nil
		}
		switch name := e.Name(); {
		case strings.HasSuffix(name, PartSuffix):
			gone, err := removeIdlePart(p)
			if err != nil {
				errs = append(errs, err)
			}
			if gone {
				removed = append(removed, rel)
			}
		case strings.HasSuffix(name, metaSuffix):
			// Its part is removed with it; a validator left alone goes too.
			part := strings.TrimSuffix(p, metaSuffix) + PartSuffix
			if _, err := os.Lstat(part); errors.Is(err, os.ErrNotExist) {
				if err := os.Remove(p); err == nil {
					removed = append(removed, rel)
				}
			}
		}
		return nil
	})
	if err != nil {
		errs = append(errs, err)
	}
	return removed, errors.Join(errs...)
}

// removeIdlePart removes a part file unless a download holds its lock.
func removeIdlePart(path string) (bool, error) {
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if errors.Is(err, os.ErrNotExist) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	locked, err := tryLock(f)
	if err != nil || !locked {
		f.Close()
		return false, err
	}
	meta := strings.TrimSuffix(path, PartSuffix) + metaSuffix
	if err := os.Remove(path); err != nil {
		// Windows removes no open file: let go of it first.
		unlock(f)
		f.Close()
		if err := os.Remove(path); err != nil && !errors.Is(err, os.ErrNotExist) {
			return false, err
		}
		os.Remove(meta)
		return true, nil
	}
	os.Remove(meta)
	unlock(f)
	f.Close()
	return true, nil
}

// VerifyFile checks a file on disk against the asset's file:size and
// file:checksum, as DownloadAsset checks what it downloads: nil when the
// file matches (or the asset announces neither), an error matching
// ErrVerify when it does not, and the error of the file system when the
// file cannot be read (os.ErrNotExist for a missing one).
func VerifyFile(path string, a Asset) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return err
	}
	if !fi.Mode().IsRegular() {
		return fmt.Errorf("%s: %w: not a regular file", path, ErrVerify)
	}
	if err := verify(f, fi.Size(), a); err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	return nil
}

// verify checks size and checksum. The checksum is a multihash in hex, as
// the STAC file extension gives it: the hash function's code and the
// digest's length, each an unsigned varint (multiformats/unsigned-varint;
// md5's code 0xd5 takes two bytes), then the digest. Unknown hash functions
// are not checked.
func verify(f *os.File, n int64, a Asset) error {
	if a.FileSize != nil && *a.FileSize != n {
		return fmt.Errorf("%w: %d bytes, announced %d", ErrVerify, n, *a.FileSize)
	}
	if a.FileChecksum == "" {
		return nil
	}
	code, digest, err := parseMultihash(a.FileChecksum)
	if err != nil {
		return fmt.Errorf("%w: malformed file:checksum %q: %w", ErrVerify, a.FileChecksum, err)
	}
	var h hash.Hash
	switch code {
	case 0x11:
		h = sha1.New()
	case 0x12:
		h = sha256.New()
	case 0x13:
		h = sha512.New()
	case 0xd5:
		h = md5.New()
	default:
		return nil
	}
	if _, err := f.Seek(0, io.SeekStart); err != nil {
		return err
	}
	if _, err := io.Copy(h, f); err != nil {
		return err
	}
	if got := h.Sum(nil); !bytes.Equal(got, digest) {
		return fmt.Errorf("%w: checksum %x, announced %x", ErrVerify, got, digest)
	}
	return nil
}

// maxVarint is the longest varint a multihash may use (9 bytes, as the
// multiformats unsigned-varint specification allows).
const maxVarint = 9

// parseMultihash splits a hex multihash into its hash function code and
// its digest, checking that the announced length is the digest's length.
func parseMultihash(s string) (code uint64, digest []byte, err error) {
	b, err := hex.DecodeString(s)
	if err != nil {
		return 0, nil, errors.New("not hexadecimal")
	}
	code, n := uvarint(b)
	if n <= 0 {
		return 0, nil, errors.New("no valid hash function code")
	}
	b = b[n:]
	size, n := uvarint(b)
	if n <= 0 {
		return 0, nil, errors.New("no valid digest length")
	}
	b = b[n:]
	if uint64(len(b)) != size {
		return 0, nil, fmt.Errorf("digest of %d bytes, announced %d", len(b), size)
	}
	return code, b, nil
}

// uvarint decodes an unsigned varint of at most maxVarint bytes from the
// start of b, as binary.Uvarint does; n <= 0 when there is none.
func uvarint(b []byte) (v uint64, n int) {
	v, n = binary.Uvarint(b[:min(len(b), maxVarint)])
	if n > 1 && b[n-1] == 0 {
		return 0, 0 // not minimal: the specification forbids it
	}
	return v, n
}
