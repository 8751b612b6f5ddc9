package worker

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/openeo-batch/worker/driver"
	"github.com/openeo-batch/worker/remote"
)

// trackedStatuses are the rows whose status the tracker follows.
var trackedStatuses = []driver.Status{driver.Created, driver.Queued, driver.Running}

// track follows the status of every active job, one back-end at a time in
// parallel. Back-end errors are logged; store errors are returned.
func (m *Manager) track(ctx context.Context) error {
	var wg sync.WaitGroup
	errs := make([]error, len(m.backends))
	for i, b := range m.backends {
		wg.Go(func() { errs[i] = m.trackBackend(ctx, b) })
	}
	wg.Wait()
	return errors.Join(errs...)
}

func (m *Manager) trackBackend(ctx context.Context, b *Backend) error {
	rows, err := m.cfg.Store.Select(ctx, driver.Filter{Statuses: trackedStatuses, Backend: b.Name})
	if err != nil {
		return fmt.Errorf("select active rows of %s: %w", b.Name, err)
	}
	if len(rows) == 0 {
		return nil
	}
	log := m.log.With("backend", b.Name)
	// One listing gives every job's status, but it lists the account's whole
	// history: when that takes more pages than there are active jobs, asking
	// each job is cheaper (and brings usage and costs along).
	byID := map[string]*remote.Job{}
	m.mu.Lock()
	pages := m.listPages[b.Name]
	m.mu.Unlock()
	if pages <= len(rows) || pages == 0 {
		listed, err := b.Client.ListJobs(ctx, m.cfg.ListPageSize)
		m.stats.add("job list", 1)
		if err != nil {
			if ctx.Err() == nil {
				log.WarnContext(ctx, "list jobs failed; statuses are not updated this cycle", "err", err)
			}
			return nil
		}
		m.mu.Lock()
		m.listPages[b.Name] = len(listed)/m.cfg.ListPageSize + 1
		m.mu.Unlock()
		for i := range listed {
			byID[listed[i].ID] = &listed[i]
		}
	}
	for _, row := range rows {
		if ctx.Err() != nil {
			return nil
		}
		m.mu.Lock()
		busy := m.launching[row.Key]
		m.mu.Unlock()
		if busy {
			continue // its start is in flight and will record the outcome
		}
		if row.Worker != "" && row.Worker != m.cfg.Owner.ID() && m.cfg.Owner.Alive(row.Worker) {
			// Another live manager follows it: asking too would only
			// repeat its requests (a final status is described once, by
			// the manager that records it). Once it is gone, Alive says
			// so to the manager that takes its rows over.
			continue
		}
		rj := byID[row.ID]
		if rj == nil {
			// Not listed (no listing this cycle, or a back-end that lists only
			// recent jobs): ask.
			rj, err = b.Client.GetJob(ctx, row.ID)
			m.stats.add("job describe", 1)
			if errors.Is(err, remote.ErrJobNotFound) {
				m.vanished(ctx, b, row, err)
				continue
			}
			if err != nil {
				log.WarnContext(ctx, "get job status", "row", row.Key, "job_id", row.ID, "err", err)
				continue
			}
		}
		if err := m.apply(ctx, b, row, rj); err != nil {
			return err
		}
	}
	return nil
}

// vanished ends a row whose job the back-end no longer knows, so that the
// run can end.
func (m *Manager) vanished(ctx context.Context, b *Backend, row driver.Job, cause error) {
	m.stats.add("job failed", 1)
	m.log.WarnContext(ctx, "job no longer known by the back-end", "row", row.Key, "backend", b.Name, "job_id", row.ID)
	m.update(context.WithoutCancel(ctx), m.log, row.Key, row.Status, driver.Values{
		driver.ColStatus: driver.Error, driver.ColUpdatedAt: m.now(),
		driver.ColLastError: "job not found on back-end: " + cause.Error(),
	})
}

