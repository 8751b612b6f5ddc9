package worker

import (
	"context"
	"errors"
)

// ErrStarted is returned by Start when the manager already runs.
var ErrStarted = errors.New("manager already started")

// background is the state of a manager started with Start.
type background struct {
	cancel context.CancelFunc
	done   chan struct{}
	err    error
}

// Start runs the manager in the background until the table is done, ctx
// ends or Stop is called. Use Wait or Stop to learn how it ended.
func (m *Manager) Start(ctx context.Context) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.bg != nil {
		return ErrStarted
	}
	ctx, cancel := context.WithCancel(ctx)
	bg := &background{cancel: cancel, done: make(chan struct{})}
	m.bg = bg
	go func() {
		defer close(bg.done)
		bg.err = m.Run(ctx)
	}()
	return nil
}

// Wait blocks until a manager started with Start ends, and returns what
// Run returned: nil when the table is done.
func (m *Manager) Wait() error {
	m.mu.Lock()
	bg := m.bg
	m.mu.Unlock()
	if bg == nil {
		return errors.New("manager not started")
	}
	<-bg.done
	return bg.err
}

// Stop stops a manager started with Start, waits until its calls in flight
// ended and the table is written, and returns nil for a clean stop (or the
// error that ended the run before).
func (m *Manager) Stop() error {
	m.mu.Lock()
	bg := m.bg
	m.mu.Unlock()
	if bg == nil {
		return errors.New("manager not started")
	}
	bg.cancel()
	<-bg.done
	if errors.Is(bg.err, context.Canceled) {
		return nil
	}
	return bg.err
}
