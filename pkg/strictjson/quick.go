package strictjson

import (
	"bytes"
	"encoding/json"
	"reflect"
	"slices"
)

// quickCheck reports whether data, which must be valid JSON (json.Valid),
// passes every check the walker makes — no duplicate or unknown keys,
// nesting within MaxDepth, an object where a struct is wanted at the top —
// in one pass over the bytes, without the token stream's allocations (a
// coordinator decodes tens of thousands of heartbeats a second this way).
// false only means "look closer": Decode then runs the walker, which finds
// and describes the problem. FuzzQuickCheck holds the two to the same
// verdict.
func quickCheck(d *Decoder, data []byte, t reflect.Type) bool {
	q := quick{data: data, types: d}
	q.ws()
	if q.pos >= len(data) {
		return false
	}
	if t = shape(t); t != nil && t.Kind() == reflect.Struct && data[q.pos] != '{' {
		return false
	}
	return q.value(t, 0)
}

// shape returns the type whose fields a JSON value decoded into t must
// match: t without pointers, or nil when only duplicates and depth are
// checked (custom decoders).
func shape(t reflect.Type) reflect.Type {
	for t != nil && t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	if t != nil && opaque(t) {
		return nil
	}
	return t
}

// quick is quickCheck's cursor over a valid JSON document.
type quick struct {
	data []byte
	pos  int
	// types, when set, remembers struct fields across documents; fields
	// caches them for this document otherwise.
	types  *Decoder
	fields map[reflect.Type]map[string]reflect.Type
}

func (q *quick) ws() {
	for q.pos < len(q.data) {
		switch q.data[q.pos] {
		case ' ', '\t', '\n', '\r':
			q.pos++
		default:
			return
		}
	}
}

// next skips white space and returns the byte there, consuming it.
func (q *quick) next() byte {
	q.ws()
	c := q.data[q.pos]
	q.pos++
	return c
}

func (q *quick) value(t reflect.Type, depth int) bool {
	t = shape(t)
	q.ws()
	switch q.data[q.pos] {
	case '{':
		if depth >= MaxDepth {
			return false
		}
		q.pos++
		return q.object(t, depth)
	case '[':
		if depth >= MaxDepth {
			return false
		}
		q.pos++
		var elem reflect.Type
		if t != nil && (t.Kind() == reflect.Slice || t.Kind() == reflect.Array) {
			elem = t.Elem()
		}
		if q.ws(); q.data[q.pos] == ']' {
			q.pos++
			return true
		}
		for {
			if !q.value(elem, depth+1) {
				return false
			}
			if q.next() == ']' {
				return true
			}
		}
	case '"':
		q.str()
		return true
	default: // a number, true, false or null
		for q.pos < len(q.data) {
			switch q.data[q.pos] {
			case ',', '}', ']', ' ', '\t', '\n', '\r':
				return true
			}
			q.pos++
		}
		return true
	}
}

// object checks the members of an object whose '{' was consumed.
func (q *quick) object(t reflect.Type, depth int) bool {
	var (
		fields map[string]reflect.Type
		elem   reflect.Type
	)
	switch {
	case t == nil:
	case t.Kind() == reflect.Struct && q.types != nil:
		fields = q.types.structFields(t)
	case t.Kind() == reflect.Struct:
		if fields = q.fields[t]; fields == nil {
			if q.fields == nil {
				q.fields = map[reflect.Type]map[string]reflect.Type{}
			}
			fields = structFields(t)
			q.fields[t] = fields
		}
	case t.Kind() == reflect.Map:
		elem = t.Elem()
	}
	if q.ws(); q.data[q.pos] == '}' {
		q.pos++
		return true
	}
	// Keys seen: a list while short (slices of data: no copies), a set
	// past that.
	var (
		seenArr [16][]byte
		seen    = seenArr[:0]
		seenSet map[string]bool
	)
	for {
		q.ws()
		key, ok := q.key()
		if !ok {
			return false
		}
		switch {
		case seenSet != nil:
			if seenSet[string(key)] {
				return false
			}
			seenSet[string(key)] = true
		case slices.ContainsFunc(seen, func(k []byte) bool { return bytes.Equal(k, key) }):
			return false
		case len(seen) < len(seenArr):
			seen = append(seen, key)
		default:
			seenSet = make(map[string]bool, 2*len(seen))
			for _, k := range seen {
				seenSet[string(k)] = true
			}
			seenSet[string(key)] = true
		}
		next := elem
		if fields != nil {
			ft, known := fields[string(key)]
			if !known {
				return false
			}
			next = ft
		}
		q.next() // ':'
		if !q.value(next, depth+1) {
			return false
		}
		if q.next() == '}' {
			return true
		}
	}
}

// str skips a string; the cursor is on its opening quote. It returns the
// bytes between the quotes and whether they hold an escape.
func (q *quick) str() (raw []byte, escaped bool) {
	start := q.pos + 1
	for i := start; i < len(q.data); i++ {
		switch q.data[i] {
		case '\\':
			escaped = true
			i++
		case '"':
			q.pos = i + 1
			return q.data[start:i], escaped
		}
	}
	q.pos = len(q.data)
	return q.data[start:], escaped
}

// key reads an object key (decoded, as the token stream gives it): a
// slice of data unless it holds an escape.
func (q *quick) key() ([]byte, bool) {
	start := q.pos
	raw, escaped := q.str()
	if !escaped {
		return raw, true
	}
	var k string
	if err := json.Unmarshal(q.data[start:q.pos], &k); err != nil {
		return nil, false
	}
	return []byte(k), true
}
