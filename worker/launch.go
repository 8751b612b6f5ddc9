package worker

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"time"

	"github.com/openeo-batch/worker/driver"
	"github.com/openeo-batch/worker/remote"
)

// slots returns, per back-end, how many rows it may take now: parallel
// jobs minus active jobs, at most the queueing limit minus queued jobs.
func (m *Manager) slots(counts []driver.Count) (map[string]int, int) {
	active, queued := map[string]int{}, map[string]int{}
	notStarted := 0
	for _, c := range counts {
		switch {
		case c.Status == driver.NotStarted:
			notStarted += c.N
		case c.Status.Active():
			active[c.Backend] += c.N
			if slices.Contains(queuedStatuses, c.Status) {
				queued[c.Backend] += c.N
			}
		}
	}
	free := map[string]int{}
	now := time.Now()
	for _, b := range m.backends {
		if !m.health[b.Name].isUsable() || !m.conn(b).Available() || !m.gates[b.Name].open(now) {
			continue // unreachable, failing, refusing or out of credit: the others take the rows meanwhile
		}
		free[b.Name] = max(0, min(b.ParallelJobs-active[b.Name], b.QueueingLimit-queued[b.Name]))
	}
	return free, notStarted
}

// launch claims not_started rows for back-ends with free slots, one
// back-end after the other so that rows spread over all of them, and
// creates their jobs in the background, at most Concurrency at once per
// back-end: a back-end slow to answer holds up none of the others.
func (m *Manager) launch(ctx context.Context, counts []driver.Count) error {
	free, notStarted := m.slots(counts)
	for notStarted > 0 && ctx.Err() == nil {
		claimed := false
		for _, b := range m.backends {
			if free[b.Name] == 0 || notStarted == 0 || m.inFlightOn(m.launching, b.Name) >= m.cfg.Concurrency {
				continue
			}
			if !m.mayLaunch(ctx) {
				return nil // MaxJobs or MaxCosts: see limits.go
			}
			m.claimMu.Lock()
			j, err := m.claim(ctx, b)
			if err == nil {
				m.goTracked(m.launching, j.Key, b.Name, func() { m.create(ctx, b, j) })
			}
			m.claimMu.Unlock()
			if errors.Is(err, driver.ErrNotFound) {
				free[b.Name] = 0 // the rows left are given to other back-ends
				continue
			}
			if errors.Is(err, driver.ErrCapped) {
				free[b.Name] = 0 // other processes took its slots
				continue
			}
			if err != nil {
				return fmt.Errorf("claim a row for %s: %w", b.Name, err)
			}
			free[b.Name]--
			notStarted--
			claimed = true
		}
		if !claimed {
			return nil
		}
	}
	return nil
}

// queuedStatuses are the statuses QueueingLimit bounds, as in slots.
var queuedStatuses = []driver.Status{driver.QueuedForStart, driver.Queued}

// claim takes a not_started row for b. The counts launch went by are this
// process's reading: where other processes may share the table, the store
// checks b's limits again as it claims.
func (m *Manager) claim(ctx context.Context, b *Backend) (driver.Job, error) {
	// The tag is written with the claim, before the job exists, so a job
	// whose creation a crash interrupted can be found by it.
	set := driver.Values{
		driver.ColStatus:    driver.QueuedForStart,
		driver.ColBackend:   b.Name,
		driver.ColTag:       newTag(),
		driver.ColUpdatedAt: m.now(),
		driver.ColWorker:    m.cfg.Owner.ID(),
	}
	cc, ok := m.cfg.Store.(driver.CapClaimer)
	if !ok {
		return m.cfg.Store.Claim(ctx, set)
	}
	return cc.ClaimWithin(ctx, set,
		driver.Cap{Backend: b.Name, Statuses: driver.ActiveStatuses(), Max: b.ParallelJobs},
		driver.Cap{Backend: b.Name, Statuses: queuedStatuses, Max: b.QueueingLimit})
}

