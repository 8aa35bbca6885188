package release

import "github.com/kroll-dev/kroll/pkg/validation"

// FieldError is one problem with one field of a manifest, e.g. Field
// "artifacts[1].sha256" with Message "must be 64 lowercase hex characters".
type FieldError = validation.FieldError

// ValidationError lists every problem Validate found in a manifest. Its
// message starts with "invalid release manifest: ".
type ValidationError = validation.Error

// subject names a manifest in the messages of its ValidationErrors.
const subject = "release manifest"
