package remote

import (
	"crypto/md5"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"testing"
)

// multihash builds a hex multihash the way the specification does:
// varint code, varint length, digest.
func multihash(code uint64, digest []byte) string {
	b := binary.AppendUvarint(nil, code)
	b = binary.AppendUvarint(b, uint64(len(digest)))
	return hex.EncodeToString(append(b, digest...))
}

func TestParseMultihash(t *testing.T) {
	md5sum := md5.Sum([]byte("abc"))
	sha := sha256.Sum256([]byte("abc"))
	long := make([]byte, 200) // a length that needs a two-byte varint
	tests := []struct {
		in       string
		code     uint64
		digest   []byte
		wantFail bool
	}{
		// md5's code 0xd5 is the two-byte varint d5 01.
		{in: "d50110" + hex.EncodeToString(md5sum[:]), code: 0xd5, digest: md5sum[:]},
		{in: "1220" + hex.EncodeToString(sha[:]), code: 0x12, digest: sha[:]},
		{in: multihash(0x13, long), code: 0x13, digest: long},
		{in: "d510" + hex.EncodeToString(md5sum[:]), wantFail: true},   // code without its second byte
		{in: "d50111" + hex.EncodeToString(md5sum[:]), wantFail: true}, // announced 17 bytes, 16 given
		{in: "1220ab", wantFail: true},
		{in: "12", wantFail: true},
		{in: "", wantFail: true},
		{in: "zz", wantFail: true},
		{in: "ff", wantFail: true},                          // a varint that never ends
		{in: "928000" + "00", wantFail: true},               // code 0x12 padded to three bytes: not minimal
		{in: "ffffffffffffffffff01" + "00", wantFail: true}, // ten bytes: beyond the limit
	}
	for _, tt := range tests {
		code, digest, err := parseMultihash(tt.in)
		if tt.wantFail {
			if err == nil {
				t.Errorf("parseMultihash(%q) = %#x %x, want an error", tt.in, code, digest)
			}
			continue
		}
		if err != nil || code != tt.code || hex.EncodeToString(digest) != hex.EncodeToString(tt.digest) {
			t.Errorf("parseMultihash(%q) = %#x %x %v, want %#x %x", tt.in, code, digest, err, tt.code, tt.digest)
		}
	}
}

// FuzzMultihash: any checksum text is either refused or splits into a code
// and a digest of exactly the announced length, and re-encodes to itself.
func FuzzMultihash(f *testing.F) {
	md5sum := md5.Sum(nil)
	f.Add("d50110" + hex.EncodeToString(md5sum[:]))
	f.Add("1220" + hex.EncodeToString(make([]byte, 32)))
	f.Add("1340" + hex.EncodeToString(make([]byte, 64)))
	f.Add("1114" + hex.EncodeToString(make([]byte, 20)))
	f.Add(multihash(0x1e, make([]byte, 200)))
	f.Add("d501")
	f.Add("ff")
	f.Add("")
	f.Fuzz(func(t *testing.T, s string) {
		code, digest, err := parseMultihash(s)
		if err != nil {
			return
		}
		if got := multihash(code, digest); got != s && got != lowerHex(s) {
			t.Fatalf("%q parsed as %#x %x, which encodes as %q", s, code, digest, got)
		}
	})
}

func lowerHex(s string) string {
	b, _ := hex.DecodeString(s)
	return hex.EncodeToString(b)
}
