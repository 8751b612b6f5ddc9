package remote

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"
)

// Sentinel errors that an *APIError matches with errors.Is.
var (
	// ErrJobNotFound: the back-end does not know the job (404 JobNotFound).
	ErrJobNotFound = errors.New("job not found on back-end")
	// ErrAuth: missing, wrong or expired credentials (401, 403).
	ErrAuth = errors.New("authentication failed")
	// ErrPaymentRequired: the account has no credit left (402).
	ErrPaymentRequired = errors.New("payment required")
	// ErrTransient: worth repeating later (5xx, 408, 429, and
	// ConcurrentJobLimit-style refusals are not included).
	ErrTransient = errors.New("transient back-end error")
	// ErrJobNotFinished: results asked for before the job finished.
	ErrJobNotFinished = errors.New("job not finished")
	// ErrLinkExpired: a signed result link expired (410 ResultLinkExpired):
	// ask for the results again for fresh links.
	ErrLinkExpired = errors.New("result link expired")
)

// OutcomeUnknown reports whether err leaves it open if the request took
// effect: the connection broke or timed out, or the back-end answered 5xx.
// A 4xx answer, or an error before any request was sent, means it did not.
func OutcomeUnknown(err error) bool {
	if err == nil {
		return false
	}
	var apiErr *APIError
	if errors.As(err, &apiErr) {
		return apiErr.StatusCode >= 500
	}
	if errors.Is(err, ErrUnavailable) {
		return false // not sent
	}
	var urlErr *url.Error
	return errors.As(err, &urlErr) && !notSent(err)
}

// ConnectionFailed reports whether err is a failure of the connection
// (refused, reset, timed out, a broken answer) rather than an answer of
// the back-end: it says the back-end cannot be reached, nothing about the
// request.
func ConnectionFailed(err error) bool { return isTransport(err) }

// APIError is an openEO error answer (section 6 of the API), or any non-2xx
// answer when the body is not an openEO error document.
type APIError struct {
	Method     string
	URL        string
	StatusCode int
	Code       string // openEO error code, e.g. "JobNotFound"; empty if the body had none
	Message    string
	ID         string        // back-end tracking id
	RetryAfter time.Duration // from a Retry-After header, 0 if absent
}

func (e *APIError) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s %s: %d %s", e.Method, e.URL, e.StatusCode, http.StatusText(e.StatusCode))
	if e.Code != "" {
		b.WriteString(" [" + e.Code + "]")
	}
	if e.Message != "" {
		b.WriteString(": " + e.Message)
	}
	if e.ID != "" {
		b.WriteString(" (id " + e.ID + ")")
	}
	return b.String()
}

// Is lets errors.Is match the package's sentinels.
func (e *APIError) Is(target error) bool {
	switch target {
	case ErrJobNotFound:
		return e.Code == "JobNotFound" || (e.Code == "" && e.StatusCode == http.StatusNotFound)
	case ErrAuth:
		return e.StatusCode == http.StatusUnauthorized || e.StatusCode == http.StatusForbidden
	case ErrPaymentRequired:
		return e.StatusCode == http.StatusPaymentRequired
	case ErrTransient:
		return e.StatusCode >= 500 || e.StatusCode == http.StatusTooManyRequests || e.StatusCode == http.StatusRequestTimeout
	case ErrJobNotFinished:
		return e.Code == "JobNotFinished"
	case ErrLinkExpired:
		return e.Code == "ResultLinkExpired" || e.StatusCode == http.StatusGone
	}
	return false
}

// errorBody is the openEO error document; log entries (424 answers) share
// the code and message keys.
type errorBody struct {
	ID      string `json:"id"`
	Code    string `json:"code"`
	Message string `json:"message"`
}

func newAPIError(resp *http.Response, body []byte) *APIError {
	e := &APIError{
		Method:     resp.Request.Method,
		URL:        redactURL(resp.Request.URL.String()),
		StatusCode: resp.StatusCode,
		RetryAfter: parseRetryAfter(resp.Header.Get("Retry-After")),
	}
	var eb errorBody
	if json.Unmarshal(body, &eb) == nil && (eb.Code != "" || eb.Message != "") {
		e.Code, e.Message, e.ID = eb.Code, eb.Message, eb.ID
	} else {
		e.Message = Snippet(body, 200)
	}
	return e
}

func parseRetryAfter(v string) time.Duration {
	if v == "" {
		return 0
	}
	if s, err := strconv.Atoi(strings.TrimSpace(v)); err == nil && s >= 0 {
		return time.Duration(s) * time.Second
	}
	if t, err := http.ParseTime(v); err == nil {
		if d := time.Until(t); d > 0 {
			return d
		}
	}
	return 0
}

// redactURL drops the query of a URL: signed asset links carry credentials there.
func redactURL(u string) string {
	if i := strings.IndexByte(u, '?'); i >= 0 {
		return u[:i] + "?..."
	}
	return u
}

// ErrNotOpenEO says that a back-end answered, but not as an openEO API
// does (a web page where an openEO endpoint should be, a login answer
// without an access_token): usually a wrong URL.
var ErrNotOpenEO = errors.New("the answer is not openEO's: is this an openEO back-end?")

// Snippet returns the start of an answer's body for a one-line message:
// whitespace (newlines included) collapsed to single spaces, cut to at
// most n characters (whole UTF-8 characters), "..." marking a cut.
func Snippet(body []byte, n int) string {
	s := strings.Join(strings.Fields(strings.ToValidUTF8(string(body), "\uFFFD")), " ")
	if r := []rune(s); len(r) > n {
		s = string(r[:n]) + "..."
	}
	return s
}
