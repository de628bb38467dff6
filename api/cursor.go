package api

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"net/http"
	"strings"
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
	bad := fail(http.StatusBadRequest, "invalid",
		"the paging link is not valid for this query: it was altered, or issued by a server with another key; start the search again")
	p, sig, ok := strings.Cut(cursor, ".")
	if !ok {
		return bad.at(cursorParam)
	}
	got, err := base64.RawURLEncoding.DecodeString(sig)
	if err != nil || !hmac.Equal(got, cs.mac(scope, p)) {
		return bad.at(cursorParam)
	}
	payload, err := base64.RawURLEncoding.DecodeString(p)
	if err != nil || json.Unmarshal(payload, dst) != nil {
		return bad.at(cursorParam)
	}
	return nil
}

func (cs *cursorSigner) mac(scope, payload string) []byte {
	m := hmac.New(sha256.New, cs.key)
	m.Write([]byte(scope))
	m.Write([]byte{0})
	m.Write([]byte(payload))
	return m.Sum(nil)
}
