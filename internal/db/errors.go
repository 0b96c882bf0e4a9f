package db

import (
	"context"
	"errors"
	"io"
	"net"
	"strings"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/puddle/v2"

	"github.com/ctrader/ctrader/internal/apperr"
)

// ErrUnavailable is returned when Postgres cannot be reached or is shutting
// down. Clients see 503 and should retry.
var ErrUnavailable = apperr.New(apperr.Unavailable, "the database is unavailable; retry later")

// ErrNUL is returned for text Postgres refuses to store: a NUL character in a
// string, a JSON key or a query parameter. It is the client's input, not a
// server fault.
var ErrNUL = apperr.New(apperr.Invalid, `text must not contain the NUL character (\u0000)`)

// Postgres error codes ctrader treats specially.
const (
	CodeCharacterNotInRepertoire = "22021" // NUL in text
	CodeUntranslatableCharacter  = "22P05" // \u0000 in jsonb
	CodeUniqueViolation          = "23505"
	CodeForeignKeyViolation      = "23503"
	CodeCheckViolation           = "23514"
	CodeUndefinedTable           = "42P01"
)

// Translate turns errors that mean "the database is not there" into
// ErrUnavailable, text Postgres cannot store into ErrNUL, and leaves every
// other error as it is. Constraint violations
// are left for the domain package that knows what the constraint means; see
// ConstraintOf.
func Translate(err error) error {
	if err == nil {
		return nil
	}
	var ae *apperr.Error
	if errors.As(err, &ae) {
		return err
	}
	if isUnavailable(err) {
		return apperr.Wrap(err, ErrUnavailable.Code, "%s", ErrUnavailable.Message)
	}
	if code, _ := ConstraintOf(err); code == CodeCharacterNotInRepertoire || code == CodeUntranslatableCharacter {
		return apperr.Wrap(err, ErrNUL.Code, "%s", ErrNUL.Message)
	}
	return err
}

// ConstraintOf returns the Postgres error code and constraint name of err, or
// empty strings when err is not a Postgres error.
func ConstraintOf(err error) (code, constraint string) {
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) {
		return pgErr.Code, pgErr.ConstraintName
	}
	return "", ""
}

// isUnavailable reports errors that mean Postgres cannot be reached, refuses
// connections or lost the connection in the middle of a conversation. A
// statement cut short by its caller's own context (a job's timeout, a client
// that went away) is not one of them: that is the caller's deadline.
func isUnavailable(err error) bool {
	var connectErr *pgconn.ConnectError
	if errors.As(err, &connectErr) {
		return true // also when connecting timed out
	}
	if errors.Is(err, context.DeadlineExceeded) || errors.Is(err, context.Canceled) {
		return false
	}
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) {
		switch {
		case strings.HasPrefix(pgErr.Code, "08"), // connection exception
			pgErr.Code == "57P01", // admin_shutdown
			pgErr.Code == "57P02", // crash_shutdown
			pgErr.Code == "57P03", // cannot_connect_now
			pgErr.Code == "53300": // too_many_connections
			return true
		}
		return false
	}
	if errors.Is(err, puddle.ErrClosedPool) || errors.Is(err, pgconn.ErrConnClosed) ||
		errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, io.EOF) {
		return true
	}
	var netErr net.Error
	return errors.As(err, &netErr)
}
