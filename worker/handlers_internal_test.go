package worker

import (
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/openeo-batch/worker/remote"
)

func TestSummary(t *testing.T) {
	tests := []struct {
		entry remote.LogEntry
		want  string
	}{
		{remote.LogEntry{Message: "Out of memory\n  in  stage 3"}, "Out of memory in stage 3"},
		{remote.LogEntry{Code: "CollectionNotFound", Message: "no such collection"}, "CollectionNotFound: no such collection"},
	}
	for _, tt := range tests {
		if got := summary(tt.entry); got != tt.want {
			t.Errorf("summary(%+v) = %q, want %q", tt.entry, got, tt.want)
		}
	}
	long := summary(remote.LogEntry{Message: strings.Repeat("é", 400)})
	if !utf8.ValidString(long) || len(long) > maxSummary+len("…") || !strings.HasSuffix(long, "…") {
		t.Errorf("long message cut to %d bytes, valid UTF-8 %v", len(long), utf8.ValidString(long))
	}
}