// create makes the back-end job of a claimed row, then starts it.
func (m *Manager) create(ctx context.Context, b *Backend, j driver.Job) {
	log := m.log.With("row", j.Key, "backend", b.Name)
	// Writes after a stop still go to the table: a job that exists on the
	// back-end must be recorded.
	wctx := context.WithoutCancel(ctx)
	attempts := j.Attempts + 1
	m.stats.add("start_job call", 1)
	// Sent once: a failure goes back to the table at once (the row to
	// another back-end, or to the next cycle) instead of holding the row
	// through a backoff while the back-end may be gone.
	id, err := m.cfg.StartJob(remote.WithoutRetries(ctx), j, m.conn(b).WithJobTag(j.Tag))
	if err != nil && ctx.Err() != nil {
		return // stopped: recovery finds the job by its tag, or frees the row
	}
	if remote.OutcomeUnknown(err) {
		// The create request may have reached the back-end even though we
		// got no answer: look for the job by its tag before trying again.
		// Asked once: when it fails, recovery asks again next cycle.
		rctx, cancel := m.requestContext(ctx)
		tags, lerr := m.listTags(rctx, b)
		cancel()
		switch {
		case lerr == nil && tags[j.Tag] != "":
			id, err = tags[j.Tag], nil
			log.InfoContext(ctx, "job created despite an error", "job_id", id)
		case lerr != nil && ctx.Err() == nil:
			// Whether the job exists is unknown: the row stays
			// queued_for_start with its tag, and recovery (recoverRows)
			// adopts the job or frees the row once the listing answers.
			// Freeing it now could leave a job without a row, and then
			// make a second one.
			m.stats.add("start_job error", 1)
			m.react(ctx, b, err)
			log.WarnContext(ctx, "job creation unknown: looking for it by its tag next cycle", "err", err, "list_err", lerr)
			m.update(wctx, log, j.Key, driver.QueuedForStart, driver.Values{
				driver.ColLastError: fmt.Sprintf("create job: %v (did the job come to be? looking for it next cycle)", err),
				driver.ColUpdatedAt: m.now(),
			})
			return
		}
	}
	if err != nil {
		m.stats.add("start_job error", 1)
		if rowFault(err) {
			// The row cannot be made into a job: no back-end is to blame,
			// and another attempt would fail the same way.
			m.startFailed(wctx, log, j, max(attempts, m.cfg.MaxStartAttempts), fmt.Errorf("create job: %w", err))
			return
		}
		if m.react(ctx, b, err) != failed {
			attempts-- // back-pressure or a busy back-end is not the row's fault
		}
		m.startFailed(wctx, log, j, attempts, fmt.Errorf("create job: %w", err))
		return
	}
	m.gates[b.Name].ok()
	if id == "" {
		m.stats.add("start_job skipped", 1)
		m.update(wctx, log, j.Key, driver.QueuedForStart, driver.Values{
			driver.ColStatus: driver.Skipped, driver.ColBackend: j.Unclaimed(), driver.ColUpdatedAt: m.now(),
		})
		return
	}
	if !m.update(wctx, log, j.Key, driver.QueuedForStart, driver.Values{
		driver.ColID: id, driver.ColAttempts: attempts, driver.ColUpdatedAt: m.now(),
	}) {
		return
	}
	j.ID, j.Attempts = id, attempts
	m.start(ctx, b, j)
}

