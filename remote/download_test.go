package remote_test

import (
	"bytes"
	"crypto/md5"
	"encoding/hex"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/openeo-batch/worker/remote"
	"github.com/openeo-batch/worker/remote/remotetest"
)

// finishedJob creates and starts a job on srv and returns its results.
func finishedJob(t *testing.T, c *remote.Client) (string, *remote.Results) {
	t.Helper()
	id, err := c.CreateJob(t.Context(), &remote.JobRequest{Process: graph()})
	if err != nil {
		t.Fatal(err)
	}
	if err := c.StartJob(t.Context(), id); err != nil {
		t.Fatal(err)
	}
	res, err := c.Results(t.Context(), id)
	if err != nil {
		t.Fatal(err)
	}
	return id, res
}

// An md5 multihash (code 0xd5, a two-byte varint: d5 01) is checked, not
// refused as malformed.
func TestDownloadChecksMD5Multihash(t *testing.T) {
	srv := remotetest.NewServer(remotetest.Options{})
	defer srv.Close()
	c := connect(t, srv)
	id, res := finishedJob(t, c)
	a := res.Assets["result.tif"]
	sum := md5.Sum(remotetest.AssetBytes(id, "result.tif", 1024))
	a.FileChecksum = "d50110" + hex.EncodeToString(sum[:])
	dst := filepath.Join(t.TempDir(), "result.tif")
	if _, err := c.DownloadAsset(t.Context(), a, dst); err != nil {
		t.Fatalf("correct md5 multihash: %v", err)
	}
	sum[0] ^= 1
	a.FileChecksum = "d50110" + hex.EncodeToString(sum[:])
	os.Remove(dst)
	if _, err := c.DownloadAsset(t.Context(), a, dst); !errors.Is(err, remote.ErrVerify) {
		t.Errorf("wrong md5: err = %v, want ErrVerify", err)
	}
}

// noRetries is a policy under which a broken download fails at once, as
// when the process is killed in the middle of it.
func noRetries() *remote.Options {
	return &remote.Options{Policy: &remote.Policy{MaxRetries: -1, BreakerThreshold: -1}}
}

// interrupted downloads half of the asset of a new job into dir/result.tif
// and leaves it there as a killed process would: the transfer is cut
// after half the bytes and nothing retries it.
func interrupted(t *testing.T, srv *remotetest.Server, dir string) (id string, a remote.Asset, dst string) {
	t.Helper()
	c := connect(t, srv)
	id, res := finishedJob(t, c)
	a = res.Assets["result.tif"]
	cut, err := remote.New(srv.APIURL, noRetries())
	if err != nil {
		t.Fatal(err)
	}
	cut.SetToken(srv.ValidToken())
	srv.SetFaults(remotetest.Faults{DropRate: 1})
	dst = filepath.Join(dir, "result.tif")
	if _, err := cut.DownloadAsset(t.Context(), a, dst); err == nil {
		t.Fatal("the cut download succeeded")
	}
	srv.SetFaults(remotetest.Faults{})
	if fi, err := os.Stat(dst + remote.PartSuffix); err != nil || fi.Size() == 0 {
		t.Fatalf("after a cut transfer: %v, want %s kept with the bytes received", err, dst+remote.PartSuffix)
	}
	return id, a, dst
}

// parts lists the partial files left in dir.
func parts(t *testing.T, dir string) []string {
	t.Helper()
	var left []string
	for _, pat := range []string{"*.part", "*.part.*"} {
		m, _ := filepath.Glob(filepath.Join(dir, pat))
		left = append(left, m...)
	}
	return left
}

