package remote

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"time"

	"github.com/failsafe-go/failsafe-go"
	"github.com/failsafe-go/failsafe-go/circuitbreaker"
	"github.com/failsafe-go/failsafe-go/ratelimiter"
	"github.com/failsafe-go/failsafe-go/retrypolicy"
)

// ErrUnavailable means the client stopped sending requests to a back-end
// that failed too often in a row (its circuit breaker is open). It tries
// again after Policy.BreakerDelay.
var ErrUnavailable = errors.New("back-end unavailable: too many failures in a row, pausing requests")

// Policy says how a Client copes with failures and limits. One policy
// instance belongs to one back-end: its breaker and rate limits are shared
// by every request to that back-end.
type Policy struct {
	// MaxRetries bounds the retries of one request (default 6; negative: none).
	MaxRetries int
	// MinBackoff and MaxBackoff bound the exponential backoff between
	// retries (default 1s and 1m); 25% jitter is added.
	MinBackoff, MaxBackoff time.Duration
	// MaxRetryAfter caps the wait a back-end asks for with Retry-After
	// (default 5m).
	MaxRetryAfter time.Duration
	// Timeout bounds one attempt of a request, its body included
	// (default 2m); DownloadTimeout one attempt of a download (default 30m).
	Timeout, DownloadTimeout time.Duration
	// RequestsPerSecond limits all requests to the back-end. 0 leaves the
	// rate to be learned: paced from 100 a second and faster while the
	// back-end takes them, kept under the rate it allowed once it answers
	// 429 (see rateLearner in ratelearn.go).
	RequestsPerSecond float64
	// StartsPerMinute limits job starts (0: no limit; CDSE allows 12).
	StartsPerMinute int
	// BreakerThreshold is the number of failures in a row (5xx, broken
	// connections) after which requests pause for BreakerDelay (default 8
	// and 30s; a negative threshold disables the breaker).
	BreakerThreshold int
	BreakerDelay     time.Duration
	// Logger receives a debug line for each retry and each change of a
	// learned rate (nil: slog.Default()).
	Logger *slog.Logger
}

// DefaultPolicy returns the policy used when Options.Policy is nil.
func DefaultPolicy() *Policy {
	p := &Policy{}
	p.fill()
	return p
}

func (p *Policy) fill() {
	def := func(d *time.Duration, v time.Duration) {
		if *d == 0 {
			*d = v
		}
	}
	if p.MaxRetries == 0 {
		p.MaxRetries = 6
	}
	def(&p.MinBackoff, time.Second)
	def(&p.MaxBackoff, time.Minute)
	def(&p.MaxRetryAfter, 5*time.Minute)
	def(&p.Timeout, 2*time.Minute)
	def(&p.DownloadTimeout, 30*time.Minute)
	if p.BreakerThreshold == 0 {
		p.BreakerThreshold = 8
	}
	def(&p.BreakerDelay, 30*time.Second)
	if p.MaxBackoff < p.MinBackoff {
		p.MaxBackoff = p.MinBackoff
	}
}

// policies holds the live failsafe policies of one back-end.
type policies struct {
	p        Policy
	breaker  circuitbreaker.CircuitBreaker[any]
	requests ratelimiter.RateLimiter[any]
	starts   ratelimiter.RateLimiter[any]
	learned  *rateLearner // without RequestsPerSecond
}

func newPolicies(p *Policy) *policies {
	if p == nil {
		p = &Policy{}
	}
	cp := *p
	cp.fill()
	ps := &policies{p: cp}
	if cp.BreakerThreshold > 0 {
		ps.breaker = circuitbreaker.NewBuilder[any]().
			HandleIf(func(_ any, err error) bool { return backendFailure(err) }).
			WithFailureThreshold(uint(cp.BreakerThreshold)).
			WithDelay(cp.BreakerDelay).
			Build()
	}
	if cp.RequestsPerSecond > 0 {
		ps.requests = ratelimiter.NewSmoothWithMaxRate[any](time.Duration(float64(time.Second) / cp.RequestsPerSecond))
	} else {
		log := cp.Logger
		if log == nil {
			log = slog.Default()
		}
		ps.learned = newRateLearner(log)
	}
	if cp.StartsPerMinute > 0 {
		ps.starts = ratelimiter.NewSmooth[any](uint(cp.StartsPerMinute), time.Minute)
	}
	return ps
}

// backendFailure reports whether err says the back-end is in trouble (as
// opposed to a refusal of this request): it counts for the breaker.
func backendFailure(err error) bool {
	var apiErr *APIError
	if errors.As(err, &apiErr) {
		return apiErr.StatusCode >= 500
	}
	return err != nil && !errors.Is(err, context.Canceled) && !errors.Is(err, context.DeadlineExceeded) && isTransport(err)
}

// transportError marks an error of the connection, not an answer.
type transportError struct{ err error }

func (e *transportError) Error() string { return e.err.Error() }
func (e *transportError) Unwrap() error { return e.err }

func isTransport(err error) bool {
	var te *transportError
	return errors.As(err, &te)
}

// notSent reports whether a transport error happened before the request
// left: the connection could not be made.
func notSent(err error) bool {
	var op *net.OpError
	return errors.As(err, &op) && op.Op == "dial"
}

// retryable reports whether a failed request may be sent again. Requests
// that change state (POST) are repeated only when the failure proves they
// did not take effect: a 429, or no connection at all. A 503 does not prove
// it: a proxy may answer 503 after the back-end made the job.
func retryable(err error, idempotent bool) bool {
	if err == nil || errors.Is(err, ErrUnavailable) {
		return false
	}
	var renewed *tokenRenewed
	if errors.As(err, &renewed) {
		return true
	}
	var apiErr *APIError
	if errors.As(err, &apiErr) {
		switch {
		case apiErr.StatusCode == http.StatusTooManyRequests:
			return true
		case apiErr.StatusCode >= 500, apiErr.StatusCode == http.StatusRequestTimeout:
			return idempotent
		}
		return false
	}
	if !isTransport(err) {
		return false
	}
	return idempotent || notSent(err)
}

