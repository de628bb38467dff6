package api

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"strconv"
	"strings"

	"github.com/gpfhir/gpfhir/store"
)

// cursorSigner makes and checks paging cursors. A cursor is a keyset position (the sort values of the last
// entry served), encrypted and authenticated (AES-GCM) together with the canonical query it belongs to and
// the caller it was issued to. Nothing is kept on the server, so any process sharing the key can serve
// the next page; a link whose query or position was edited, or that another caller replays, fails the
// check instead of widening the search; and the sort values (a family name, a birth date) never appear
// in clear in URLs that proxies and browsers log.
type cursorSigner struct {
	aead cipher.AEAD
}

func newCursorSigner(key []byte) (*cursorSigner, error) {
	aead, err := derivedAEAD(key, "gpfhir paging cursors v2")
	if err != nil {
		return nil, err
	}
	return &cursorSigner{aead: aead}, nil
}

// derivedAEAD is AES-256-GCM under a key of its own for each purpose, derived from the configured key,
// so that what one purpose seals (a paging cursor, a dashboard cookie) can never be passed off as the
// other's.
func derivedAEAD(key []byte, purpose string) (cipher.AEAD, error) {
	mac := hmac.New(sha256.New, key)
	mac.Write([]byte(purpose))
	block, err := aes.NewCipher(mac.Sum(nil))
	if err != nil {
		return nil, err
	}
	return cipher.NewGCM(block)
}

// cursorParam is the query parameter that carries a cursor in paging links.
const cursorParam = "_cursor"

// cursorScope binds a cursor to the query it pages through and to the caller: the issuer, subject and
// client of the token. A link that leaks (into a log, or to another app) pages for no one else.
func cursorScope(req *request, query string) string {
	var b strings.Builder
	b.WriteString(query)
	if c := req.caller; c != nil {
		for _, part := range []string{c.Issuer, c.Subject, c.ClientID, c.ProxyFor} {
			b.WriteByte(0)
			b.WriteString(part)
		}
	}
	return b.String()
}

func (cs *cursorSigner) sign(scope string, position any) (string, error) {
	payload, err := json.Marshal(position)
	if err != nil {
		return "", err
	}
	nonce := make([]byte, cs.aead.NonceSize(), cs.aead.NonceSize()+len(payload)+cs.aead.Overhead())
	if _, err := rand.Read(nonce); err != nil {
		return "", err
	}
	return base64.RawURLEncoding.EncodeToString(cs.aead.Seal(nonce, nonce, payload, []byte(scope))), nil
}

// open checks a cursor against the scope it arrived with and decodes its position into dst.
func (cs *cursorSigner) open(scope, cursor string, dst any) *apiError {
	raw, err := base64.RawURLEncoding.DecodeString(cursor)
	if err != nil || len(raw) < cs.aead.NonceSize()+cs.aead.Overhead() {
		return badCursor()
	}
	n := cs.aead.NonceSize()
	payload, err := cs.aead.Open(nil, raw[:n], raw[n:], []byte(scope))
	if err != nil || json.Unmarshal(payload, dst) != nil {
		return badCursor()
	}
	return nil
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
		"the paging link is not valid for this query and caller: it was altered, issued to another caller, or issued by a server with another key; start the search again").at(cursorParam)
}