// apply records the back-end's view of one job in its row.
func (m *Manager) apply(ctx context.Context, b *Backend, row driver.Job, rj *remote.Job) error {
	log := m.log.With("row", row.Key, "backend", b.Name, "job_id", row.ID)
	status, err := driver.ParseStatus(rj.Status)
	if err != nil || !(status.Active() || status.Final()) || status == driver.QueuedForStart {
		// Pre-1.0 back-ends say "submitted"; anything unknown counts as queued.
		status = driver.Queued
	}
	switch {
	case status == driver.Created && row.Status == driver.Created:
		// Created but not started: a failed start to retry, or a job a
		// stopped run created.
		if row.Attempts >= m.cfg.MaxStartAttempts && row.LastError != "" {
			m.update(ctx, log, row.Key, driver.Created, driver.Values{
				driver.ColStatus: driver.StartFailed, driver.ColUpdatedAt: m.now(),
			})
			return nil
		}
		if !m.gates[b.Name].open(time.Now()) || !b.Client.Available() {
			return nil // the back-end asked us to wait
		}
		row.Attempts++
		m.goTracked(m.launching, row.Key, func() {
			if m.stillIs(ctx, row, false) {
				m.start(ctx, b, row)
			}
		})
		return nil
	case status == row.Status:
		m.maybeCancel(ctx, b, row)
		return nil
	}

	// The manager that records a change handles what follows from it.
	set := driver.Values{driver.ColStatus: status, driver.ColUpdatedAt: m.now(), driver.ColWorker: m.cfg.Owner.ID()}
	m.mu.Lock()
	canceledByUs := m.canceled[row.Key]
	m.mu.Unlock()
	if status == driver.Canceled && canceledByUs {
		set[driver.ColLastError] = fmt.Sprintf("canceled by the manager: running longer than %s (cancel_running_job_after)", m.cfg.CancelRunningJobAfter)
	}
	startedRunning := (status == driver.Running || status == driver.Finished) && row.RunningStartTime == ""
	if startedRunning {
		set[driver.ColRunningStartTime] = m.now()
	}
	if status.Final() {
		// A listing has no usage or costs: describe the job once, unless rj
		// is already the full description.
		full, err := rj, error(nil)
		if rj.Raw == nil {
			full, err = b.Client.GetJob(ctx, row.ID)
			m.stats.add("job describe", 1)
		}
		if err != nil {
			log.WarnContext(ctx, "describe final job", "err", err)
		} else {
			rj = full
			if len(rj.Odd) > 0 {
				log.DebugContext(ctx, "job description: fields of an unexpected type read as absent", "fields", rj.Odd)
			}
			for name, col := range map[string]string{"cpu": driver.ColCPU, "memory": driver.ColMemory, "duration": driver.ColDuration} {
				if u, ok := rj.Usage[name]; ok {
					set[col] = u.String()
				}
			}
			if rj.Costs != nil {
				set[driver.ColCosts] = *rj.Costs
			}
		}
		set[driver.ColDownloadPending] = m.handler(status) != nil
	}
	err = m.cfg.Store.Update(ctx, driver.Update{Key: row.Key, From: []driver.Status{row.Status}, Set: set})
	if errors.Is(err, driver.ErrConflict) {
		return nil // another worker recorded this change first: it handles it
	}
	if err != nil {
		return fmt.Errorf("record status of row %d: %w", row.Key, err)
	}
	log.InfoContext(ctx, "job status changed", "from", row.Status, "to", status)
	if startedRunning {
		m.stats.add("job started running", 1)
	}
	switch status {
	case driver.Finished:
		m.stats.add("job finished", 1)
	case driver.Error:
		m.stats.add("job failed", 1)
	case driver.Canceled:
		m.stats.add("job canceled", 1)
	}
	if status.Final() && rj.Raw != nil {
		m.mu.Lock()
		m.described[row.Key] = rj
		m.mu.Unlock()
	}
	return nil
}

// maybeCancel cancels a running job that ran longer than allowed.
func (m *Manager) maybeCancel(ctx context.Context, b *Backend, row driver.Job) {
	if m.cfg.CancelRunningJobAfter <= 0 || row.Status != driver.Running || row.RunningStartTime == "" {
		return
	}
	started, err := time.Parse(time.RFC3339, row.RunningStartTime)
	if err != nil || time.Now().Sub(started) < m.cfg.CancelRunningJobAfter {
		return
	}
	m.mu.Lock()
	already := m.canceled[row.Key]
	m.canceled[row.Key] = true
	m.mu.Unlock()
	if already {
		return
	}
	m.log.InfoContext(ctx, "canceling job that runs too long", "row", row.Key, "job_id", row.ID,
		"running_since", row.RunningStartTime, "limit", m.cfg.CancelRunningJobAfter)
	if err := b.Client.CancelJob(ctx, row.ID); err != nil {
		m.log.WarnContext(ctx, "cancel job", "row", row.Key, "job_id", row.ID, "err", err)
		m.mu.Lock()
		delete(m.canceled, row.Key)
		m.mu.Unlock()
		return
	}
	m.stats.add("job cancel", 1)
}

