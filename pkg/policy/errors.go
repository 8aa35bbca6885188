package policy

import "github.com/kroll-dev/kroll/pkg/validation"

// FieldError is one problem with one field of a policy, e.g. Field
// "params.allow_exe[0]" with Message "must be an absolute path".
type FieldError = validation.FieldError

// ValidationError lists every problem Validate found in a policy. Its
// message starts with "invalid policy: ".
type ValidationError = validation.Error

// subject names a policy in the messages of its ValidationErrors.
const subject = "policy"
