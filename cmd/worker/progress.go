package main

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strings"
	"sync"
	"time"

	tea "github.com/charmbracelet/bubbletea"
	"github.com/charmbracelet/x/term"

	"github.com/openeo-batch/worker/driver"
	"github.com/openeo-batch/worker/worker"
)

// display shows a run's progress. On a terminal (stderr is one, and the
// logs are text) it is a block redrawn in place, by Bubble Tea's
// renderer, with the logs at warning level and above printed over it;
// elsewhere the manager's one "progress" log line per tracking cycle is
// the progress, and the display does nothing.
type display struct {
	prog *tea.Program // nil off a terminal
	done chan struct{}
	once sync.Once
}

// isTerminal reports whether w is a terminal.
func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	return ok && term.IsTerminal(f.Fd())
}

// newDisplay starts the block on stderr when it is a terminal and
// logFormat is "text"; title heads the block.
func newDisplay(stderr io.Writer, title, logFormat string) *display {
	d := &display{done: make(chan struct{})}
	if logFormat != "text" || !isTerminal(stderr) {
		close(d.done)
		return d
	}
	// No input: the terminal stays in its normal mode, so Ctrl-C still
	// sends SIGINT, which the run handles (stop, resume later).
	d.prog = tea.NewProgram(&progressModel{title: title, now: time.Now},
		tea.WithOutput(stderr), tea.WithInput(nil), tea.WithoutSignalHandler())
	go func() {
		defer close(d.done)
		d.prog.Run()
	}()
	return d
}

// live reports whether the block is shown.
func (d *display) live() bool { return d.prog != nil }

// update shows a new snapshot (worker.Config.OnProgress).
func (d *display) update(p worker.Progress) {
	if d.prog != nil {
		d.prog.Send(p)
	}
}

// stop draws the last snapshot and leaves it on the screen.
func (d *display) stop() {
	d.once.Do(func() {
		if d.prog != nil {
			d.prog.Send(finalMsg{})
		}
	})
	<-d.done
}

// logHandler returns where the run's logs go: over the block on a
// terminal (warnings and errors, or everything from level), else h.
func (d *display) logHandler(h slog.Handler, level slog.Level) slog.Handler {
	if d.prog == nil {
		return h
	}
	return slog.NewTextHandler(lineWriter{d.prog}, &slog.HandlerOptions{Level: level})
}

// lineWriter prints log lines above the block.
type lineWriter struct{ prog *tea.Program }

func (w lineWriter) Write(b []byte) (int, error) {
	for line := range strings.SplitSeq(strings.TrimRight(string(b), "\n"), "\n") {
		w.prog.Send(printMsg(line))
	}
	return len(b), nil
}

type (
	finalMsg struct{}
	printMsg string
	tickMsg  struct{}
)

// progressModel is the Bubble Tea model of the block.
type progressModel struct {
	title string
	now   func() time.Time
	p     worker.Progress
	have  bool
}

func tick() tea.Cmd {
	return tea.Tick(time.Second, func(time.Time) tea.Msg { return tickMsg{} })
}

func (m *progressModel) Init() tea.Cmd { return tick() }

func (m *progressModel) Update(msg tea.Msg) (tea.Model, tea.Cmd) {
	switch msg := msg.(type) {
	case worker.Progress:
		m.p, m.have = msg, true
	case printMsg:
		return m, tea.Println(string(msg))
	case tickMsg:
		return m, tick() // redraw: the elapsed time and the countdown move
	case finalMsg:
		return m, tea.Quit
	}
	return m, nil
}

func (m *progressModel) View() string {
	if !m.have {
		return m.title + ": starting...\n"
	}
	return renderProgress(m.title, m.p, m.now())
}

// failedStatuses are the statuses the block counts as failed.
var failedStatuses = []driver.Status{driver.Error, driver.StartFailed, driver.Canceled}

func sumOf(by map[driver.Status]int, ss ...driver.Status) int {
	n := 0
	for _, s := range ss {
		n += by[s]
	}
	return n
}

