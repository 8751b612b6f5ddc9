package worker

// Owner identifies this manager among the processes that share a job
// table, and tells whether another one still runs. A row records the owner
// responsible for its next step (creating its job, handling its results);
// a manager takes over the rows of owners that are gone.
type Owner interface {
	// ID is this manager's identity, recorded in the worker_id column.
	ID() string
	// Alive reports whether the manager with id still runs.
	Alive(id string) bool
}

// solo is the Owner of a manager that has its table to itself: every other
// owner is gone, such as a previous run that was stopped or killed.
type solo struct{}

func (solo) ID() string        { return "" }
func (solo) Alive(string) bool { return false }
