package driver

import "fmt"

// Status is the state of one row of the job table. The strings are those of
// the openEO Python client's MultiBackendJobManager, so that a table written by
// one tool can be resumed by the other.
type Status string

// Manager-side statuses: the row has no back-end job yet, or never will.
const (
	// NotStarted rows wait for a free slot on a back-end.
	NotStarted Status = "not_started"
	// QueuedForStart rows are claimed by a manager: the back-end job is being
	// created or started.
	QueuedForStart Status = "queued_for_start"
	// StartFailed rows could not be created or started on the back-end.
	StartFailed Status = "start_failed"
	// Skipped rows were declined by the StartJob function.
	Skipped Status = "skipped"
)

// openEO statuses, as reported by the back-end.
const (
	Created  Status = "created"
	Queued   Status = "queued"
	Running  Status = "running"
	Finished Status = "finished"
	Error    Status = "error"
	Canceled Status = "canceled"
)

var allStatuses = []Status{
	NotStarted, QueuedForStart, StartFailed, Skipped,
	Created, Queued, Running, Finished, Error, Canceled,
}

// Statuses returns every valid status, manager-side first.
func Statuses() []Status {
	return append([]Status(nil), allStatuses...)
}

// ActiveStatuses returns the statuses of rows that hold a slot on a back-end:
// created, queued_for_start, queued and running.
func ActiveStatuses() []Status {
	return []Status{QueuedForStart, Created, Queued, Running}
}

// Valid reports whether s is one of the known statuses.
func (s Status) Valid() bool {
	for _, v := range allStatuses {
		if s == v {
			return true
		}
	}
	return false
}

// Active reports whether a row in status s holds a slot on its back-end.
func (s Status) Active() bool {
	switch s {
	case QueuedForStart, Created, Queued, Running:
		return true
	}
	return false
}

// Final reports whether a row in status s needs nothing more from a manager.
func (s Status) Final() bool {
	switch s {
	case StartFailed, Skipped, Finished, Error, Canceled:
		return true
	}
	return false
}

// ParseStatus returns the Status for s, or an error naming the bad value.
// The empty string means not_started, as in tables the Python client
// created before a run.
func ParseStatus(s string) (Status, error) {
	if s == "" {
		return NotStarted, nil
	}
	st := Status(s)
	if !st.Valid() {
		return "", fmt.Errorf("unknown status %q (want one of %v)", s, allStatuses)
	}
	return st, nil
}
