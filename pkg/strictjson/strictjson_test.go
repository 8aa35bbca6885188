package strictjson

import (
	"bytes"
	"encoding/json"
	"errors"
	"reflect"
	"strings"
	"testing"
	"time"
)

type item struct {
	Name string `json:"name"`
	Size int64  `json:"size"`
}

type doc struct {
	ID      string            `json:"id"`
	Items   []item            `json:"items"`
	Nested  *item             `json:"nested,omitempty"`
	When    time.Time         `json:"when"`
	Raw     json.RawMessage   `json:"raw"`
	Labels  map[string]string `json:"labels"`
	Any     any               `json:"any"`
	Skipped string            `json:"-"`
	Dash    string            `json:"-,"`
	Untag   string
}

func TestDecode(t *testing.T) {
	tests := []struct {
		name    string
		in      string
		max     int
		wantErr string
	}{
		{"minimal", `{}`, 0, ""},
		{"full", `{"id":"a","items":[{"name":"x","size":1}],"nested":{"name":"n","size":2},"when":"2026-01-01T00:00:00Z","raw":{"x":[1]},"labels":{"A":"b"},"any":{"k":[{"z":1}]},"-":"d","Untag":"u"}`, 0, ""},
		{"nulls", `{"id":null,"items":null,"nested":null}`, 0, ""},
		{"white space around", " \n\t{}\n ", 0, ""},
		{"at size limit", `{"id":"abc"}`, 12, ""},
		{"over size limit", `{"id":"abcd"}`, 12, "document too large: 13 bytes, limit is 12"},
		{"empty", ``, 0, "unexpected end of JSON input"},
		{"null document", `null`, 0, "document: must be a JSON object"},
		{"array document", `[]`, 0, "document: must be a JSON object"},
		{"number document", `1`, 0, "document: must be a JSON object"},
		{"unknown field", `{"id":"a","extra":1}`, 0, "extra: unknown field"},
		{"unknown nested field", `{"items":[{"name":"x"},{"name":"y","sha":"z"}]}`, 0, "items[1].sha: unknown field"},
		{"unknown field in pointer struct", `{"nested":{"bogus":true}}`, 0, "nested.bogus: unknown field"},
		{"json:\"-\" field", `{"Skipped":"x"}`, 0, "Skipped: unknown field"},
		{"case mismatch", `{"ID":"a"}`, 0, "ID: unknown field"},
		{"case mismatch of untagged", `{"untag":"a"}`, 0, "untag: unknown field"},
		{"unicode fold", `{"ıd":"a"}`, 0, "unknown field"},
		{"kelvin fold", "{\"items\":[{\"name\":\"x\",\"\u212aey\":1}]}", 0, "unknown field"},
		{"duplicate key", `{"id":"a","id":"b"}`, 0, "id: duplicate key"},
		{"duplicate nested key", `{"items":[{"name":"a","name":"b"}]}`, 0, "items[0].name: duplicate key"},
		{"duplicate key in map", `{"labels":{"a":"1","a":"2"}}`, 0, "labels.a: duplicate key"},
		{"duplicate key in opaque value", `{"any":{"k":1,"k":2}}`, 0, "any.k: duplicate key"},
		{"duplicate key in raw message", `{"raw":{"k":1,"k":2}}`, 0, "raw.k: duplicate key"},
		{"trailing object", `{}{}`, 0, "unexpected data after JSON value"},
		{"trailing garbage", `{} x`, 0, "after JSON value"},
		{"trailing comma", `{"id":"a",}`, 0, "invalid character"},
		{"unterminated", `{"id":"a"`, 0, "unexpected end of JSON input"},
		{"invalid UTF-8", "{\"id\":\"\xff\"}", 0, "not valid UTF-8"},
		{"too deep", `{"any":` + strings.Repeat("[", MaxDepth) + strings.Repeat("]", MaxDepth) + `}`, 0, "nested deeper than 32 levels"},
		{"deep enough", `{"any":` + strings.Repeat("[", MaxDepth-1) + strings.Repeat("]", MaxDepth-1) + `}`, 0, ""},
		{"string for number", `{"items":[{"size":"1"}]}`, 0, "items.size: must be an integer in range, not a JSON string"},
		{"float for integer", `{"items":[{"size":1.5}]}`, 0, "items.size: must be an integer in range, not a JSON number 1.5"},
		{"huge integer", `{"items":[{"size":1e30}]}`, 0, "items.size: must be an integer in range"},
		{"number for string", `{"id":1}`, 0, "id: must be a string, not a JSON number"},
		{"object for list", `{"items":{}}`, 0, "items: must be a list, not a JSON object"},
		{"bad time", `{"when":"yesterday"}`, 0, "parsing time"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var d doc
			err := Decode([]byte(tt.in), tt.max, &d)
			switch {
			case tt.wantErr == "" && err != nil:
				t.Fatalf("Decode: %v", err)
			case tt.wantErr != "" && err == nil:
				t.Fatalf("Decode: no error, want %q", tt.wantErr)
			case tt.wantErr != "" && !strings.Contains(err.Error(), tt.wantErr):
				t.Fatalf("Decode error %q does not contain %q", err, tt.wantErr)
			}
		})
	}
}

