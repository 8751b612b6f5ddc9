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

// trackErrPrefix starts the last_error of a row whose status could not
// be asked for, so that the next answer clears it.
const trackErrPrefix = "status not updated: "

// track follows the status of every active job, one back-end at a time in
// parallel: for callers of cycle outside Run, which tracks each back-end in
// its own loop. A back-end not checked yet is checked first; one that
// cannot be used is skipped. Back-end errors are logged; store errors are
// returned.
func (m *Manager) track(ctx context.Context) error {
	var wg sync.WaitGroup
	errs := make([]error, len(m.backends))
	for i, b := range m.backends {
		wg.Go(func() {
			if !m.health[b.Name].isUsable() {
				if err := m.check(ctx, b); err != nil {
					m.markUnusable(ctx, b, err, m.cfg.PollInterval)
					return
				}
			}
			errs[i] = m.backendCycle(ctx, b)
		})
	}
	wg.Wait()
	return errors.Join(errs...)
}

// trackBackend records the status of b's active jobs. Its requests are
// sent once and bounded in time (requestContext): a request that fails or
// is slow leaves its rows for the next cycle instead of holding this one.
// The listing gives every status at once; when it fails, or lacks a job,
// that job is asked for (GET /jobs/{id}) in the same cycle. A row whose
// status cannot be had either way says why in last_error. When nothing
// the back-end was asked answered, for a reason that is the back-end's
// (no connection, credentials refused), b is paused (markUnusable).
func (m *Manager) trackBackend(ctx context.Context, b *Backend) error {
	rows, err := m.cfg.Store.Select(ctx, driver.Filter{Statuses: trackedStatuses, Backend: b.Name})
	if err != nil {
		return fmt.Errorf("select active rows of %s: %w", b.Name, err)
	}
	if len(rows) == 0 {
		return nil
	}
	log := m.log.With("backend", b.Name)
	c := m.conn(b)
	rctx, cancel := m.requestContext(ctx)
	defer cancel()
	// One listing gives every job's status, but it lists the account's whole
	// history: when that takes more pages than there are active jobs, asking
	// each job is cheaper (and brings usage and costs along).
	byID := map[string]*remote.Job{}
	m.mu.Lock()
	pages := m.listPages[b.Name]
	m.mu.Unlock()
	var listErr error
	answered := false
	if pages <= len(rows) || pages == 0 {
		listed, err := c.ListJobs(rctx, m.cfg.ListPageSize)
		m.stats.add("job list", 1)
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			listErr = err
			log.DebugContext(ctx, "list jobs failed; asking each job instead", "url", c.URL(), "err", err)
		} else {
			answered = true
			m.mu.Lock()
			m.listPages[b.Name] = len(listed)/m.cfg.ListPageSize + 1
			m.mu.Unlock()
			for i := range listed {
				byID[listed[i].ID] = &listed[i]
			}
		}
	}
	var lastErr error
	for _, row := range rows {
		if ctx.Err() != nil {
			return nil
		}
		m.mu.Lock()
		_, busy := m.launching[row.Key]
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
			// Not listed (no listing this cycle, a failed listing, or a
			// back-end that lists only recent jobs): ask.
			if lastErr != nil && unreachable(lastErr) && !answered {
				// The back-end is gone: do not ask for each job.
				m.statusUnknown(ctx, log, row, listErr, lastErr)
				continue
			}
			rj, err = c.GetJob(rctx, row.ID)
			m.stats.add("job describe", 1)
			if errors.Is(err, remote.ErrJobNotFound) {
				m.vanished(ctx, b, row, err)
				continue
			}
			if err != nil {
				if ctx.Err() != nil {
					return nil
				}
				lastErr = err
				m.statusUnknown(ctx, log, row, listErr, err)
				continue
			}
			answered = true
		}
		if err := m.apply(ctx, rctx, b, row, rj); err != nil {
			return err
		}
	}
	cause := cmp.Or(lastErr, listErr)
	if !answered && cause != nil && unreachable(cause) {
		m.markUnusable(ctx, b, cause, m.cfg.MinBackoff)
	} else if lastErr != nil {
		// Some rows went without a status (a listing failure alone is
		// made up for by the per-job requests, logged at debug level).
		level := slog.LevelDebug
		if m.health[b.Name].warnDue(time.Now()) {
			level = slog.LevelWarn
		}
		log.Log(ctx, level, "some statuses not updated this cycle; asking again next cycle", "url", c.URL(), "err", lastErr)
	}
	return nil
}

