package test

import (
	"bufio"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/openeo-batch/worker/driver"
	"github.com/openeo-batch/worker/remote/remotetest"
)

// TestLoginThenRun logs in with `worker login` (device flow, the test plays
// the user), then runs a table with no password: the stored refresh token
// is enough. A second run uses client credentials from the environment.
func TestLoginThenRun(t *testing.T) {
	t.Parallel()
	provider := remotetest.NewOIDCProvider(nil)
	defer provider.Close()
	srv := remotetest.NewServer(remotetest.Options{OIDC: provider})
	defer srv.Close()
	dir := t.TempDir() // also $HOME of the commands

	login := cmd(t.Context(), dir, nil, "login", srv.URL)
	stderr, err := login.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	out := &strings.Builder{}
	login.Stdout = out
	if err := login.Start(); err != nil {
		t.Fatal(err)
	}
	codeRE := regexp.MustCompile(`enter the code (\S+)`)
	sc := bufio.NewScanner(stderr)
	approved := false
	for sc.Scan() {
		if m := codeRE.FindStringSubmatch(sc.Text()); m != nil {
			time.Sleep(300 * time.Millisecond) // the user takes a moment: a poll or two is pending
			approved = provider.Approve(m[1])
		}
	}
	if err := login.Wait(); err != nil || !approved {
		t.Fatalf("login: %v (approved %v)\n%s", err, approved, out)
	}
	store := filepath.Join(dir, ".local", "share", "openeo-python-client", "refresh-tokens.json")
	st, err := os.Stat(store)
	if err != nil || st.Mode().Perm() != 0o600 {
		t.Fatalf("refresh token store: %v %v", err, st)
	}
	if !strings.Contains(out.String(), store) {
		t.Errorf("login output does not say where the token is: %s", out)
	}

	os.WriteFile(filepath.Join(dir, "in.csv"), []byte("year,title\n2020,a\n2021,b\n"), 0o644)
	os.WriteFile(filepath.Join(dir, "p.json"), []byte(process), 0o644)
	if b, err := cmd(t.Context(), dir, nil, "init", "--from", "in.csv", "--db", "jobs.db").CombinedOutput(); err != nil {
		t.Fatalf("init: %v\n%s", err, b)
	}
	run := []string{"run", "--db", "jobs.db", "--backend", "b=" + srv.URL, "--process", "p.json", "--poll", "20ms"}
	if b, err := cmd(t.Context(), dir, nil, run...).CombinedOutput(); err != nil {
		t.Fatalf("run with the stored login: %v\n%s", err, b)
	}
	for _, r := range readRows(t, filepath.Join(dir, "jobs.db")) {
		if r.Status != driver.Finished {
			t.Errorf("row %v: %q", r.Data["title"], r.Status)
		}
	}
	if b, _ := os.ReadFile(filepath.Join(dir, "jobs.db")); strings.Contains(string(b), "rt-") || strings.Contains(string(b), "at-") {
		t.Error("a token landed in the job table")
	}

	// Client credentials from the environment, in a home without a login.
	dir2 := t.TempDir()
	os.WriteFile(filepath.Join(dir2, "in.csv"), []byte("year,title\n2022,c\n"), 0o644)
	os.WriteFile(filepath.Join(dir2, "p.json"), []byte(process), 0o644)
	cmd(t.Context(), dir2, nil, "init", "--from", "in.csv", "--db", "jobs.db").Run()
	env := []string{"OPENEO_AUTH_METHOD=client_credentials", "OPENEO_AUTH_CLIENT_ID=" + provider.ClientID,
		"OPENEO_AUTH_CLIENT_SECRET=" + provider.ClientSecret}
	b, err := cmd(t.Context(), dir2, env, run...).CombinedOutput()
	if err != nil {
		t.Fatalf("run with client credentials: %v\n%s", err, b)
	}
	if strings.Contains(string(b), provider.ClientSecret) {
		t.Error("the client secret appears in the output")
	}

	// Nothing at all: the error says every way to log in.
	dir3 := t.TempDir()
	os.WriteFile(filepath.Join(dir3, "p.json"), []byte(process), 0o644)
	os.WriteFile(filepath.Join(dir3, "in.csv"), []byte("year\n1\n"), 0o644)
	cmd(t.Context(), dir3, nil, "init", "--from", "in.csv", "--db", "jobs.db").Run()
	b, err = cmd(t.Context(), dir3, nil, run...).CombinedOutput()
	if exitCode(err) != 1 || !strings.Contains(string(b), "worker login") || !strings.Contains(string(b), "OPENEO_B_TOKEN") {
		t.Errorf("no credentials: exit %d\n%s", exitCode(err), b)
	}
}
