package api

import (
	"net/http"
	"slices"
	"testing"

	"github.com/gpfhir/gpfhir/store"
)

// FuzzCursor: whatever arrives as _cursor is refused as a bad paging link (400) or decodes to a position,
// never a panic; and a cursor is only ever accepted for the scope it was made for.
func FuzzCursor(f *testing.F) {
	cs, err := newCursorSigner([]byte("0123456789abcdef0123456789abcdef"))
	if err != nil {
		f.Fatal(err)
	}
	good, err := cs.sign("Patient?family=x", []any{"x", int64(5), "id"})
	if err != nil {
		f.Fatal(err)
	}
	for _, s := range []string{good, "", "garbage", "AAAA", good + "A", good[:len(good)-2], "W10.AAAA", "%zz"} {
		f.Add("Patient?family=x", s)
	}
	f.Fuzz(func(t *testing.T, scope, cursor string) {
		pos, aerr := cs.openPosition(scope, cursor)
		if aerr != nil {
			if aerr.status() != http.StatusBadRequest {
				t.Fatalf("a bad cursor answered %d", aerr.status())
			}
			return
		}
		// Each fuzz worker seals its own good cursor (the nonce is random), so what is checked is what a
		// cursor that opens says: the issued position, for the scope it was issued for.
		want := []store.SortValue{{Str: "x"}, {Int: 5, IsInt: true}, {Str: "id"}}
		if scope != "Patient?family=x" || !slices.Equal(pos, want) {
			t.Fatalf("cursor %q accepted for scope %q (position %v): only an issued cursor with its own scope may open", cursor, scope, pos)
		}
	})
}

// FuzzPatch: any JSON Patch document against a stored body is refused with a 4xx or applied, never a panic.
func FuzzPatch(f *testing.F) {
	body := []byte(`{"resourceType":"Patient","id":"p","meta":{"versionId":"1"},"name":[{"family":"Smith","given":["A"]}],"active":true}`)
	for _, s := range []string{
		`[{"op":"replace","path":"/active","value":false}]`,
		`[{"op":"add","path":"/name/0/given/-","value":"B"}]`,
		`[{"op":"remove","path":"/name/0"}]`,
		`[{"op":"test","path":"/active","value":false}]`,
		`[{"op":"move","from":"/name","path":"/name/0"}]`,
		`[{"op":"copy","from":"/name","path":"/name/-"}]`,
		`[{"op":"replace","path":"/name/-1/family","value":"x"}]`,
		`[{"op":"$where","path":"/"}]`, `{}`, `[]`, `[1]`, `null`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, raw []byte) {
		ops, aerr := decodePatch(raw)
		if aerr != nil {
			if s := aerr.status(); s < 400 || s >= 500 {
				t.Fatalf("decodePatch(%q) answered %d", raw, s)
			}
			return
		}
		if _, aerr := applyPatch(ops, body); aerr != nil {
			if s := aerr.status(); s < 400 || s >= 500 {
				t.Fatalf("applyPatch(%q) answered %d", raw, s)
			}
		}
	})
}