// statusUnknown records in a row's last_error why its status could not be
// had this cycle, once: the next answer clears it.
func (m *Manager) statusUnknown(ctx context.Context, log *slog.Logger, row driver.Job, listErr, getErr error) {
	if strings.HasPrefix(row.LastError, trackErrPrefix) {
		return
	}
	msg := trackErrPrefix + "GET /jobs/" + row.ID + ": " + getErr.Error()
	if listErr != nil {
		msg = trackErrPrefix + "job listing: " + listErr.Error() + "; GET /jobs/" + row.ID + ": " + getErr.Error()
	}
	m.update(context.WithoutCancel(ctx), log, row.Key, row.Status, driver.Values{driver.ColLastError: msg})
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

// apply records the back-end's view of one job in its row. rctx is for
// requests to the back-end, ctx for the table.
//
// Whatever happened before (a start whose answer was lost, a job adopted
// after a stop), the row ends as it would have had nothing gone wrong: a
// job seen past created has its start_time, at least one attempt, and no
// error of a start that in fact took effect.
func (m *Manager) apply(ctx, rctx context.Context, b *Backend, row driver.Job, rj *remote.Job) error {
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
		if row.Attempts >= m.cfg.MaxStartAttempts {
			// Started as often as allowed (or accepted, 202, and left
			// created): give up on it, and delete the job so that it
			// cannot run without a row to follow it.
			reason := row.LastError
			if reason == "" || strings.HasPrefix(reason, trackErrPrefix) {
				reason = fmt.Sprintf("job %s still created after %d start requests the back-end accepted (max-start-attempts %d)",
					row.ID, row.Attempts, m.cfg.MaxStartAttempts)
			}
			m.goTracked(m.launching, row.Key, b.Name, func() { m.giveUpStart(ctx, b, row, reason) })
			return nil
		}
		if !m.gates[b.Name].open(time.Now()) || !m.conn(b).Available() {
			return nil // the back-end asked us to wait
		}
		row.Attempts++
		m.goTracked(m.launching, row.Key, b.Name, func() {
			if m.stillIs(ctx, row, false) {
				m.start(ctx, b, row)
			}
		})
		return nil
	case status == row.Status:
		if strings.HasPrefix(row.LastError, trackErrPrefix) {
			m.update(ctx, log, row.Key, row.Status, driver.Values{driver.ColLastError: nil})
		}
		m.maybeCancel(ctx, rctx, b, row)
		return nil
	}

	// The manager that records a change handles what follows from it.
	set := driver.Values{driver.ColStatus: status, driver.ColUpdatedAt: m.now(), driver.ColWorker: m.cfg.Owner.ID()}
	if status != driver.Created {
		if row.StartTime == "" {
			set[driver.ColStartTime] = m.now() // started, though its answer was lost
		}
		if row.Attempts == 0 {
			set[driver.ColAttempts] = 1
		}
		if row.Status == driver.Created {
			set[driver.ColLastError] = nil // the start that failed took effect
		}
	}
	if strings.HasPrefix(row.LastError, trackErrPrefix) {
		set[driver.ColLastError] = nil
	}
	m.mu.Lock()
	canceledByUs := m.cancels[row.Key] > 0
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
			full, err = m.conn(b).GetJob(rctx, row.ID)
			m.stats.add("job describe", 1)
		}
		if err != nil {
			// Its usage and costs would be lost: record the status next
			// cycle, with them, unless the description keeps failing.
			m.mu.Lock()
			m.undescribed[row.Key]++
			n := m.undescribed[row.Key]
			m.mu.Unlock()
			if n < describeTries {
				log.DebugContext(ctx, "describe final job failed; recording its status next cycle", "status", status, "err", err)
				return nil
			}
			log.WarnContext(ctx, "describe final job failed; recording its status without usage and costs", "err", err)
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
	err = m.storeUpdate(ctx, driver.Update{Key: row.Key, From: []driver.Status{row.Status}, Set: set})
	if errors.Is(err, driver.ErrConflict) {
		return nil // another worker recorded this change first: it handles it
	}
	if err != nil {
		return fmt.Errorf("record status of row %d: %w", row.Key, err)
	}
	m.changes.Add(1)
	log.InfoContext(ctx, "job status changed", "from", row.Status, "to", status)
	m.ended(set[driver.ColCosts])
	if startedRunning {
		m.stats.add("job started running", 1)
	}
	switch status {
	case driver.Finished:
		m.stats.add("job finished", 1)
	case driver.Error:
		m.stats.add("job failed", 1)
		m.event(b.Name, row.Key, "job "+row.ID+" failed")
	case driver.Canceled:
		m.stats.add("job canceled", 1)
	}
	m.mu.Lock()
	delete(m.undescribed, row.Key)
	if status.Final() && rj.Raw != nil {
		m.described[row.Key] = rj
	}
	m.mu.Unlock()
	return nil
}