// handler returns the handler for a final status, or nil.
func (m *Manager) handler(s driver.Status) HandlerFunc {
	switch s {
	case driver.Finished:
		return m.cfg.OnJobDone
	case driver.Error:
		return m.cfg.OnJobError
	case driver.Canceled:
		return m.cfg.OnJobCanceled
	}
	return nil
}

// handleEvents runs the handlers of rows whose download is pending, in
// the background, a bounded number at a time. A row whose handler failed
// is tried again on a tracking cycle (track), not at once: a folder that
// cannot be written or a back-end that does not answer gets a poll
// interval to mend. Rows this run gave up on wait for the next run.
func (m *Manager) handleEvents(ctx context.Context, track bool) error {
	room := m.cfg.Concurrency - m.inFlight(m.handling)
	if room <= 0 {
		return nil
	}
	m.mu.Lock()
	skip := len(m.missing) + len(m.failures)
	m.mu.Unlock()
	rows, err := m.cfg.Store.Select(ctx, driver.Filter{DownloadPending: true, Limit: room + m.inFlight(m.handling) + skip})
	if err != nil {
		return fmt.Errorf("select pending downloads: %w", err)
	}
	for _, row := range rows {
		m.mu.Lock()
		_, gaveUp := m.missing[row.Key]
		failed := m.failures[row.Key] > 0
		m.mu.Unlock()
		if gaveUp || failed && !track {
			continue
		}
		if !m.orphan(row, m.handling) && row.Worker != m.cfg.Owner.ID() {
			continue // another live manager handles it
		}
		b := m.byName[row.Backend]
		h := m.handler(row.Status)
		if b == nil || h == nil {
			if b == nil {
				reason := fmt.Sprintf("back-end %q is not configured: add it to download the results", row.Backend)
				m.log.WarnContext(ctx, "cannot handle job", "row", row.Key, "reason", reason)
				m.giveUp(row, reason, true)
				continue
			}
			if m.update(ctx, m.log, row.Key, row.Status, driver.Values{driver.ColDownloadPending: false}) {
				m.removeParts(ctx, m.log, JobDir(m.cfg.RootDir, row.ID)) // downloads turned off since
			}
			continue
		}
		m.goTracked(m.handling, row.Key, func() { m.handle(ctx, b, row, h) })
	}
	return nil
}

// handlerErrPrefix starts the last_error a failed handler records, so that
// a later success knows to clear it.
const handlerErrPrefix = "handling "

