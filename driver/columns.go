package driver

import (
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"
)

// Kind is the type of a manager column's values.
type Kind int

// Column kinds.
const (
	Text Kind = iota
	Integer
	Real
	Bool
)

// Column describes one manager column.
type Column struct {
	Name string
	Kind Kind
}

// Manager column names. The first nine are the Python client's; the rest are
// ours, which the Python client passes through untouched.
const (
	ColID               = "id"
	ColBackend          = "backend_name"
	ColStatus           = "status"
	ColStartTime        = "start_time"
	ColRunningStartTime = "running_start_time"
	ColCPU              = "cpu"
	ColMemory           = "memory"
	ColDuration         = "duration"
	ColCosts            = "costs"
	ColAttempts         = "attempts"
	ColLastError        = "last_error"
	ColUpdatedAt        = "updated_at"
	ColTag              = "job_tag"
	ColDownloadPending  = "download_pending"
	ColWorker           = "worker_id"
	// ColPinnedBackend is the back-end the user gave the row: its
	// backend_name while it was not_started, which Claim records as it
	// overwrites backend_name with the claiming back-end's. A row that
	// goes back to not_started (a failed start, a recovery, a retry) gets
	// it back as its backend_name, so it stays with that back-end;
	// empty for a row any back-end may take. See Store.Claim.
	ColPinnedBackend = "pinned_backend"
)

var managerColumns = []Column{
	{ColID, Text},
	{ColBackend, Text},
	{ColStatus, Text},
	{ColStartTime, Text},
	{ColRunningStartTime, Text},
	{ColCPU, Text},
	{ColMemory, Text},
	{ColDuration, Text},
	{ColCosts, Real},
	{ColAttempts, Integer},
	{ColLastError, Text},
	{ColUpdatedAt, Text},
	{ColTag, Text},
	{ColDownloadPending, Bool},
	{ColWorker, Text},
	{ColPinnedBackend, Text},
}

// ManagerColumns returns the manager's columns in the order they follow the
// user's columns in a table.
func ManagerColumns() []Column {
	return append([]Column(nil), managerColumns...)
}

// ManagerColumn returns the manager column called name.
func ManagerColumn(name string) (Column, bool) {
	for _, c := range managerColumns {
		if c.Name == name {
			return c, true
		}
	}
	return Column{}, false
}

// Normalize converts v, a value read from outside (a CSV cell, a Parquet
// value, a Values entry), to the Go type of the manager column name:
// string, int64, float64, bool, or nil for an empty value. Status values are
// checked. The error names the column.
func Normalize(name string, v any) (any, error) {
	c, ok := ManagerColumn(name)
	if !ok {
		return nil, fmt.Errorf("column %q: not a manager column", name)
	}
	if s, ok := v.(Status); ok {
		v = string(s)
	}
	if s, ok := v.(string); ok && strings.TrimSpace(s) == "" && name != ColStatus {
		return nil, nil
	}
	if v == nil {
		if name == ColStatus {
			return string(NotStarted), nil
		}
		return nil, nil
	}
	var err error
	switch c.Kind {
	case Text:
		s := toText(v)
		if name == ColStatus {
			var st Status
			st, err = ParseStatus(s)
			s = string(st)
		}
		if err == nil {
			return s, nil
		}
	case Integer:
		var f float64
		if f, err = toFloat(v); err == nil {
			if f != math.Trunc(f) {
				err = fmt.Errorf("%v is not a whole number", v)
			} else {
				return int64(f), nil
			}
		}
	case Real:
		var f float64
		if f, err = toFloat(v); err == nil {
			return f, nil
		}
	case Bool:
		var b bool
		if b, err = toBool(v); err == nil {
			return b, nil
		}
	}
	return nil, fmt.Errorf("column %q: %w", name, err)
}

func toText(v any) string {
	switch x := v.(type) {
	case string:
		return x
	case float64:
		return strconv.FormatFloat(x, 'f', -1, 64)
	default:
		return fmt.Sprint(x)
	}
}

func toFloat(v any) (float64, error) {
	switch x := v.(type) {
	case int:
		return float64(x), nil
	case int64:
		return float64(x), nil
	case float64:
		return x, nil
	case string:
		f, err := strconv.ParseFloat(strings.TrimSpace(x), 64)
		if err != nil {
			return 0, fmt.Errorf("%q is not a number", x)
		}
		return f, nil
	}
	return 0, fmt.Errorf("%v (%T) is not a number", v, v)
}

func toBool(v any) (bool, error) {
	switch x := v.(type) {
	case bool:
		return x, nil
	case int64:
		return x != 0, nil
	case int:
		return x != 0, nil
	case float64:
		return x != 0, nil
	case string:
		switch strings.ToLower(strings.TrimSpace(x)) {
		case "1", "true", "t", "yes":
			return true, nil
		case "0", "false", "f", "no":
			return false, nil
		}
		return false, fmt.Errorf("%q is not a boolean", x)
	}
	return false, fmt.Errorf("%v (%T) is not a boolean", v, v)
}

// CheckValues normalizes every entry of set in place, so drivers store
// well-typed values. It returns an error naming a bad column or value.
func CheckValues(set Values) error {
	for k, v := range set {
		n, err := Normalize(k, v)
		if err != nil {
			return err
		}
		set[k] = n
	}
	return nil
}

