// Package strictjson decodes JSON documents that are signed or otherwise
// trusted (release manifests, policies, detached signatures) strictly.
//
// encoding/json is lenient in ways that matter for such documents: it
// accepts duplicate object keys (the last one wins), matches object keys to
// struct fields case-insensitively (with Unicode folding, so "ſig" matches
// "sig"), silently replaces invalid UTF-8, and, with json.Unmarshal, ignores
// unknown fields. Decode rejects all of these, and in addition enforces a size
// limit, a nesting limit, and exactly one JSON value with nothing but white
// space after it.
//
// The package also provides the canonical encoding of such documents:
// MarshalCanonical encodes a value as compact JSON without HTML escaping and
// without a trailing newline, so that the bytes that are signed depend only
// on the value.
package strictjson

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"reflect"
	"strconv"
	"strings"
	"sync"
	"unicode/utf8"
)

// MaxDepth is the deepest nesting of objects and arrays Decode accepts.
const MaxDepth = 32

// ErrTooLarge is returned (wrapped) by Decode when the input exceeds the size
// limit.
var ErrTooLarge = errors.New("document too large")

// Decode decodes the single JSON value in data into v, which must be a
// non-nil pointer.
//
// Object keys must match the `json` tag (or, without a tag, the name) of a
// field of the target struct exactly; unknown keys and duplicate keys are
// errors that name the offending path (e.g. `artifacts[1].shasum: unknown
// field`). Types that implement json.Unmarshaler or encoding.TextUnmarshaler,
// maps and interface values are decoded as opaque values: their keys are only
// checked for duplicates. JSON null is accepted wherever encoding/json accepts
// it (it leaves the target unchanged); semantic checks belong to the caller.
//
// When v points to a struct, the document must be a JSON object (not null).
// The input must be valid UTF-8, at most maxSize bytes long (maxSize <= 0
// means no limit) and nested at most MaxDepth levels deep.
func Decode(data []byte, maxSize int, v any) error {
	return decode(nil, data, maxSize, v)
}

// Decoder decodes like Decode and keeps what it learns about the Go types
// it decodes into (their JSON field names), so that a stream of documents
// of the same types — a server's requests — does not work them out again
// for every document. The zero value is ready to use; a Decoder is safe
// for concurrent use and must not be copied after first use.
type Decoder struct {
	fields sync.Map // reflect.Type → map[string]reflect.Type
}

// Decode is the package's Decode with d's memory of types.
func (d *Decoder) Decode(data []byte, maxSize int, v any) error {
	return decode(d, data, maxSize, v)
}

// structFields returns t's JSON fields (see structFields), remembered.
func (d *Decoder) structFields(t reflect.Type) map[string]reflect.Type {
	if f, ok := d.fields.Load(t); ok {
		return f.(map[string]reflect.Type)
	}
	f := structFields(t)
	d.fields.Store(t, f)
	return f
}

// decode is Decode with an optional memory of types (d may be nil).
func decode(d *Decoder, data []byte, maxSize int, v any) error {
	if maxSize > 0 && len(data) > maxSize {
		return fmt.Errorf("%w: %d bytes, limit is %d", ErrTooLarge, len(data), maxSize)
	}
	rv := reflect.ValueOf(v)
	if rv.Kind() != reflect.Pointer || rv.IsNil() {
		return fmt.Errorf("strictjson: Decode target must be a non-nil pointer, not %T", v)
	}
	if !utf8.Valid(data) {
		return errors.New("document is not valid UTF-8")
	}

	if json.Valid(data) && quickCheck(d, data, rv.Type().Elem()) {
		// Keys are exactly the fields', each once: what
		// DisallowUnknownFields would refuse is not there, and
		// json.Unmarshal decodes without the Decoder's copy of data.
		if err := json.Unmarshal(data, v); err != nil {
			return describe(err)
		}
		return nil
	}
	if err := walk(data, rv.Type().Elem()); err != nil {
		return err
	}

	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return describe(err)
	}
	return nil
}

// walk checks data against the shape of t token by token, and describes
// the first problem it meets (with the path, and the line and column of a
// syntax error).
func walk(data []byte, t reflect.Type) error {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber()
	w := walker{dec: dec, data: data}
	if err := w.value(t, 0, ""); err != nil {
		return err
	}
	if _, err := dec.Token(); err != io.EOF {
		if err != nil {
			return fmt.Errorf("after JSON value: %w", err)
		}
		return errors.New("unexpected data after JSON value")
	}
	return nil
}

// MarshalCanonical encodes v as compact JSON without HTML escaping (so '<',
// '>' and '&' stay as they are) and without a trailing newline. Struct
// fields appear in declaration order and map keys sorted, as with
// json.Marshal; the caller chooses the shape of v that makes the encoding
// canonical.
func MarshalCanonical(v any) ([]byte, error) {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		return nil, err
	}
	return bytes.TrimSuffix(buf.Bytes(), []byte("\n")), nil
}

// walker checks the token stream of a document against the shape of the Go
// type it is decoded into.
type walker struct {
	dec  *json.Decoder
	data []byte
}

var (
	jsonUnmarshaler = reflect.TypeFor[json.Unmarshaler]()
	textUnmarshaler = reflect.TypeFor[interface{ UnmarshalText([]byte) error }]()
)