func (m *Manager) handle(ctx context.Context, b *Backend, row driver.Job, h HandlerFunc) {
	log := m.log.With("row", row.Key, "backend", b.Name, "job_id", row.ID)
	// Job ids are unique per back-end only: two back-ends may use the same
	// id, and so the same job folder. Never write one folder twice at once.
	m.mu.Lock()
	busy := m.dirs[row.ID]
	if !busy {
		m.dirs[row.ID] = true
	}
	m.mu.Unlock()
	if busy {
		return // still pending: the next cycle handles it
	}
	defer func() {
		m.mu.Lock()
		delete(m.dirs, row.ID)
		m.mu.Unlock()
	}()
	if !m.stillIs(ctx, row, true) {
		return // handled since it was selected
	}
	m.mu.Lock()
	described := m.described[row.Key]
	m.mu.Unlock()
	var reported string
	dir := JobDir(m.cfg.RootDir, row.ID)
	err := h(ctx, Event{Row: row, Conn: b.Client, Dir: dir, Job: described,
		SetError: func(msg string) { reported = msg }})
	if err != nil && ctx.Err() != nil {
		return // stopped: still pending, the next run handles it
	}
	wctx := context.WithoutCancel(ctx)
	set := driver.Values{driver.ColDownloadPending: false, driver.ColUpdatedAt: m.now()}
	switch {
	case err != nil && !IsPermanent(err):
		// Nothing is lost: the row stays pending with the cause in
		// last_error, for a later cycle of this run (a few times) and then
		// for the next run.
		m.mu.Lock()
		m.failures[row.Key]++
		n := m.failures[row.Key]
		m.mu.Unlock()
		cause := handlerErrPrefix + string(row.Status) + " job: " + err.Error()
		m.update(wctx, log, row.Key, row.Status, driver.Values{driver.ColLastError: cause, driver.ColUpdatedAt: m.now()})
		if n < maxHandlerFailures {
			log.WarnContext(ctx, "job handler failed; will retry", "attempt", n, "err", err)
			return
		}
		m.stats.add("job download error", 1)
		log.ErrorContext(ctx, "job handler failed; results stay pending for the next run", "attempts", n, "err", err)
		m.giveUp(row, cause, true)
		m.mu.Lock()
		delete(m.described, row.Key)
		delete(m.failures, row.Key)
		m.mu.Unlock()
		return
	case err != nil:
		m.stats.add("job download error", 1)
		log.ErrorContext(ctx, "job handler failed for good", "err", err)
		set[driver.ColLastError] = handlerErrPrefix + string(row.Status) + " job: " + err.Error()
		m.giveUp(row, set[driver.ColLastError].(string), false)
	case reported != "":
		set[driver.ColLastError] = reported
	case strings.HasPrefix(row.LastError, handlerErrPrefix):
		set[driver.ColLastError] = nil // an earlier failure, now mended
	}
	if err == nil && row.Status == driver.Finished {
		m.stats.add("job download", 1)
		log.InfoContext(ctx, "results downloaded", "dir", dir)
	}
	if m.update(wctx, log, row.Key, row.Status, set) && err != nil {
		// Given up for good: its partial downloads serve no later run.
		// (DownloadResults removes them itself once a download succeeds:
		// it alone knows which files are results.)
		m.removeParts(ctx, log, dir)
	}
	m.mu.Lock()
	delete(m.described, row.Key)
	delete(m.failures, row.Key)
	m.mu.Unlock()
}

// removeParts removes the partial downloads left in a job folder that
// will not be resumed.
func (m *Manager) removeParts(ctx context.Context, log *slog.Logger, dir string) {
	if removed, err := remote.RemoveParts(dir, nil); err != nil {
		log.WarnContext(ctx, "remove partial downloads", "dir", dir, "err", err)
	} else if len(removed) > 0 {
		log.InfoContext(ctx, "removed partial downloads", "dir", dir, "files", removed)
	}
}

// giveUp records that this run handles row no more: its results are
// missing, and pending says whether the table keeps it pending for the
// next run.
func (m *Manager) giveUp(row driver.Job, cause string, pending bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.missing[row.Key] = MissingResult{Key: row.Key, JobID: row.ID, Backend: row.Backend, Status: row.Status,
		Err: cause, Pending: pending}
}

// pendingLeft reports whether a row's handler is still to run in this
// run: a pending row this run did not give up on.
func (m *Manager) pendingLeft(ctx context.Context) (bool, error) {
	m.mu.Lock()
	skip := len(m.missing)
	m.mu.Unlock()
	rows, err := m.cfg.Store.Select(ctx, driver.Filter{DownloadPending: true, Limit: skip + 1})
	if err != nil {
		return false, fmt.Errorf("select pending downloads: %w", err)
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	for _, r := range rows {
		if _, ok := m.missing[r.Key]; !ok {
			return true, nil
		}
	}
	return false, nil
}

// missingResults returns the rows whose results this run could not write,
// as a *MissingResultsError, or nil.
func (m *Manager) missingResults() error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if len(m.missing) == 0 {
		return nil
	}
	rows := slices.SortedFunc(maps.Values(m.missing), func(a, b MissingResult) int { return cmp.Compare(a.Key, b.Key) })
	return &MissingResultsError{Rows: rows}
}

// stillIs re-reads a row after its background slot was taken and reports
// whether it is still in the state it was selected in. The selection may be
// stale: a goroutine for the same row may have finished in between, and a
// goroutine writes the table before it gives its slot back, so the re-read
// sees its work.
func (m *Manager) stillIs(ctx context.Context, row driver.Job, pending bool) bool {
	cur, err := m.cfg.Store.Get(ctx, row.Key)
	if err != nil {
		if ctx.Err() == nil {
			m.log.WarnContext(ctx, "re-read row", "row", row.Key, "err", err)
		}
		return false
	}
	return cur.Status == row.Status && cur.ID == row.ID && (!pending || cur.DownloadPending)
}
