package remote_test

import (
	"crypto/md5"
	"encoding/hex"
	"errors"
	"os"
	"path/filepath"
	"testing"

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