// opaque reports whether values of type t are decoded by custom code, so
// that their JSON shape is not derived from t's fields.
func opaque(t reflect.Type) bool {
	return t.Implements(jsonUnmarshaler) || reflect.PointerTo(t).Implements(jsonUnmarshaler) ||
		t.Implements(textUnmarshaler) || reflect.PointerTo(t).Implements(textUnmarshaler)
}

// value consumes one JSON value. t is the Go type it is decoded into, or nil
// when only duplicate keys and depth are checked.
func (w *walker) value(t reflect.Type, depth int, path string) error {
	for t != nil && t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	if t != nil && opaque(t) {
		t = nil
	}
	tok, err := w.token(path)
	if err != nil {
		return err
	}
	delim, ok := tok.(json.Delim)
	if depth == 0 && t != nil && t.Kind() == reflect.Struct && delim != '{' {
		return errors.New("document: must be a JSON object")
	}
	if !ok {
		return nil // scalar: its type is checked by encoding/json
	}
	if depth >= MaxDepth {
		return fmt.Errorf("%s: nested deeper than %d levels", at(path), MaxDepth)
	}
	switch delim {
	case '{':
		return w.object(t, depth, path)
	case '[':
		var elem reflect.Type
		if t != nil && (t.Kind() == reflect.Slice || t.Kind() == reflect.Array) {
			elem = t.Elem()
		}
		for i := 0; w.dec.More(); i++ {
			if err := w.value(elem, depth+1, path+"["+strconv.Itoa(i)+"]"); err != nil {
				return err
			}
		}
		_, err := w.token(path) // ']'
		return err
	default:
		return fmt.Errorf("%s: unexpected %v", at(path), delim)
	}
}

func (w *walker) object(t reflect.Type, depth int, path string) error {
	var fields map[string]reflect.Type
	var elem reflect.Type
	switch {
	case t == nil:
	case t.Kind() == reflect.Struct:
		fields = structFields(t)
	case t.Kind() == reflect.Map:
		elem = t.Elem()
	}
	seen := make(map[string]bool)
	for w.dec.More() {
		tok, err := w.token(path)
		if err != nil {
			return err
		}
		key, ok := tok.(string)
		if !ok {
			return fmt.Errorf("%s: object key is not a string", at(path))
		}
		sub := key
		if path != "" {
			sub = path + "." + key
		}
		if seen[key] {
			return fmt.Errorf("%s: duplicate key", sub)
		}
		seen[key] = true
		next := elem
		if fields != nil {
			ft, known := fields[key]
			if !known {
				return fmt.Errorf("%s: unknown field", sub)
			}
			next = ft
		}
		if err := w.value(next, depth+1, sub); err != nil {
			return err
		}
	}
	_, err := w.token(path) // '}'
	return err
}

// token returns the next token; errors name the path being decoded and,
// for syntax errors, the line and column.
func (w *walker) token(path string) (json.Token, error) {
	tok, err := w.dec.Token()
	var se *json.SyntaxError
	switch {
	case err == io.EOF:
		return nil, fmt.Errorf("%s: unexpected end of JSON input: %w", at(path), io.ErrUnexpectedEOF)
	case errors.As(err, &se):
		line, col := position(w.data, se.Offset)
		return nil, fmt.Errorf("%s: line %d, column %d: %w", at(path), line, col, err)
	case err != nil:
		return nil, fmt.Errorf("%s: %w", at(path), err)
	}
	return tok, nil
}

// position converts a byte offset into a 1-based line and column.
func position(data []byte, offset int64) (line, col int) {
	if offset < 0 || offset > int64(len(data)) {
		return 0, 0
	}
	before := data[:offset]
	line = 1 + bytes.Count(before, []byte("\n"))
	col = int(offset) - bytes.LastIndexByte(before, '\n')
	return line, col
}

// structFields maps the JSON names of t's exported fields to their types.
func structFields(t reflect.Type) map[string]reflect.Type {
	fields := make(map[string]reflect.Type, t.NumField())
	for i := range t.NumField() {
		f := t.Field(i)
		if !f.IsExported() {
			continue
		}
		name := f.Name
		if tag, ok := f.Tag.Lookup("json"); ok {
			n, _, _ := strings.Cut(tag, ",")
			if n == "-" && !strings.Contains(tag, ",") {
				continue
			}
			if n != "" {
				name = n
			}
		}
		fields[name] = f.Type
	}
	return fields
}

func at(path string) string {
	if path == "" {
		return "document"
	}
	return path
}

// describe rewrites encoding/json errors into "path: problem" form.
func describe(err error) error {
	var te *json.UnmarshalTypeError
	if errors.As(err, &te) && te.Field != "" {
		return &typeError{
			msg: fmt.Sprintf("%s: must be %s, not a JSON %s", te.Field, typeName(te.Type), te.Value),
			err: err,
		}
	}
	return err
}

// typeError is a JSON type mismatch described by its field path; it wraps
// the *json.UnmarshalTypeError.
type typeError struct {
	msg string
	err error
}

func (e *typeError) Error() string { return e.msg }
func (e *typeError) Unwrap() error { return e.err }

func typeName(t reflect.Type) string {
	if t == nil {
		return "a different type"
	}
	switch t.Kind() {
	case reflect.String:
		return "a string"
	case reflect.Bool:
		return "a boolean"
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
		reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		return "an integer in range"
	case reflect.Float32, reflect.Float64:
		return "a number"
	case reflect.Slice, reflect.Array:
		return "a list"
	case reflect.Struct, reflect.Map:
		return "an object"
	default:
		return "a " + t.String()
	}
}
