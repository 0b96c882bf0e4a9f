package apperr_test

import (
	"errors"
	"fmt"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/ctrader/ctrader/internal/apperr"
)

var errGone = apperr.New(apperr.NotFound, "account %s not found", "a1")

// A sentinel declared with New matches through wrapping, by code and
// message: another error with the same code but other words does not.
func TestIs(t *testing.T) {
	t.Parallel()
	require.ErrorIs(t, fmt.Errorf("load account: %w", errGone), errGone)
	require.ErrorIs(t, apperr.New(apperr.NotFound, "account a1 not found"), errGone, "same code and message")
	require.NotErrorIs(t, apperr.New(apperr.NotFound, "rule r1 not found"), errGone)
	require.NotErrorIs(t, apperr.New(apperr.Conflict, "account a1 not found"), errGone)
	require.NotErrorIs(t, errors.New("account a1 not found"), errGone, "a plain error is not an application error")
}

// Wrap keeps the cause for logs and errors.Is, and shows only its message.
func TestWrap(t *testing.T) {
	t.Parallel()
	cause := errors.New("dial tcp: connection refused")
	err := apperr.Wrap(cause, apperr.Unavailable, "the %s is unavailable", "database")
	require.ErrorIs(t, err, cause)
	require.Equal(t, "the database is unavailable", err.Message)
	require.Equal(t, "the database is unavailable: dial tcp: connection refused", err.Error())

	var ae *apperr.Error
	require.ErrorAs(t, fmt.Errorf("read: %w", err), &ae)
	require.Equal(t, apperr.Unavailable, ae.Code)
}

func TestCodeOf(t *testing.T) {
	t.Parallel()
	tests := []struct {
		err  error
		want apperr.Code
	}{
		{errGone, apperr.NotFound},
		{fmt.Errorf("outer: %w", apperr.New(apperr.Conflict, "taken")), apperr.Conflict},
		{apperr.InvalidFields("bad", apperr.FieldError{Location: "body.name", Message: "empty"}), apperr.Invalid},
		{apperr.Wrap(errors.New("x"), apperr.TooLarge, "too big"), apperr.TooLarge},
		{errors.New("boom"), apperr.Internal},
		{nil, apperr.Internal},
	}
	for _, tt := range tests {
		require.Equal(t, tt.want, apperr.CodeOf(tt.err), "%v", tt.err)
	}
}

func TestInvalidFieldsKeepsTheFields(t *testing.T) {
	t.Parallel()
	f := apperr.FieldError{Location: "body.events[3].type", Message: "required"}
	err := apperr.InvalidFields("the batch is invalid", f)
	require.Equal(t, "the batch is invalid", err.Error())
	require.Equal(t, []apperr.FieldError{f}, err.Fields)
}