// Assign sets the field of j that holds manager column name to v, a value
// as Normalize returns it. Unknown names are ignored.
func (j *Job) Assign(name string, v any) {
	s, _ := v.(string)
	switch name {
	case ColID:
		j.ID = s
	case ColBackend:
		j.Backend = s
	case ColStatus:
		j.Status = Status(s)
		if s == "" {
			j.Status = NotStarted
		}
	case ColStartTime:
		j.StartTime = s
	case ColRunningStartTime:
		j.RunningStartTime = s
	case ColCPU:
		j.CPU = s
	case ColMemory:
		j.Memory = s
	case ColDuration:
		j.Duration = s
	case ColCosts:
		if f, ok := v.(float64); ok {
			j.Costs = &f
		} else {
			j.Costs = nil
		}
	case ColAttempts:
		n, _ := v.(int64)
		j.Attempts = int(n)
	case ColLastError:
		j.LastError = s
	case ColUpdatedAt:
		j.UpdatedAt = s
	case ColTag:
		j.Tag = s
	case ColDownloadPending:
		b, _ := v.(bool)
		j.DownloadPending = b
	case ColWorker:
		j.Worker = s
	case ColPinnedBackend:
		j.PinnedBackend = s
	}
}

// Value returns the value of manager column name in j, as Normalize
// returns it (nil for an empty value), the counterpart of Assign.
func (j *Job) Value(name string) any {
	str := func(s string) any {
		if s == "" {
			return nil
		}
		return s
	}
	switch name {
	case ColID:
		return str(j.ID)
	case ColBackend:
		return str(j.Backend)
	case ColStatus:
		return string(j.Status)
	case ColStartTime:
		return str(j.StartTime)
	case ColRunningStartTime:
		return str(j.RunningStartTime)
	case ColCPU:
		return str(j.CPU)
	case ColMemory:
		return str(j.Memory)
	case ColDuration:
		return str(j.Duration)
	case ColCosts:
		if j.Costs == nil {
			return nil
		}
		return *j.Costs
	case ColAttempts:
		return int64(j.Attempts)
	case ColLastError:
		return str(j.LastError)
	case ColUpdatedAt:
		return str(j.UpdatedAt)
	case ColTag:
		return str(j.Tag)
	case ColDownloadPending:
		return j.DownloadPending
	case ColWorker:
		return str(j.Worker)
	case ColPinnedBackend:
		return str(j.PinnedBackend)
	}
	return nil
}

// CheckColumnNames refuses column names a table cannot have: an empty
// one, one given twice, and two that differ only in case ("Tile" and
// "tile"), or one that differs only in case from a manager column ("ID"
// and "id"): SQLite, DuckDB and PostgreSQL (unquoted) take such names for
// one, so a table with both could not be written in every format. The
// error names the columns; the caller names the file.
func CheckColumnNames(columns []string) error {
	seen := map[string]string{} // lower case -> the name as given
	for _, m := range managerColumns {
		seen[strings.ToLower(m.Name)] = m.Name
	}
	user := map[string]bool{}
	for i, c := range columns {
		if c == "" {
			return fmt.Errorf("column %d has no name", i+1)
		}
		if user[c] {
			return fmt.Errorf("column %q appears twice", c)
		}
		user[c] = true
		first, ok := seen[strings.ToLower(c)]
		switch {
		case !ok:
			seen[strings.ToLower(c)] = c
		case first == c: // a manager column, by its own name
		case isManager(first):
			return fmt.Errorf("column %q differs only in case from the manager's column %q, which SQLite, DuckDB and PostgreSQL take for the same name: rename it", c, first)
		default:
			return fmt.Errorf("columns %q and %q differ only in case, which SQLite, DuckDB and PostgreSQL take for the same name: rename one", first, c)
		}
	}
	return nil
}

func isManager(name string) bool {
	_, ok := ManagerColumn(name)
	return ok
}

// SplitColumns checks the column names given to Store.Init (see
// CheckColumnNames; none reserved by the driver either) and returns the
// user's columns, those that are not manager columns, in order.
func SplitColumns(columns []string, reserved ...string) ([]string, error) {
	if err := CheckColumnNames(columns); err != nil {
		return nil, err
	}
	var user []string
	for _, c := range columns {
		for _, r := range reserved {
			if c == r {
				return nil, fmt.Errorf("column %q: name is reserved for the row key", c)
			}
		}
		if !isManager(c) {
			user = append(user, c)
		}
	}
	return user, nil
}

// Assignments checks set and returns its columns in the fixed order of
// ManagerColumns (so the SQL built from them is stable) with their values;
// a nil attempts or download_pending becomes 0 or false, their defaults.
func Assignments(set Values) ([]string, []any, error) {
	if err := CheckValues(set); err != nil {
		return nil, nil, err
	}
	var names []string
	var vals []any
	for _, c := range managerColumns {
		v, ok := set[c.Name]
		if !ok {
			continue
		}
		if v == nil && c.Name == ColAttempts {
			v = int64(0)
		}
		if v == nil && c.Name == ColDownloadPending {
			v = false
		}
		names = append(names, c.Name)
		vals = append(vals, v)
	}
	if len(names) == 0 {
		return nil, nil, errors.New("update sets no column")
	}
	return names, vals, nil
}

// ClaimValues returns set, the values a Claim assigns, with what the claim
// records besides: pinned_backend becomes row's backend_name as it was
// before the claim (nil when empty), unless set assigns pinned_backend
// itself. row is the not_started row being claimed. Drivers that hold the
// row in hand use it; SQL drivers set pinned_backend from backend_name in
// the claiming statement instead.
func ClaimValues(row Job, set Values) Values {
	out := make(Values, len(set)+1)
	for k, v := range set {
		out[k] = v
	}
	if _, ok := out[ColPinnedBackend]; !ok {
		out[ColPinnedBackend] = row.Value(ColBackend)
	}
	return out
}

// Unclaimed returns the backend_name of a row that goes back to
// not_started: its pinned back-end, or nil (any back-end) when it has
// none. Every path that frees a claimed row sets backend_name to it, so a
// row the user gave to a back-end stays with it.
func (j *Job) Unclaimed() any { return j.Value(ColPinnedBackend) }
