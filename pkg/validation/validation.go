// Package validation reports the problems found when validating a document
// field by field: a FieldError names one field and what is wrong with it,
// an Error lists all of them for one document, and Problems collects them
// while a validator walks the document.
package validation

import "strings"

// FieldError is one problem with one field of a document.
type FieldError struct {
	// Field is the path of the field, e.g. "artifacts[1].sha256" or
	// "params.allow_exe[0]".
	Field string
	// Message describes the problem, e.g. "must be an absolute path".
	Message string
	// Err is the underlying error, if any (e.g. from kversion.Parse).
	Err error
}

// Error returns "FIELD: MESSAGE".
func (e FieldError) Error() string { return e.Field + ": " + e.Message }

// Unwrap returns the underlying error, if any.
func (e FieldError) Unwrap() error { return e.Err }

// Error lists every problem found in a document.
type Error struct {
	// Subject names the kind of document, e.g. "policy" or "release
	// manifest"; it appears in the message as "invalid SUBJECT: ...".
	Subject string
	// Errors holds the problems in field order; it is never empty.
	Errors []FieldError
}

// Error returns "invalid SUBJECT: " followed by the problems joined with
// "; ".
func (e *Error) Error() string {
	msgs := make([]string, len(e.Errors))
	for i, fe := range e.Errors {
		msgs[i] = fe.Error()
	}
	return "invalid " + e.Subject + ": " + strings.Join(msgs, "; ")
}

// Unwrap returns the individual FieldErrors, so that errors.As and errors.Is
// see them and their causes.
func (e *Error) Unwrap() []error {
	errs := make([]error, len(e.Errors))
	for i, fe := range e.Errors {
		errs[i] = fe
	}
	return errs
}

// Problems collects FieldErrors in the order they are found. The zero value
// is an empty collection ready to use.
type Problems []FieldError

// Add records that field has the problem described by msg.
func (p *Problems) Add(field, msg string) {
	*p = append(*p, FieldError{Field: field, Message: msg})
}

// Wrap records err as the problem of field, keeping err as the cause and
// its text as the message.
func (p *Problems) Wrap(field string, err error) {
	*p = append(*p, FieldError{Field: field, Message: err.Error(), Err: err})
}

// Err returns nil if no problems were collected, or else an *Error with
// the given subject listing them.
func (p Problems) Err(subject string) error {
	if len(p) == 0 {
		return nil
	}
	return &Error{Subject: subject, Errors: p}
}
