package validation

import (
	"errors"
	"testing"
)

func TestProblems(t *testing.T) {
	cause := errors.New("bad version")
	tests := []struct {
		name    string
		collect func(p *Problems)
		subject string
		want    string // "" means Err returns nil
	}{
		{"empty", func(p *Problems) {}, "policy", ""},
		{"one add", func(p *Problems) { p.Add("id", "required") }, "policy", "invalid policy: id: required"},
		{"one wrap", func(p *Problems) { p.Wrap("kernel_version", cause) }, "release manifest",
			"invalid release manifest: kernel_version: bad version"},
		{"several in order", func(p *Problems) {
			p.Add("id", "required")
			p.Wrap("line", cause)
			p.Add("artifacts[1].sha256", "must be 64 lowercase hex characters")
		}, "release manifest",
			"invalid release manifest: id: required; line: bad version; artifacts[1].sha256: must be 64 lowercase hex characters"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var p Problems
			tt.collect(&p)
			err := p.Err(tt.subject)
			if tt.want == "" {
				if err != nil {
					t.Fatalf("Err = %v, want nil", err)
				}
				return
			}
			if err == nil {
				t.Fatalf("Err = nil, want %q", tt.want)
			}
			if got := err.Error(); got != tt.want {
				t.Errorf("Err().Error() = %q, want %q", got, tt.want)
			}
			var ve *Error
			if !errors.As(err, &ve) || ve.Subject != tt.subject || len(ve.Errors) != len(p) {
				t.Errorf("errors.As(*Error) = %+v, want subject %q and %d problems", ve, tt.subject, len(p))
			}
		})
	}
}

func TestUnwrap(t *testing.T) {
	cause := errors.New("bad version")
	var p Problems
	p.Add("id", "required")
	p.Wrap("line", cause)
	err := p.Err("policy")

	if !errors.Is(err, cause) {
		t.Errorf("errors.Is(err, cause) = false, want true")
	}
	var fe FieldError
	if !errors.As(err, &fe) || fe.Field != "id" || fe.Message != "required" || fe.Err != nil {
		t.Errorf("errors.As(FieldError) = %+v, want the first problem", fe)
	}
	if got := (FieldError{Field: "line", Message: "bad version", Err: cause}).Unwrap(); got != cause {
		t.Errorf("FieldError.Unwrap = %v, want %v", got, cause)
	}
	if got := (FieldError{Field: "id", Message: "required"}).Error(); got != "id: required" {
		t.Errorf("FieldError.Error = %q, want %q", got, "id: required")
	}
}
