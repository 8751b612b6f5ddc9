package test

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/openeo-batch/worker/driver/postgres"
	"github.com/openeo-batch/worker/driver/postgres/pgtest"
	"github.com/openeo-batch/worker/remote/remotetest"
)

// BenchmarkPostgresWorkers runs 1, 2 and 4 worker processes (built without
// the race detector) on one PostgreSQL table of 2,000 rows against fake
// back-ends, until every row is done, and reports jobs/s, requests per
// job (to the back-ends) and statements per job (the database's round
// trips on the table, counted by pg_stat_statements; BEGIN and COMMIT,
// which name no table, are not in it).
//
//   - slots40: 2 back-ends with parallel=20 each, 40 slots in all: the
//     back-ends bound the pace, workers share the slots.
//
//   - rps: slots plentiful (parallel=400) and each worker held to its own
//     rate (rps=100, as each user's own quota would hold it): workers add
//     up.
//
//     WORKER_TEST_POSTGRES=... go test -run '^$' -bench PostgresWorkers -benchtime 1x ./test/
//
// WORKER_PG_BENCH_ROWS (default 2000) and WORKER_PG_BENCH_RPS (default 100)
// change the table size and the rate of the rps scenario: on a small
// machine, where PostgreSQL, the fake back-ends and the workers share the
// cores, a lower rate shows how workers add up before the CPU runs out.
func BenchmarkPostgresWorkers(b *testing.B) {
	pgtest.Location(b)
	dir := b.TempDir()
	bin := filepath.Join(dir, "worker")
	if out, err := exec.Command("go", "build", "-o", bin, "../cmd/worker").CombinedOutput(); err != nil {
		b.Fatalf("build: %v\n%s", err, out)
	}
	rows, rps := 2000, 100
	for name, v := range map[string]*int{"WORKER_PG_BENCH_ROWS": &rows, "WORKER_PG_BENCH_RPS": &rps} {
		if s := os.Getenv(name); s != "" {
			n, err := strconv.Atoi(s)
			if err != nil || n < 1 {
				b.Fatalf("%s=%q: want a positive integer", name, s)
			}
			*v = n
		}
	}
	for _, sc := range []struct {
		name     string
		backends int
		opt      string
	}{{"slots40", 2, "parallel=20,queue=20"}, {"rps", 1, fmt.Sprintf("parallel=400,queue=400,rps=%d", rps)}} {
		for _, workers := range []int{1, 2, 4} {
			b.Run(fmt.Sprintf("%s/workers=%d", sc.name, workers), func(b *testing.B) {
				for range b.N {
					benchWorkers(b, bin, rows, workers, sc.backends, sc.opt)
				}
			})
		}
	}
}

func benchWorkers(b *testing.B, bin string, rows, workers, backends int, opt string) {
	b.StopTimer()
	ctx := b.Context()
	loc := pgtest.Location(b)
	dir := b.TempDir()
	var csv strings.Builder
	csv.WriteString("year,title\n")
	for i := range rows {
		fmt.Fprintf(&csv, "%d,row %d\n", 2000+i%25, i)
	}
	os.WriteFile(filepath.Join(dir, "in.csv"), []byte(csv.String()), 0o644)
	os.WriteFile(filepath.Join(dir, "p.json"), []byte(process), 0o644)
	run := func(args ...string) *exec.Cmd {
		c := exec.CommandContext(ctx, bin, args...)
		c.Dir = dir
		c.Env = []string{"HOME=" + dir, "OPENEO_USERNAME=user", "OPENEO_PASSWORD=password"}
		return c
	}
	if out, err := run("init", "--from", "in.csv", "--db", loc).CombinedOutput(); err != nil {
		b.Fatalf("init: %v\n%s", err, out)
	}
	args := []string{"run", "--db", loc, "--process", "p.json", "--root-dir", "res", "--poll", "200ms"}
	var srvs []*remotetest.Server
	for i := range backends {
		srv := remotetest.NewServer(remotetest.Options{QueueTime: 100 * time.Millisecond, RunTime: 400 * time.Millisecond})
		defer srv.Close()
		srvs = append(srvs, srv)
		args = append(args, "--backend", fmt.Sprintf("fake%d=%s,%s", i, srv.URL, opt))
	}
	s, err := postgres.Open(ctx, loc)
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	statements := func() int64 {
		var n int64
		err := s.Pool().QueryRow(ctx, "SELECT coalesce(sum(calls), 0) FROM pg_stat_statements WHERE query LIKE '%' || $1 || '%'", s.Table()).Scan(&n)
		if err != nil {
			b.Fatalf("pg_stat_statements (started by .ci/postgres): %v", err)
		}
		return n
	}
	before := statements()
	b.StartTimer()
	start := time.Now()
	var cmds []*exec.Cmd
	for range workers {
		c := run(args...)
		var stderr strings.Builder
		c.Stderr = &stderr
		if err := c.Start(); err != nil {
			b.Fatal(err)
		}
		cmds = append(cmds, c)
		defer func() {
			if b.Failed() {
				b.Log(stderr.String())
			}
		}()
	}
	for i, c := range cmds {
		if err := c.Wait(); err != nil {
			b.Fatalf("worker %d: %v", i, err)
		}
	}
	elapsed := time.Since(start)
	b.StopTimer()
	stmts := statements() - before
	requests, jobs := 0, 0
	for _, srv := range srvs {
		requests += srv.TotalRequests()
		jobs += len(srv.Jobs())
	}
	if jobs != rows {
		b.Fatalf("%d back-end jobs for %d rows", jobs, rows)
	}
	var done int
	s.Pool().QueryRow(ctx, "SELECT count(*) FROM "+pgx.Identifier{s.Table()}.Sanitize()+" WHERE status = 'finished' AND NOT download_pending").Scan(&done)
	if done != rows {
		b.Fatalf("%d rows finished, want %d", done, rows)
	}
	b.ReportMetric(float64(rows)/elapsed.Seconds(), "jobs/s")
	b.ReportMetric(float64(requests)/float64(rows), "requests/job")
	b.ReportMetric(float64(stmts)/float64(rows), "statements/job")

}
