package remote

import (
	"bytes"
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

	"context"
)

// ErrVerify means a downloaded file does not match the size or checksum
// the back-end announced.
var ErrVerify = errors.New("downloaded file does not match its announced size or checksum")

// Download streams the file at href to dst. It writes dst.<random>.part
// and renames it when complete, so dst exists only whole; a transfer that
// breaks is resumed with a Range request where the server allows it. The
// openEO token is sent only when href is on the back-end's own host.
func (c *Client) Download(ctx context.Context, href, dst string) (int64, error) {
	return c.DownloadAsset(ctx, Asset{Href: href}, dst)
}

// DownloadAsset downloads a result asset like Download, and checks the
// file against the asset's file:size and file:checksum when it has them.
func (c *Client) DownloadAsset(ctx context.Context, a Asset, dst string) (int64, error) {
	u := c.resolve(a.Href)
	// A name of its own: two downloads of one file never share a .part.
	f, err := os.CreateTemp(filepath.Dir(dst), filepath.Base(dst)+".*.part")
	if err != nil {
		return 0, err
	}
	part := f.Name()
	fail := func(err error) (int64, error) {
		f.Close()
		os.Remove(part)
		return 0, fmt.Errorf("download %s: %w", redactURL(u), err)
	}
	var n int64 // bytes on disk so far
	err = c.call(ctx, request{method: http.MethodGet, url: u, download: true,
		prepare: func(req *http.Request) {
			if n > 0 {
				req.Header.Set("Range", "bytes="+strconv.FormatInt(n, 10)+"-")
			}
		},
		handle: func(resp *http.Response) error {
			if resp.StatusCode != http.StatusPartialContent || !strings.HasPrefix(resp.Header.Get("Content-Range"), fmt.Sprintf("bytes %d-", n)) {
				n = 0 // the server sent the whole file
			}
			if err := f.Truncate(n); err != nil {
				return err
			}
			if _, err := f.Seek(n, io.SeekStart); err != nil {
				return err
			}
			copied, err := io.Copy(f, resp.Body)
			n += copied
			if err == nil && resp.ContentLength >= 0 && copied != resp.ContentLength {
				err = io.ErrUnexpectedEOF
			}
			if err != nil {
				// A broken transfer: the retry resumes from n.
				return &transportError{fmt.Errorf("after %d bytes: %w", n, err)}
			}
			return nil
		}})
	if err != nil {
		return fail(err)
	}
	if err := verify(f, n, a); err != nil {
		return fail(err)
	}
	if err := f.Sync(); err != nil {
		return fail(err)
	}
	if err := f.Close(); err != nil {
		os.Remove(part)
		return 0, err
	}
	if err := os.Rename(part, dst); err != nil {
		os.Remove(part)
		return 0, err
	}
	return n, nil
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
