package driver

// InvalidError is a table whose content a store cannot take as a job
// table: a file that is not a SQLite database or not Parquet, a CSV file
// that is not CSV or whose header names a column twice or not at all, a
// value the store cannot keep (text that is not UTF-8 in Parquet or
// DuckDB). It is the input's fault, not the program's nor the machine's:
// worker reports it as invalid input (exit 2). Err says what and where.
type InvalidError struct{ Err error }

func (e *InvalidError) Error() string { return e.Err.Error() }

// Unwrap returns the reason.
func (e *InvalidError) Unwrap() error { return e.Err }

// Invalid marks err, unless nil, as an *InvalidError.
func Invalid(err error) error {
	if err == nil {
		return nil
	}
	return &InvalidError{Err: err}
}