// run executes attempt under the retry policy and the breaker. attempt
// calls permit right before it sends, to wait for the rate limits: not
// earlier, or requests that wait for something else in between (a token
// being renewed) would leave together, above the rate.
func (ps *policies) run(ctx context.Context, idempotent, start bool, method, url string, attempt func(ctx context.Context, permit func() error) error) error {
	pols := []failsafe.Policy[any]{ps.retry(idempotent, method, url)}
	if n, ok := ctx.Value(maxRetriesKey{}).(int); ok && n < ps.p.MaxRetries {
		pols[0] = ps.retryAtMost(idempotent, method, url, n)
	}
	if ctx.Value(noRetriesKey{}) != nil {
		// Sent once; a token the back-end refused and that could be
		// renewed is still sent again at once: that is not a retry.
		pols[0] = retrypolicy.NewBuilder[any]().
			HandleIf(func(_ any, err error) bool { var tr *tokenRenewed; return errors.As(err, &tr) }).
			WithMaxRetries(1).ReturnLastFailure().Build()
	}
	if ps.breaker != nil {
		pols = append(pols, ps.breaker)
	}
	permit := func() error {
		if start && ps.starts != nil {
			if err := ps.starts.AcquirePermit(ctx); err != nil {
				return err
			}
		}
		if ps.requests != nil {
			return ps.requests.AcquirePermit(ctx)
		}
		if ps.learned != nil {
			return ps.learned.acquire(ctx)
		}
		return nil
	}
	err := failsafe.With(pols...).WithContext(ctx).Run(func() error {
		err := attempt(ctx, permit)
		var apiErr *APIError
		switch {
		case ps.learned == nil:
		case errors.As(err, &apiErr) && apiErr.StatusCode == http.StatusTooManyRequests:
			ps.learned.tooMany(apiErr.RetryAfter)
		case err == nil || apiErr != nil:
			ps.learned.answered()
		}
		return err
	})
	if errors.Is(err, circuitbreaker.ErrOpen) {
		return fmt.Errorf("%w (%w)", ErrUnavailable, err)
	}
	return err
}

// runOutside executes attempt, a request to another server than the
// back-end (its identity provider), under the retry policy alone: the
// back-end's breaker and rate limits are about the back-end.
func (ps *policies) runOutside(ctx context.Context, idempotent bool, attempt func() error) error {
	return failsafe.With[any](ps.retry(idempotent, "", "")).WithContext(ctx).Run(attempt)
}

// maxRetriesKey holds the retries allowed to a context's requests when
// fewer than the Policy's (withMaxRetries).
type maxRetriesKey struct{}

// withMaxRetries returns a context whose requests are retried at most n
// times (or the Policy's MaxRetries, if fewer).
func withMaxRetries(ctx context.Context, n int) context.Context {
	return context.WithValue(ctx, maxRetriesKey{}, n)
}

// noRetriesKey marks a context whose requests are sent once (WithoutRetries).
type noRetriesKey struct{}

// WithoutRetries returns a context whose requests to the back-end are sent
// once, without the Policy's retries (the breaker and rate limits still
// apply): for callers that have a next chance of their own, such as a
// tracking cycle that asks again at its next poll, and would rather go on
// than wait through a backoff.
func WithoutRetries(ctx context.Context) context.Context {
	return context.WithValue(ctx, noRetriesKey{}, true)
}

// retry is the retry policy of one request (method and url name it in the
// debug log of each retry; empty for requests to other servers).
func (ps *policies) retry(idempotent bool, method, url string) failsafe.Policy[any] {
	return ps.retryAtMost(idempotent, method, url, ps.p.MaxRetries)
}

// retryAtMost is retry with at most n retries.
func (ps *policies) retryAtMost(idempotent bool, method, url string, n int) failsafe.Policy[any] {
	log := ps.p.Logger
	return retrypolicy.NewBuilder[any]().
		HandleIf(func(_ any, err error) bool { return retryable(err, idempotent) }).
		WithMaxRetries(max(n, 0)).
		WithBackoff(ps.p.MinBackoff, ps.p.MaxBackoff).
		WithJitterFactor(0.25).
		WithDelayFunc(func(exec failsafe.ExecutionAttempt[any]) time.Duration {
			var renewed *tokenRenewed
			if errors.As(exec.LastError(), &renewed) {
				return 0
			}
			var apiErr *APIError
			if errors.As(exec.LastError(), &apiErr) && apiErr.RetryAfter > 0 {
				return min(apiErr.RetryAfter, ps.p.MaxRetryAfter)
			}
			return -1 // the backoff
		}).
		OnRetryScheduled(func(e failsafe.ExecutionScheduledEvent[any]) {
			l := log
			if l == nil {
				l = slog.Default()
			}
			l.Debug("retrying request", "method", method, "url", redactURL(url), "retry", e.Attempts(),
				"delay", e.Delay, "err", e.LastError())
		}).
		ReturnLastFailure().
		Build()
}

// available reports whether requests may go to the back-end now.
func (ps *policies) available() bool {
	return ps.breaker == nil || !ps.breaker.IsOpen()
}

// unavailableFor is how long the open breaker still holds requests back;
// 0 when it does not.
func (ps *policies) unavailableFor() time.Duration {
	if ps.available() {
		return 0
	}
	return ps.breaker.RemainingDelay()
}
