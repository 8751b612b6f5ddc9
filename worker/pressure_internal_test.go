package worker

import (
	"fmt"
	"testing"

	"github.com/openeo-batch/worker/remote"
)

// What a create or start error says: the back-end's state (wait, or try
// again, spending nothing), its refusal of the account (stop there), or
// the job's failure (spend an attempt).
func TestClassify(t *testing.T) {
	api := func(status int, code string) error {
		return fmt.Errorf("start job: %w", &remote.APIError{StatusCode: status, Code: code})
	}
	tests := []struct {
		err  error
		want pressure
	}{
		{api(429, ""), slowDown},
		{api(400, "ConcurrentJobLimit"), slowDown},
		{api(502, ""), transient},
		{api(503, "InfrastructureBusy"), transient},
		{api(504, ""), transient},
		{fmt.Errorf("x: %w", remote.ErrUnavailable), slowDown},
		{api(402, "PaymentRequired"), unusable},
		{api(401, "AuthenticationRequired"), unusable},
		{api(403, "TokenInvalid"), unusable},
		{api(403, ""), unusable},
		{api(403, "PermissionsInsufficient"), failed},
		{api(500, "Internal"), failed},
		{api(400, "ProcessGraphInvalid"), failed},
		{fmt.Errorf("no data for this tile"), failed},
	}
	for _, tt := range tests {
		if got := classify(tt.err); got != tt.want {
			t.Errorf("classify(%v) = %d, want %d", tt.err, got, tt.want)
		}
	}
}
