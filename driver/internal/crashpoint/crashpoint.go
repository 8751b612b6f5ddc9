// Package crashpoint marks the instants at which a driver has files in a
// state that a crash must not break: a work file built but not yet renamed,
// a snapshot written but not yet published. Tests kill a process at each of
// them in turn (drivertest's CrashDuringOpen) and check that the next open
// finds a whole table.
package crashpoint

// Hook, when set, is called at every crash point with its name. Only a
// test sets it, in a process made to be killed, before it opens a store;
// in every other process it stays nil and Hit does nothing.
var Hook func(name string)

// Hit marks a crash point.
func Hit(name string) {
	if h := Hook; h != nil {
		h(name)
	}
}
