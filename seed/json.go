package seed

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strconv"
)

// kv is one member of a JSON object. obj keeps members in the order written, so that a resource reads
// the way FHIR examples do (resourceType and id first) and the output never depends on map order.
type kv struct {
	k string
	v any
}

// obj is an ordered JSON object. Members whose value is nil, an empty string or an empty obj/arr are
// left out: FHIR forbids empty values, so omitting them is always right.
type obj []kv

// arr is a JSON array.
type arr []any

func isEmpty(v any) bool {
	switch x := v.(type) {
	case nil:
		return true
	case string:
		return x == ""
	case obj:
		return len(x) == 0
	case arr:
		return len(x) == 0
	}
	return false
}

// encode renders v as compact JSON with no HTML escaping ("Merck Sharp & Dohme" stays readable).
func encode(v any) []byte {
	var b bytes.Buffer
	write(&b, v)
	return b.Bytes()
}

func write(b *bytes.Buffer, v any) {
	switch x := v.(type) {
	case obj:
		b.WriteByte('{')
		first := true
		for _, m := range x {
			if isEmpty(m.v) {
				continue
			}
			if !first {
				b.WriteByte(',')
			}
			first = false
			writeString(b, m.k)
			b.WriteByte(':')
			write(b, m.v)
		}
		b.WriteByte('}')
	case arr:
		b.WriteByte('[')
		for i, e := range x {
			if i > 0 {
				b.WriteByte(',')
			}
			write(b, e)
		}
		b.WriteByte(']')
	case string:
		writeString(b, x)
	case bool:
		if x {
			b.WriteString("true")
		} else {
			b.WriteString("false")
		}
	case int:
		fmt.Fprintf(b, "%d", x)
	case float64:
		// The shortest form that reads back as x: a FHIR decimal, the same on every machine.
		b.WriteString(strconv.FormatFloat(x, 'f', -1, 64))
	default:
		panic(fmt.Sprintf("seed: cannot encode %T", v))
	}
}

func writeString(b *bytes.Buffer, s string) {
	var tmp bytes.Buffer
	enc := json.NewEncoder(&tmp)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(s); err != nil {
		panic(err) // a Go string always encodes
	}
	b.Write(bytes.TrimSuffix(tmp.Bytes(), []byte("\n")))
}
