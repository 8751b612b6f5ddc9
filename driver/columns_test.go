package driver

import (
	"strings"
	"testing"
)

// Value and Assign are each other's counterpart for every manager column.
func TestValueAssignRoundTrip(t *testing.T) {
	in := map[string]any{
		ColID: "j-1", ColBackend: "vito", ColStatus: "finished", ColStartTime: "2024-01-01T00:00:00Z",
		ColRunningStartTime: "2024-01-01T00:01:00Z", ColCPU: "1 cpu-seconds", ColMemory: "2 mb-seconds",
		ColDuration: "3 seconds", ColCosts: 1.5, ColAttempts: int64(2), ColLastError: "x", ColUpdatedAt: "t",
		ColTag: "tag", ColDownloadPending: true, ColWorker: "w", ColPinnedBackend: "vito",
	}
	if len(in) != len(ManagerColumns()) {
		t.Fatalf("test covers %d of %d manager columns", len(in), len(ManagerColumns()))
	}
	var j Job
	for k, v := range in {
		j.Assign(k, v)
	}
	for k, v := range in {
		if got := j.Value(k); got != v {
			t.Errorf("Value(%s) = %#v, want %#v", k, got, v)
		}
	}
}

func TestCheckColumnNames(t *testing.T) {
	for _, c := range []struct {
		cols []string
		want string // "" for none
	}{
		{[]string{"tile", "year", "status", "id"}, ""},
		{[]string{"Tile", "year", "tile"}, `columns "Tile" and "tile" differ only in case`},
		{[]string{"tile", "ID"}, `column "ID" differs only in case from the manager's column "id"`},
		{[]string{"a", "a"}, `column "a" appears twice`},
		{[]string{"a", ""}, "column 2 has no name"},
	} {
		err := CheckColumnNames(c.cols)
		if c.want == "" && err != nil || c.want != "" && (err == nil || !strings.Contains(err.Error(), c.want)) {
			t.Errorf("%v: %v, want %q", c.cols, err, c.want)
		}
		if _, serr := SplitColumns(c.cols); (serr == nil) != (err == nil) {
			t.Errorf("%v: SplitColumns says %v, CheckColumnNames %v", c.cols, serr, err)
		}
	}
}