// A download cut off (as by a kill) resumes in a later process from where
// its stable .part file ends, with a Range request guarded by If-Range.
func TestDownloadResumesAfterKill(t *testing.T) {
	const size = 100_000
	srv := remotetest.NewServer(remotetest.Options{AssetSize: size})
	defer srv.Close()
	dir := t.TempDir()
	id, a, dst := interrupted(t, srv, dir)
	have, _ := os.Stat(dst + remote.PartSuffix)

	c := connect(t, srv) // a new process
	if _, err := c.DownloadAsset(t.Context(), a, dst); err != nil {
		t.Fatal(err)
	}
	if got, _ := os.ReadFile(dst); !bytes.Equal(got, srv.AssetContent(id, "result.tif")) {
		t.Errorf("resumed file differs from the asset (%d bytes)", len(got))
	}
	reqs := srv.AssetRequests()
	last := reqs[len(reqs)-1]
	if want := fmt.Sprintf("bytes=%d-", have.Size()); last.Range != want || last.IfRange == "" {
		t.Errorf("resumed with Range %q If-Range %q, want %q and the ETag", last.Range, last.IfRange, want)
	}
	if left := parts(t, dir); len(left) > 0 {
		t.Errorf("%v left behind", left)
	}
}

// A server that ignores Range sends the whole file: the download starts
// over instead of appending it to the part.
func TestDownloadRestartsWhenRangeIgnored(t *testing.T) {
	srv := remotetest.NewServer(remotetest.Options{AssetSize: 50_000, IgnoreRange: true})
	defer srv.Close()
	dir := t.TempDir()
	id, a, dst := interrupted(t, srv, dir)
	// The server gave no validator: keep a stale one to make the client ask.
	os.WriteFile(dst+".part.meta", []byte(`"stale"`), 0o644)
	c := connect(t, srv)
	if _, err := c.DownloadAsset(t.Context(), a, dst); err != nil {
		t.Fatal(err)
	}
	if got, _ := os.ReadFile(dst); !bytes.Equal(got, srv.AssetContent(id, "result.tif")) {
		t.Errorf("file of %d bytes differs from the asset of 50000", len(got))
	}
	if left := parts(t, dir); len(left) > 0 {
		t.Errorf("%v left behind", left)
	}
}

// When the file changed since the part was written (another validator),
// the server answers If-Range with the whole new file: no mix of versions.
func TestDownloadRestartsWhenFileChanged(t *testing.T) {
	srv := remotetest.NewServer(remotetest.Options{AssetSize: 50_000})
	defer srv.Close()
	dir := t.TempDir()
	id, a, dst := interrupted(t, srv, dir)
	srv.ChangeAssets()
	c := connect(t, srv)
	if _, err := c.DownloadAsset(t.Context(), a, dst); err != nil {
		t.Fatal(err)
	}
	if got, _ := os.ReadFile(dst); !bytes.Equal(got, srv.AssetContent(id, "result.tif")) {
		t.Errorf("file differs from the new version of the asset")
	}
}

// A part as long as the file (killed between the last byte and the rename)
// gets 416 to its range: the download starts over and completes.
func TestDownloadCompletePartStartsOver(t *testing.T) {
	srv := remotetest.NewServer(remotetest.Options{AssetSize: 4096})
	defer srv.Close()
	c := connect(t, srv)
	id, res := finishedJob(t, c)
	dst := filepath.Join(t.TempDir(), "result.tif")
	content := srv.AssetContent(id, "result.tif")
	os.WriteFile(dst+remote.PartSuffix, append(content, 'x'), 0o644)
	os.WriteFile(dst+".part.meta", []byte(`"whatever"`), 0o644)
	if _, err := c.DownloadAsset(t.Context(), res.Assets["result.tif"], dst); err != nil {
		t.Fatal(err)
	}
	if got, _ := os.ReadFile(dst); !bytes.Equal(got, content) {
		t.Errorf("file of %d bytes differs from the asset", len(got))
	}
}

// A part without a validator cannot be trusted: it is written over.
func TestDownloadPartWithoutValidatorWrittenOver(t *testing.T) {
	srv := remotetest.NewServer(remotetest.Options{AssetSize: 4096})
	defer srv.Close()
	c := connect(t, srv)
	id, res := finishedJob(t, c)
	dst := filepath.Join(t.TempDir(), "result.tif")
	os.WriteFile(dst+remote.PartSuffix, []byte("garbage from an old version"), 0o644)
	if _, err := c.DownloadAsset(t.Context(), res.Assets["result.tif"], dst); err != nil {
		t.Fatal(err)
	}
	if got, _ := os.ReadFile(dst); !bytes.Equal(got, srv.AssetContent(id, "result.tif")) {
		t.Errorf("file differs from the asset")
	}
	if r := srv.AssetRequests(); r[len(r)-1].Range != "" {
		t.Errorf("asked for range %q of a part without validator", r[len(r)-1].Range)
	}
}

