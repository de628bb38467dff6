package api

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"strconv"
	"strings"

	"github.com/gpfhir/gpfhir/store"
)

// cursorSigner makes and checks paging cursors. A cursor is a keyset position (the sort values of the last
// entry served) plus an HMAC over that position and the canonical query it belongs to. Nothing is kept on
// the server, so any process sharing the key can serve the next page, and a link whose query or position
// was edited fails the check instead of widening the search.
type cursorSigner struct {
	key []byte
}

// cursorParam is the query parameter that carries a cursor in paging links.
const cursorParam = "_cursor"

func (cs *cursorSigner) sign(scope string, position any) (string, error) {
	payload, err := json.Marshal(position)
	if err != nil {
		return "", err
	}
	p := base64.RawURLEncoding.EncodeToString(payload)
	return p + "." + base64.RawURLEncoding.EncodeToString(cs.mac(scope, p)), nil
}

// open verifies a cursor against the query it arrived with and decodes its position into dst.
func (cs *cursorSigner) open(scope, cursor string, dst any) *apiError {
	bad := badCursor()
	p, sig, ok := strings.Cut(cursor, ".")
	if !ok {
		return bad
	}
	got, err := base64.RawURLEncoding.DecodeString(sig)
	if err != nil || !hmac.Equal(got, cs.mac(scope, p)) {
		return bad
	}
	payload, err := base64.RawURLEncoding.DecodeString(p)
	if err != nil || json.Unmarshal(payload, dst) != nil {
		return bad
	}
	return nil
}

// mac is HMAC-SHA256 truncated to 128 bits (as RFC 2104 allows), which keeps links short and is still far
// beyond guessing.
func (cs *cursorSigner) mac(scope, payload string) []byte {
	m := hmac.New(sha256.New, cs.key)
	m.Write([]byte(scope))
	m.Write([]byte{0})
	m.Write([]byte(payload))
	return m.Sum(nil)[:16]
}

// signPosition signs a keyset position compactly: a JSON array of its values, strings as strings and
// integers as numbers (`["smith",1700000000000,"p1"]`), rather than the field names of store.SortValue.
func (cs *cursorSigner) signPosition(scope string, after []store.SortValue) (string, error) {
	vals := make([]any, len(after))
	for i, v := range after {
		if v.IsInt {
			vals[i] = v.Int
		} else {
			vals[i] = v.Str
		}
	}
	return cs.sign(scope, vals)
}

// openPosition verifies a cursor made by signPosition and returns its position.
func (cs *cursorSigner) openPosition(scope, cursor string) ([]store.SortValue, *apiError) {
	var vals []json.RawMessage
	if err := cs.open(scope, cursor, &vals); err != nil {
		return nil, err
	}
	out := make([]store.SortValue, len(vals))
	for i, raw := range vals {
		var str string
		if json.Unmarshal(raw, &str) == nil {
			out[i] = store.SortValue{Str: str}
			continue
		}
		n, err := strconv.ParseInt(string(raw), 10, 64)
		if err != nil {
			return nil, badCursor()
		}
		out[i] = store.SortValue{Int: n, IsInt: true}
	}
	return out, nil
}

// pageLink is the URL of a paging link for a cursor scope ("Type?query" as signed) and a cursor ("" for
// the self link): the scope stays what is signed, but the link carries no empty query ("Type?") and no
// empty parameter ("?&_cursor=").
func pageLink(scope, cursor string) string {
	path, q, _ := strings.Cut(scope, "?")
	if cursor != "" {
		if q != "" {
			q += "&"
		}
		q += cursorParam + "=" + cursor
	}
	if q == "" {
		return path
	}
	return path + "?" + q
}

func badCursor() *apiError {
	return fail(kindInvalid,
		"the paging link is not valid for this query: it was altered, or issued by a server with another key; start the search again").at(cursorParam)
}