func TestDecodeValues(t *testing.T) {
	var d doc
	in := `{"id":"a","items":[{"name":"x","size":7}],"-":"dash","Untag":"u"}`
	if err := Decode([]byte(in), 0, &d); err != nil {
		t.Fatal(err)
	}
	if d.ID != "a" || len(d.Items) != 1 || d.Items[0] != (item{"x", 7}) || d.Dash != "dash" || d.Untag != "u" {
		t.Errorf("Decode = %+v", d)
	}
}

func TestDecodeErrorsWrap(t *testing.T) {
	var d doc
	err := Decode([]byte(`{"id":"toolong"}`), 5, &d)
	if !errors.Is(err, ErrTooLarge) {
		t.Errorf("size error %v does not wrap ErrTooLarge", err)
	}
	err = Decode([]byte(`{"id":1}`), 0, &d)
	var te *json.UnmarshalTypeError
	if !errors.As(err, &te) {
		t.Errorf("type error %v does not wrap *json.UnmarshalTypeError", err)
	}
	if err := Decode([]byte(`{}`), 0, d); err == nil {
		t.Error("non-pointer target: no error")
	}
	if err := Decode([]byte(`{}`), 0, (*doc)(nil)); err == nil {
		t.Error("nil pointer target: no error")
	}
}

func FuzzDecode(f *testing.F) {
	f.Add([]byte(`{"id":"a","items":[{"name":"x","size":1}]}`))
	f.Add([]byte(`{"any":{"k":[1,2,{"z":null}]},"labels":{"a":"b"}}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		var d doc
		if err := Decode(data, 1<<16, &d); err != nil {
			return
		}
		// Whatever strict decoding accepts, encoding/json accepts too, with
		// the same result.
		var lenient doc
		if err := json.Unmarshal(data, &lenient); err != nil {
			t.Fatalf("strict Decode accepted what json.Unmarshal rejects: %v", err)
		}
		// And a json.Decoder refusing unknown fields, which strict
		// decoding used for every document, decodes the same.
		var strict doc
		dec := json.NewDecoder(bytes.NewReader(data))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&strict); err != nil {
			t.Fatalf("strict Decode accepted what a json.Decoder with DisallowUnknownFields rejects: %v", err)
		}
		if !reflect.DeepEqual(d, lenient) || !reflect.DeepEqual(d, strict) {
			t.Fatalf("%s: Decode %+v, json.Unmarshal %+v, json.Decoder %+v", data, d, lenient, strict)
		}
	})
}

func TestSyntaxErrorPosition(t *testing.T) {
	var d doc
	err := Decode([]byte("{\n  \"id\": \"a\",\n  items: []\n}"), 0, &d)
	if err == nil || !strings.Contains(err.Error(), "line 3, column ") {
		t.Errorf("Decode = %v, want a line and column", err)
	}
	var se *json.SyntaxError
	if !errors.As(err, &se) {
		t.Errorf("error %v does not wrap *json.SyntaxError", err)
	}
}

func TestMarshalCanonical(t *testing.T) {
	tests := []struct {
		name string
		v    any
		want string
	}{
		{"struct in field order", item{Name: "a", Size: 3}, `{"name":"a","size":3}`},
		{"no HTML escaping", item{Name: "<a&b>"}, `{"name":"<a&b>","size":0}`},
		{"map keys sorted", map[string]int{"b": 2, "a": 1}, `{"a":1,"b":2}`},
		{"non-ASCII kept", "ſig é", `"ſig é"`},
		{"nested and compact", []item{{Name: "x"}, {Size: 1}}, `[{"name":"x","size":0},{"name":"","size":1}]`},
		{"null", nil, `null`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := MarshalCanonical(tt.v)
			if err != nil {
				t.Fatalf("MarshalCanonical: %v", err)
			}
			if string(got) != tt.want {
				t.Errorf("MarshalCanonical = %s, want %s", got, tt.want)
			}
		})
	}
}

func TestMarshalCanonicalError(t *testing.T) {
	if b, err := MarshalCanonical(make(chan int)); err == nil {
		t.Errorf("MarshalCanonical(chan) = %s, want an error", b)
	}
}
