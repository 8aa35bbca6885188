package policy

import "strings"

// FieldError is one problem with one field of a policy.
type FieldError struct {
	// Field is the path of the field, e.g. "params.allow_exe[0]".
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

// ValidationError lists every problem Validate found in a policy.
type ValidationError struct {
	// Errors holds the problems in field order; it is never empty.
	Errors []FieldError
}

// Error joins the problems with "; ".
func (e *ValidationError) Error() string {
	msgs := make([]string, len(e.Errors))
	for i, fe := range e.Errors {
		msgs[i] = fe.Error()
	}
	return "invalid policy: " + strings.Join(msgs, "; ")
}

// Unwrap returns the individual FieldErrors, so that errors.As and errors.Is
// see them and their causes.
func (e *ValidationError) Unwrap() []error {
	errs := make([]error, len(e.Errors))
	for i, fe := range e.Errors {
		errs[i] = fe
	}
	return errs
}

// problems collects FieldErrors.
type problems []FieldError

func (p *problems) add(field, msg string) {
	*p = append(*p, FieldError{Field: field, Message: msg})
}

func (p *problems) wrap(field string, err error) {
	*p = append(*p, FieldError{Field: field, Message: err.Error(), Err: err})
}

func (p problems) err() error {
	if len(p) == 0 {
		return nil
	}
	return &ValidationError{Errors: p}
}