// Links that are not http(s) are refused at once, before any request or
// file, with an error that says why. (Before: a file:// link was retried
// with backoff for over a minute.)
func TestDownloadRefusesOtherSchemes(t *testing.T) {
	srv := remotetest.NewServer(remotetest.Options{})
	defer srv.Close()
	// Retries an hour apart: a retry would hang the test.
	c, err := remote.New(srv.APIURL, &remote.Options{Policy: &remote.Policy{MinBackoff: time.Hour, MaxBackoff: time.Hour}})
	if err != nil {
		t.Fatal(err)
	}
	c.SetToken(srv.ValidToken())
	dir := t.TempDir()
	for _, href := range []string{"file:///etc/passwd", "ftp://127.0.0.1/x.tif", "s3://bucket/x.tif", "gs://b/x"} {
		_, err := c.DownloadAsset(t.Context(), remote.Asset{Href: href}, filepath.Join(dir, "x.tif"))
		if !errors.Is(err, remote.ErrUnsupportedLink) || !strings.Contains(err.Error(), href) {
			t.Errorf("%s: err = %v, want ErrUnsupportedLink naming the link", href, err)
		}
	}
	if left, _ := os.ReadDir(dir); len(left) > 0 {
		t.Errorf("files made for refused links: %v", left)
	}
}

// The token goes to the back-end's origin only: not to an asset host on
// another port of the same host, neither by link nor through a redirect.
func TestTokenNeverLeavesItsOrigin(t *testing.T) {
	for name, opts := range map[string]remotetest.Options{"asset host": {AssetHost: true}, "redirect": {RedirectAssets: true}} {
		srv := remotetest.NewServer(opts)
		defer srv.Close()
		c := connect(t, srv)
		id, res := finishedJob(t, c)
		dst := filepath.Join(t.TempDir(), "result.tif")
		if _, err := c.DownloadAsset(t.Context(), res.Assets["result.tif"], dst); err != nil {
			t.Fatal(err)
		}
		if got, _ := os.ReadFile(dst); !bytes.Equal(got, srv.AssetContent(id, "result.tif")) {
			t.Errorf("%s: file differs from the asset", name)
		}
		sawHost := false
		for _, r := range srv.AssetRequests() {
			if r.Host == "assets" {
				sawHost = true
				if r.Authorization != "" {
					t.Errorf("%s: the asset host on another port got Authorization %q", name, r.Authorization)
				}
			}
		}
		if !sawHost {
			t.Errorf("%s: the asset host got no request: the test tested nothing", name)
		}
	}
}

// A server answering a range request with another range than asked: the
// download asks again for the whole file instead of splicing wrong bytes.
func TestDownloadWrongRangeStartsOver(t *testing.T) {
	content := bytes.Repeat([]byte("0123456789"), 100)
	var ranges []string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ranges = append(ranges, r.Header.Get("Range"))
		w.Header().Set("ETag", `"v1"`)
		if r.Header.Get("Range") != "" {
			w.Header().Set("Content-Range", fmt.Sprintf("bytes 0-9/%d", len(content)))
			w.WriteHeader(http.StatusPartialContent)
			w.Write(content[:10])
			return
		}
		w.Write(content)
	}))
	defer srv.Close()
	c, err := remote.New(srv.URL, fast())
	if err != nil {
		t.Fatal(err)
	}
	dst := filepath.Join(t.TempDir(), "x.bin")
	os.WriteFile(dst+remote.PartSuffix, content[:500], 0o644)
	os.WriteFile(dst+".part.meta", []byte(`"v1"`), 0o644)
	if _, err := c.Download(t.Context(), srv.URL+"/x.bin", dst); err != nil {
		t.Fatal(err)
	}
	if got, _ := os.ReadFile(dst); !bytes.Equal(got, content) {
		t.Errorf("got %d bytes, not the file", len(got))
	}
	if len(ranges) != 2 || ranges[0] != "bytes=500-" || ranges[1] != "" {
		t.Errorf("ranges asked: %q, want bytes=500- then the whole file", ranges)
	}
}