// renderProgress draws the block: a head line (rows done of the total,
// rate, ETA, next poll), a table with a line per back-end (created,
// queued, running, finished and failed rows, of the back-end's rows), the
// rows not started, the limits, and the last events.
func renderProgress(title string, p worker.Progress, now time.Time) string {
	var b bytes.Buffer
	fmt.Fprintf(&b, "%s: %d of %d rows done (finished %d, failed %d), %s elapsed\n", title, p.Done, p.Total,
		p.ByStatus[driver.Finished], sumOf(p.ByStatus, failedStatuses...), now.Sub(p.StartedAt).Round(time.Second))
	eta := "ETA unknown"
	switch {
	case p.Done == p.Total:
		eta = "all rows done"
	case p.ETA > 0:
		eta = "ETA " + p.ETA.String()
	}
	next := "next poll now"
	if d := p.NextPoll.Sub(now); d > 0 {
		next = "next poll in " + d.Round(100*time.Millisecond).String()
	}
	fmt.Fprintf(&b, "rate %.1f rows/min, %s, %s\n", p.Rate, eta, next)
	fmt.Fprintf(&b, "%-16s %8s %8s %8s %8s %8s %8s  %s\n", "back-end", "created", "queued", "running", "finished", "failed", "rows", "")
	for _, be := range p.Backends {
		by := be.ByStatus
		note := ""
		if be.Paused != "" {
			note = "paused: " + be.Paused
			if !be.PausedUntil.IsZero() {
				note += fmt.Sprintf(" (%s left)", be.PausedUntil.Sub(now).Round(time.Second))
			}
		}
		fmt.Fprintf(&b, "%-16s %8d %8d %8d %8d %8d %8d  %s\n", be.Name,
			sumOf(by, driver.QueuedForStart, driver.Created), by[driver.Queued], by[driver.Running],
			by[driver.Finished], sumOf(by, failedStatuses...), be.Total, note)
	}
	fmt.Fprintf(&b, "not started: %d, skipped: %d\n", p.ByStatus[driver.NotStarted], p.ByStatus[driver.Skipped])
	if p.Costs != nil {
		fmt.Fprintf(&b, "budget: %s of %s credits (%s recorded, %s for %d active jobs)\n",
			fmtNum(p.Costs.Recorded+p.Costs.Active), fmtNum(p.Costs.Max), fmtNum(p.Costs.Recorded), fmtNum(p.Costs.Active), p.Costs.ActiveJobs)
	}
	if p.MaxJobs > 0 {
		fmt.Fprintf(&b, "jobs launched: %d of at most %d\n", p.Launched, p.MaxJobs)
	}
	if p.Halted != "" {
		fmt.Fprintf(&b, "launching stopped: %s\n", p.Halted)
	}
	if len(p.Events) > 0 {
		b.WriteString("recent events:\n")
		for _, ev := range p.Events[max(0, len(p.Events)-5):] {
			fmt.Fprintf(&b, "  %s %s\n", ev.Time.Local().Format("15:04:05"), ev)
		}
	}
	return b.String()
}

func fmtNum(f float64) string {
	return strings.TrimSuffix(strings.TrimRight(fmt.Sprintf("%.2f", f), "0"), ".")
}

// progressOnly keeps the warnings, errors and the "progress" lines of a
// run: the demo's logs.
type progressOnly struct{ slog.Handler }

func (h progressOnly) Enabled(ctx context.Context, l slog.Level) bool {
	return h.Handler.Enabled(ctx, l)
}

func (h progressOnly) Handle(ctx context.Context, r slog.Record) error {
	if r.Level < slog.LevelWarn && r.Message != "progress" {
		return nil
	}
	return h.Handler.Handle(ctx, r)
}

func (h progressOnly) WithAttrs(as []slog.Attr) slog.Handler {
	return progressOnly{h.Handler.WithAttrs(as)}
}

func (h progressOnly) WithGroup(name string) slog.Handler {
	return progressOnly{h.Handler.WithGroup(name)}
}