// maybeCancel cancels a running job that ran longer than allowed. The
// cancel is sent again each cycle while the job runs, as the Python client
// does, at most MaxCancelRequests times: a back-end that ignored them all
// gets no more, and the row ends canceled with the reason in last_error,
// so that the run can end.
func (m *Manager) maybeCancel(ctx, rctx context.Context, b *Backend, row driver.Job) {
	if m.cfg.CancelRunningJobAfter <= 0 || row.Status != driver.Running || row.RunningStartTime == "" {
		return
	}
	started, err := time.Parse(time.RFC3339, row.RunningStartTime)
	if err != nil || time.Now().Sub(started) < m.cfg.CancelRunningJobAfter {
		return
	}
	log := m.log.With("row", row.Key, "backend", b.Name, "job_id", row.ID)
	m.mu.Lock()
	sent := m.cancels[row.Key]
	m.mu.Unlock()
	if sent >= m.cfg.MaxCancelRequests {
		reason := fmt.Sprintf("canceled by the manager: running longer than %s (cancel_running_job_after), "+
			"but the back-end ignored %d cancel requests: job %s may still run there", m.cfg.CancelRunningJobAfter, sent, row.ID)
		if m.update(ctx, log, row.Key, driver.Running, driver.Values{
			driver.ColStatus: driver.Canceled, driver.ColLastError: reason, driver.ColUpdatedAt: m.now(),
			driver.ColWorker: m.cfg.Owner.ID(), driver.ColDownloadPending: m.handler(driver.Canceled) != nil,
		}) {
			log.WarnContext(ctx, "back-end ignores the cancel; row ends canceled", "cancel_requests", sent)
			m.stats.add("job canceled", 1)
		}
		return
	}
	m.mu.Lock()
	m.cancels[row.Key]++
	m.mu.Unlock()
	if sent == 0 {
		log.InfoContext(ctx, "canceling job that runs too long", "running_since", row.RunningStartTime, "limit", m.cfg.CancelRunningJobAfter)
	} else {
		log.DebugContext(ctx, "job still running: sending the cancel again", "cancel_requests", sent)
	}
	if err := m.conn(b).CancelJob(rctx, row.ID); err != nil {
		log.WarnContext(ctx, "cancel job", "err", err)
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
	room := m.cfg.Concurrency*len(m.backends) - m.inFlight(m.handling)
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
		if !m.health[b.Name].isUsable() || m.inFlightOn(m.handling, b.Name) >= m.cfg.Concurrency {
			continue // its back-end cannot be reached now, or is busy enough
		}
		m.goTracked(m.handling, row.Key, b.Name, func() { m.handle(ctx, b, row, h) })
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
	err := h(ctx, Event{Row: row, Conn: m.conn(b), Dir: dir, Job: described,
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
		Err: OneLine(cause), Pending: pending}
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
