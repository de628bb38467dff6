package fhir

import (
	"bytes"
	"encoding/json"
	"errors"
)

// RewriteReferences calls fn with the value of every "reference" element of body (a JSON string under
// the key reference, at any depth) and puts what fn answers in its place. Everything else is kept byte
// for byte. Decoding the body into Go values and encoding it again, as this used to, turned every
// number into a float64: a decimal's precision is part of its value in FHIR (0.50 is not 0.5), and a
// transaction that rewrote urn:uuid references stored 0.5. One pass over the bytes also costs less than
// decoding and encoding: on import, where most entries have a reference rewritten, those were 5% of the
// CPU.
//
// body should be JSON; where it is not, the result is whatever the rewrite makes of it, for the parser
// to refuse. changed reports whether any value was replaced; the first error from fn stops the walk and
// is returned with body unchanged.
func RewriteReferences(body []byte, fn func(ref string) (string, error)) (out []byte, changed bool, err error) {
	last := 0
	for i := 0; i < len(body); {
		if body[i] != '"' {
			i++
			continue
		}
		end, esc := stringEnd(body, i)
		if end < 0 {
			break
		}
		colon := skipSpace(body, end+1)
		if colon >= len(body) || body[colon] != ':' || !isKey(body[i:end+1], esc, "reference") {
			i = end + 1
			continue
		}
		v := skipSpace(body, colon+1)
		if v >= len(body) || body[v] != '"' {
			i = v
			continue
		}
		vend, vesc := stringEnd(body, v)
		if vend < 0 {
			break
		}
		i = vend + 1
		ref, ok := stringValue(body[v:vend+1], vesc)
		if !ok {
			continue
		}
		to, ferr := fn(ref)
		if ferr != nil {
			return body, false, ferr
		}
		if to == ref {
			continue
		}
		out = append(out, body[last:v]...)
		out = append(out, MarshalNoEscape(to)...)
		last = vend + 1
		changed = true
	}
	if !changed {
		return body, false, nil
	}
	return append(out, body[last:]...), true, nil
}

// EachReference calls fn with the value of every "reference" element of body, as RewriteReferences
// finds them, until fn answers false.
func EachReference(body []byte, fn func(ref string) bool) {
	stop := errStop{}
	_, _, _ = RewriteReferences(body, func(ref string) (string, error) {
		if !fn(ref) {
			return ref, stop
		}
		return ref, nil
	})
}

type errStop struct{}

func (errStop) Error() string { return "stop" }

// stringEnd returns the index of the quote that closes the JSON string opening at b[i], and whether it
// holds an escape; -1 when it is not closed.
func stringEnd(b []byte, i int) (int, bool) {
	esc := false
	for j := i + 1; j < len(b); j++ {
		switch b[j] {
		case '\\':
			esc = true
			j++
		case '"':
			return j, esc
		}
	}
	return -1, esc
}

func skipSpace(b []byte, i int) int {
	for i < len(b) && (b[i] == ' ' || b[i] == '\t' || b[i] == '\n' || b[i] == '\r') {
		i++
	}
	return i
}

// isKey reports whether the quoted string q spells name; a key may spell any character as \uXXXX.
func isKey(q []byte, esc bool, name string) bool {
	if !esc {
		return string(q[1:len(q)-1]) == name
	}
	s, ok := stringValue(q, true)
	return ok && s == name
}

// stringValue decodes the quoted JSON string q.
func stringValue(q []byte, esc bool) (string, bool) {
	if !esc {
		return string(q[1 : len(q)-1]), true
	}
	var s string
	if json.Unmarshal(q, &s) != nil {
		return "", false
	}
	return s, true
}

// DecodeObject decodes a JSON object with its numbers as json.Number, so that a tree changed in Go and
// encoded again keeps each number as it was written (a float64 would turn 2.50 into 2.5, and lose
// digits past the 17th). Code that reads a number from such a tree reads a json.Number.
func DecodeObject(body []byte) (map[string]any, error) {
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.UseNumber()
	var m map[string]any
	if err := dec.Decode(&m); err != nil {
		return nil, err
	}
	if dec.More() {
		return nil, errors.New("unexpected data after the JSON object")
	}
	return m, nil
}
