// Package fingerprint tells one version of a table file from another by
// its content: size and CRC-32C. File times would make a mere copy look
// like another version.
package fingerprint

import (
	"fmt"
	"hash"
	"hash/crc32"
	"io"
	"os"
)

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// Hash is a fingerprint being computed from what is written to it.
type Hash struct {
	h hash.Hash32
	n int64
}

// New returns an empty Hash.
func New() *Hash { return &Hash{h: crc32.New(castagnoli)} }

func (f *Hash) Write(p []byte) (int, error) {
	f.n += int64(len(p))
	return f.h.Write(p)
}

// String is the fingerprint of what was written so far.
func (f *Hash) String() string { return fmt.Sprintf("%d:%08x", f.n, f.h.Sum32()) }

// File returns the fingerprint of a file's content, "" if there is no file.
func File(path string) (string, error) {
	f, err := os.Open(path)
	if os.IsNotExist(err) {
		return "", nil
	}
	if err != nil {
		return "", err
	}
	defer f.Close()
	h := New()
	if _, err := io.Copy(h, f); err != nil {
		return "", fmt.Errorf("%s: %w", path, err)
	}
	return h.String(), nil
}
