// Package apperr is ctrader's application error: a stable code a client can
// act on, a message that is safe to show, and optional per-field details.
// Domain packages return these (or wrap them); the HTTP layer maps each code to
// a status in exactly one table. Errors that are not an *Error are internal:
// they are logged and never shown.
package apperr

import (
	"errors"
	"fmt"
)

// Code says what kind of failure an error is. The values are part of the
// public contract: they appear in problem documents.
type Code string

const (
	Invalid     Code = "invalid"     // the input breaks a rule of the API
	NotFound    Code = "not_found"   // the resource does not exist
	Conflict    Code = "conflict"    // the input clashes with stored state
	TooLarge    Code = "too_large"   // the input is over a documented size limit
	Unavailable Code = "unavailable" // a dependency (the database) cannot be reached
	Internal    Code = "internal"    // anything else; never carries details
)

// FieldError points at one bad part of the input.
type FieldError struct {
	Location string // such as "body.name" or "body.events[3].type"
	Message  string
	Value    any
}

// Position is a FieldError's Value that points into a text the client sent,
// such as a rule's condition. Problems show it as data; other values are
// echoed only as short scalars.
type Position struct {
	Line    int    `json:"line"`
	Column  int    `json:"column"`
	Message string `json:"message"`
}

// Error is an application error. Message is shown to clients as is.
type Error struct {
	Code    Code
	Message string
	Fields  []FieldError
	cause   error
}

func (e *Error) Error() string {
	if e.cause != nil {
		return e.Message + ": " + e.cause.Error()
	}
	return e.Message
}

// Unwrap exposes the cause for logging; it is never shown to clients.
func (e *Error) Unwrap() error { return e.cause }

// Is matches another *Error with the same code and message, so that sentinel
// errors declared with New work with errors.Is after wrapping.
func (e *Error) Is(target error) bool {
	t, ok := target.(*Error)
	return ok && t.Code == e.Code && t.Message == e.Message
}

// New returns an error with a code and a client-safe message.
func New(code Code, format string, args ...any) *Error {
	return &Error{Code: code, Message: fmt.Sprintf(format, args...)}
}

// Wrap returns an error with a code and message that keeps cause for logs.
func Wrap(cause error, code Code, format string, args ...any) *Error {
	return &Error{Code: code, Message: fmt.Sprintf(format, args...), cause: cause}
}

// InvalidFields reports bad input at one or more locations.
func InvalidFields(message string, fields ...FieldError) *Error {
	return &Error{Code: Invalid, Message: message, Fields: fields}
}

// CodeOf returns the code of the first *Error in err's chain, or Internal.
func CodeOf(err error) Code {
	var e *Error
	if errors.As(err, &e) {
		return e.Code
	}
	return Internal
}