// start starts a created job. j.Status is the row's status now:
// queued_for_start after creation, created when the tracker retries.
func (m *Manager) start(ctx context.Context, b *Backend, j driver.Job) {
	log := m.log.With("row", j.Key, "backend", b.Name, "job_id", j.ID)
	wctx := context.WithoutCancel(ctx)
	release, ok := m.admit(ctx, b, j)
	if !ok {
		return // a limit of the run: the row is not_started again
	}
	c := m.conn(b)
	err := c.StartJob(remote.WithoutRetries(ctx), j.ID) // a failure is retried by the tracker
	if err != nil {
		release()
	}
	if err != nil && ctx.Err() != nil {
		return // stopped: the next run starts it if it is still created
	}
	if err != nil {
		m.stats.add("job start error", 1)
		attempts := j.Attempts
		switch m.react(ctx, b, err) {
		case slowDown, transient:
			attempts-- // not the row's fault: it waits for the back-end
		case unusable:
			// The job cannot start there: give the row to another back-end,
			// unless the user gave it to this one (it then waits for it).
			if derr := c.DeleteJob(wctx, j.ID); derr != nil {
				log.WarnContext(ctx, "delete job that cannot start", "err", derr)
			}
			m.update(wctx, log, j.Key, j.Status, driver.Values{
				driver.ColStatus: driver.NotStarted, driver.ColBackend: j.Unclaimed(), driver.ColID: nil,
				driver.ColLastError: fmt.Sprintf("back-end %s: %v", b.Name, err), driver.ColUpdatedAt: m.now(),
			})
			return
		}
		m.startFailed(wctx, log, j, attempts, fmt.Errorf("start job %s: %w", j.ID, err))
		return
	}
	m.gates[b.Name].ok()
	m.stats.add("job start", 1)
	log.InfoContext(ctx, "job started")
	m.update(wctx, log, j.Key, j.Status, driver.Values{
		driver.ColStatus: driver.Queued, driver.ColStartTime: m.now(), driver.ColUpdatedAt: m.now(),
		driver.ColAttempts: j.Attempts, driver.ColLastError: nil,
	})
}

// startFailed records a failed create or start. Below the attempt limit a
// row without a job goes back to not_started and a row with a job to
// created, for another try; at the limit it is start_failed.
func (m *Manager) startFailed(ctx context.Context, log *slog.Logger, j driver.Job, attempts int, cause error) {
	set := driver.Values{driver.ColAttempts: attempts, driver.ColLastError: cause.Error(), driver.ColUpdatedAt: m.now()}
	switch {
	case attempts >= m.cfg.MaxStartAttempts:
		set[driver.ColStatus] = driver.StartFailed
	case j.ID == "":
		// Free for any back-end, or for the one the user gave it to.
		set[driver.ColStatus], set[driver.ColBackend] = driver.NotStarted, j.Unclaimed()
	default:
		set[driver.ColStatus] = driver.Created
	}
	log.WarnContext(ctx, "job start failed", "attempt", attempts, "next_status", set[driver.ColStatus], "err", cause)
	if err := m.storeUpdate(ctx, driver.Update{Key: j.Key, From: []driver.Status{j.Status}, Set: set}); err != nil {
		log.WarnContext(ctx, "record failed start", "err", err)
	}
}

// giveUpStart ends a row whose job stays created although it was started
// as often as allowed: start_failed with reason in last_error, and the
// back-end job deleted, so that no job runs without a row to follow it.
// The row keeps the job's id: the job belongs to it, deleted or not.
func (m *Manager) giveUpStart(ctx context.Context, b *Backend, row driver.Job, reason string) {
	log := m.log.With("row", row.Key, "backend", b.Name, "job_id", row.ID)
	wctx := context.WithoutCancel(ctx)
	if !m.stillIs(ctx, row, false) {
		return
	}
	if err := m.conn(b).DeleteJob(wctx, row.ID); err != nil && !errors.Is(err, remote.ErrJobNotFound) {
		log.WarnContext(ctx, "delete job that does not start", "err", err)
		reason += fmt.Sprintf("; deleting the job failed: %v", err)
	}
	log.WarnContext(ctx, "job does not start; giving up", "attempts", row.Attempts, "reason", reason)
	m.stats.add("job start error", 1)
	m.update(wctx, log, row.Key, driver.Created, driver.Values{
		driver.ColStatus: driver.StartFailed, driver.ColLastError: reason, driver.ColUpdatedAt: m.now(),
	})
}

// rowFault reports whether a StartJob error says the row itself cannot be
// made into a job (it has a method RowError returning true, as
// *udpjob.RowError does).
func rowFault(err error) bool {
	var re interface{ RowError() bool }
	return errors.As(err, &re) && re.RowError()
}
