// Package sqlbuild builds the SQL text the SQL drivers (SQLite, DuckDB)
// share: quoted identifiers and the SET list of an update.
package sqlbuild

import (
	"strings"

	"github.com/openeo-batch/worker/driver"
)

// Quote quotes an identifier for SQL: "name", with inner quotes doubled.
func Quote(name string) string { return `"` + strings.ReplaceAll(name, `"`, `""`) + `"` }

// JoinQuoted quotes names and joins them with commas.
func JoinQuoted(names []string) string {
	q := make([]string, len(names))
	for i, n := range names {
		q[i] = Quote(n)
	}
	return strings.Join(q, ", ")
}

// SetClause returns `"a" = ?, "b" = ?` for set, with the arguments, in
// the stable order of driver.Assignments.
func SetClause(set driver.Values) (string, []any, error) {
	names, args, err := driver.Assignments(set)
	if err != nil {
		return "", nil, err
	}
	parts := make([]string, len(names))
	for i, n := range names {
		parts[i] = Quote(n) + " = ?"
	}
	return strings.Join(parts, ", "), args, nil
}
