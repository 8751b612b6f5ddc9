package test

import (
	"bufio"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/openeo-batch/worker/remote/remotetest"
)

// BenchmarkRunRSS1M measures the peak memory of `worker run` (built
// without the race detector) over a 1,000,000-row table for 20 seconds
// against a fake back-end whose jobs finish at once. The baseline is
// `worker status` on the same table: the process's floor with the table
// open. Peak RSS includes the pages of the 87 MB executable the process
// touched, which move by several MB from one build to the next with the
// code's layout alone; run-anon-MB, the largest anonymous memory seen
// (sampled every 20 ms), is what the run itself holds.
func BenchmarkRunRSS1M(b *testing.B) {
	dir := b.TempDir()
	bin := filepath.Join(dir, "worker")
	if out, err := exec.Command("go", "build", "-o", bin, "../cmd/worker").CombinedOutput(); err != nil {
		b.Fatalf("build: %v\n%s", err, out)
	}
	f, _ := os.Create(filepath.Join(dir, "big.csv"))
	w := bufio.NewWriter(f)
	w.WriteString("year,title,geometry\n")
	for i := range 1_000_000 {
		fmt.Fprintf(w, "%d,tile %d,\"POLYGON((%d 0, 1 0, 1 1, 0 1, %d 0))\"\n", 2000+i%25, i, i, i)
	}
	w.Flush()
	f.Close()
	os.WriteFile(filepath.Join(dir, "p.json"), []byte(process), 0o644)
	var anon int64 // largest RssAnon of the last process run
	run := func(d time.Duration, env []string, args ...string) (int64, error) {
		c := exec.Command(bin, args...)
		c.Dir = dir
		c.Env = append([]string{"HOME=" + dir}, env...)
		if err := c.Start(); err != nil {
			return 0, err
		}
		if d > 0 {
			time.AfterFunc(d, func() { c.Process.Signal(syscall.SIGTERM) })
		}
		done := make(chan struct{})
		sampled := make(chan int64)
		go func() {
			var top int64
			tick := time.NewTicker(20 * time.Millisecond)
			defer tick.Stop()
			for {
				top = max(top, rssAnon(c.Process.Pid))
				select {
				case <-done:
					sampled <- top
					return
				case <-tick.C:
				}
			}
		}()
		err := c.Wait()
		close(done)
		anon = <-sampled
		if ee, ok := err.(*exec.ExitError); ok && ee.ExitCode() == 130 {
			err = nil // stopped by the signal, as meant
		}
		return c.ProcessState.SysUsage().(*syscall.Rusage).Maxrss * 1024, err
	}
	if _, err := run(0, nil, "init", "--from", "big.csv", "--db", "jobs.db"); err != nil {
		b.Fatal(err)
	}
	srv := remotetest.NewServer(remotetest.Options{AssetSize: 1024})
	defer srv.Close()
	var runRSS, statusRSS int64
	for b.Loop() {
		var err error
		if statusRSS, err = run(0, nil, "status", "--db", "jobs.db"); err != nil {
			b.Fatal(err)
		}
		runRSS, err = run(20*time.Second, []string{"OPENEO_USERNAME=user", "OPENEO_PASSWORD=password"},
			"run", "--db", "jobs.db", "--backend", "fake="+srv.URL+",parallel=200,queue=200",
			"--process", "p.json", "--poll", "200ms", "--root-dir", "res")
		if err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(anon)/(1<<20), "run-anon-MB")
	b.ReportMetric(float64(runRSS)/(1<<20), "run-peak-RSS-MB")
	b.ReportMetric(float64(statusRSS)/(1<<20), "status-peak-RSS-MB")
	b.ReportMetric(float64(runRSS)/float64(statusRSS), "run/status")
	b.ReportMetric(float64(len(srv.Jobs())), "jobs-run")
}

// rssAnon is a process's anonymous resident memory now (Linux), 0 once
// it has exited.
func rssAnon(pid int) int64 {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0
	}
	for line := range strings.Lines(string(b)) {
		if v, ok := strings.CutPrefix(line, "RssAnon:"); ok {
			kb, _ := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 10, 64)
			return kb << 10
		}
	}
	return 0
}
