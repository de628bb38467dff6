package conformance

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// fakeServer is a small in-memory FHIR server that keeps the rules the wrong-server tests look at:
// Patient and Organization with read, vread, create, update, delete, search by _id and _tag with paging,
// and instance history; bearer JWTs it signs itself; patients who see only their own record. Each
// break turns one rule off, so that a test can show that the suite notices exactly that.
type fakeServer struct {
	t      *testing.T
	mu     sync.Mutex
	breaks map[string]bool
	// versions holds every version of each resource, "Type/id" -> versions (nil for a deletion).
	versions map[string][]map[string]any
	order    []string
	next     int
	key      []byte
	url      string
}

// The breaks, one per class of check.
const (
	breakMissingIs200     = "a missing resource is 200"
	breakPlainTextErrors  = "errors are plain text, not OperationOutcome"
	breakNoETag           = "no ETag"
	breakLocationNoVer    = "Location without the version"
	breakNextRepeats      = "next link serves the first page again"
	breakUnsignedNext     = "next link state is not checked"
	breakIgnoreIfMatch    = "If-Match ignored"
	breakLeakPatients     = "a patient may read another's record"
	breakAnyToken         = "any bearer token accepted"
	breakAcceptWrongType  = "a body of another type is accepted"
	breakIgnoreIDParam    = "_id ignored in searches"
	breakMalformedIs500   = "malformed JSON is a 500"
	breakHistoryOldestTop = "history oldest first"
	breakStaleRead304     = "If-None-Match ignored"
	breakOperationMissing = "a declared operation is not served"
)

var fakeTypes = []string{"Patient", "Organization"}

func newFake(t *testing.T, breaks ...string) *fakeServer {
	f := &fakeServer{t: t, breaks: map[string]bool{}, versions: map[string][]map[string]any{}, key: []byte("fake-signing-key")}
	for _, b := range breaks {
		f.breaks[b] = true
	}
	// Two patients who are not the suite's: the patient roles' own records, and data a widened search
	// would show.
	f.put("Patient", "p1", map[string]any{"resourceType": "Patient", "name": []any{map[string]any{"family": "One"}}})
	f.put("Patient", "p2", map[string]any{"resourceType": "Patient", "name": []any{map[string]any{"family": "Two"}}})
	f.put("Organization", "o1", map[string]any{"resourceType": "Organization", "name": "Not the suite's"})
	f.put("Organization", "o2", map[string]any{"resourceType": "Organization", "name": "Not the suite's either"})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewUnstartedServer(http.HandlerFunc(f.serve))
	srv.Listener.Close()
	srv.Listener = ln
	srv.Start()
	t.Cleanup(srv.Close)
	f.url = srv.URL
	return f
}

// token signs claims the way the fake checks them: HS256 over header.payload.
func (f *fakeServer) token(claims map[string]any) string {
	h := encodeSegment(map[string]any{"alg": "HS256", "typ": "JWT"})
	p := encodeSegment(claims)
	m := hmac.New(sha256.New, f.key)
	m.Write([]byte(h + "." + p))
	return h + "." + p + "." + base64.RawURLEncoding.EncodeToString(m.Sum(nil))
}

// caller verifies the bearer token and returns its claims.
func (f *fakeServer) caller(r *http.Request) (map[string]any, bool) {
	tok, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	if !ok {
		return nil, false
	}
	if f.breaks[breakAnyToken] {
		_, claims, _ := splitJWT(tok)
		if claims == nil {
			claims = map[string]any{}
		}
		return claims, true
	}
	parts := strings.Split(tok, ".")
	if len(parts) != 3 {
		return nil, false
	}
	m := hmac.New(sha256.New, f.key)
	m.Write([]byte(parts[0] + "." + parts[1]))
	if !hmac.Equal(decodeSegment(parts[2]), m.Sum(nil)) {
		return nil, false
	}
	_, claims, ok := splitJWT(tok)
	return claims, ok
}

func (f *fakeServer) put(typ, id string, res map[string]any) map[string]any {
	k := typ + "/" + id
	res = clone(res)
	res["id"] = id
	meta, _ := res["meta"].(map[string]any)
	if meta == nil {
		meta = map[string]any{}
	}
	meta["versionId"] = strconv.Itoa(len(f.versions[k]) + 1)
	meta["lastUpdated"] = time.Now().UTC().Format("2006-01-02T15:04:05.000Z")
	res["meta"] = meta
	if _, ok := f.versions[k]; !ok {
		f.order = append(f.order, k)
	}
	f.versions[k] = append(f.versions[k], res)
	return res
}

func (f *fakeServer) current(typ, id string) (res map[string]any, known bool) {
	vs := f.versions[typ+"/"+id]
	if len(vs) == 0 {
		return nil, false
	}
	return vs[len(vs)-1], true
}

func (f *fakeServer) write(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/fhir+json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

func (f *fakeServer) fail(w http.ResponseWriter, status int, code, msg string) {
	if f.breaks[breakPlainTextErrors] {
		w.Header().Set("Content-Type", "text/plain")
		w.WriteHeader(status)
		fmt.Fprintln(w, msg)
		return
	}
	if status == http.StatusUnauthorized {
		w.Header().Set("WWW-Authenticate", `Bearer error="invalid_token"`)
	}
	f.write(w, status, map[string]any{"resourceType": "OperationOutcome",
		"issue": []any{map[string]any{"severity": "error", "code": code, "diagnostics": msg}}})
}

func (f *fakeServer) respond(w http.ResponseWriter, status int, res map[string]any, created bool) {
	v := str(res, "meta", "versionId")
	if !f.breaks[breakNoETag] {
		w.Header().Set("ETag", `W/"`+v+`"`)
	}
	if created {
		loc := f.url + "/" + str(res, "resourceType") + "/" + str(res, "id")
		if !f.breaks[breakLocationNoVer] {
			loc += "/_history/" + v
		}
		w.Header().Set("Location", loc)
	}
	f.write(w, status, res)
}

func (f *fakeServer) serve(w http.ResponseWriter, r *http.Request) {
	f.mu.Lock()
	defer f.mu.Unlock()
	path := strings.Trim(r.URL.Path, "/")
	if path == "metadata" {
		f.write(w, http.StatusOK, f.capabilities())
		return
	}
	claims, ok := f.caller(r)
	if !ok {
		f.fail(w, http.StatusUnauthorized, "login", "no valid bearer token")
		return
	}
	patient, _ := claims["patient"].(string)
	seg := strings.Split(path, "/")
	if !slices.Contains(fakeTypes, seg[0]) {
		f.fail(w, http.StatusNotFound, "not-supported", "unknown type "+seg[0])
		return
	}
	typ := seg[0]
	switch {
	case len(seg) == 1 && r.Method == http.MethodGet:
		f.search(w, r, typ, patient)
	case len(seg) == 1 && r.Method == http.MethodPost:
		f.create(w, r, typ)
	case len(seg) == 2 && seg[1] == "$ping" && !f.breaks[breakOperationMissing]:
		f.write(w, http.StatusOK, map[string]any{"resourceType": "Parameters",
			"parameter": []any{map[string]any{"name": "result", "valueString": "pong"}}})
	case len(seg) == 2 && r.Method == http.MethodGet:
		f.read(w, r, typ, seg[1], "", patient)
	case len(seg) == 2 && r.Method == http.MethodPut:
		f.update(w, r, typ, seg[1])
	case len(seg) == 2 && r.Method == http.MethodDelete:
		if _, known := f.current(typ, seg[1]); known {
			f.versions[typ+"/"+seg[1]] = append(f.versions[typ+"/"+seg[1]], nil)
		}
		w.WriteHeader(http.StatusNoContent)
	case len(seg) == 3 && seg[2] == "_history" && r.Method == http.MethodGet:
		f.history(w, typ, seg[1], patient)
	case len(seg) == 4 && seg[2] == "_history" && r.Method == http.MethodGet:
		f.read(w, r, typ, seg[1], seg[3], patient)
	default:
		f.fail(w, http.StatusMethodNotAllowed, "not-supported", "method not allowed")
	}
}

func (f *fakeServer) capabilities() map[string]any {
	var resources []any
	for _, t := range fakeTypes {
		var inter []any
		for _, c := range []string{"read", "vread", "create", "update", "delete", "search-type", "history-instance"} {
			inter = append(inter, map[string]any{"code": c})
		}
		res := map[string]any{"type": t, "interaction": inter, "versioning": "versioned",
			"conditionalRead": "full-support", "updateCreate": false,
			"searchParam": []any{map[string]any{"name": "_id", "type": "token"}, map[string]any{"name": "_tag", "type": "token"}}}
		if t == "Patient" {
			res["operation"] = []any{map[string]any{"name": "ping", "definition": "urn:fake:OperationDefinition/ping"}}
		}
		resources = append(resources, res)
	}
	return map[string]any{"resourceType": "CapabilityStatement", "status": "active", "date": "2026-01-01", "kind": "instance",
		"fhirVersion": "4.0.1", "format": []any{"json"},
		"rest": []any{map[string]any{"mode": "server", "resource": resources}}}
}

func (f *fakeServer) canSee(typ, id, patient string) bool {
	return patient == "" || typ != "Patient" || id == patient || f.breaks[breakLeakPatients]
}

func (f *fakeServer) read(w http.ResponseWriter, r *http.Request, typ, id, version, patient string) {
	vs := f.versions[typ+"/"+id]
	if len(vs) == 0 {
		if f.breaks[breakMissingIs200] {
			f.write(w, http.StatusOK, map[string]any{"resourceType": typ, "id": id})
			return
		}
		f.fail(w, http.StatusNotFound, "not-found", typ+"/"+id+" is not known")
		return
	}
	if !f.canSee(typ, id, patient) {
		f.fail(w, http.StatusForbidden, "forbidden", "not your record")
		return
	}
	res := vs[len(vs)-1]
	if version != "" {
		n, err := strconv.Atoi(version)
		if err != nil || n < 1 || n > len(vs) {
			f.fail(w, http.StatusNotFound, "not-found", "no such version")
			return
		}
		res = vs[n-1]
	}
	if res == nil {
		f.fail(w, http.StatusGone, "deleted", typ+"/"+id+" was deleted")
		return
	}
	if inm := r.Header.Get("If-None-Match"); inm != "" && !f.breaks[breakStaleRead304] && inm == `W/"`+str(res, "meta", "versionId")+`"` {
		w.WriteHeader(http.StatusNotModified)
		return
	}
	if ims := r.Header.Get("If-Modified-Since"); ims != "" {
		if t, err := http.ParseTime(ims); err == nil {
			lu, _ := time.Parse(time.RFC3339Nano, str(res, "meta", "lastUpdated"))
			if !lu.Truncate(time.Second).After(t) {
				w.WriteHeader(http.StatusNotModified)
				return
			}
		}
	}
	f.respond(w, http.StatusOK, res, false)
}

func (f *fakeServer) body(w http.ResponseWriter, r *http.Request, typ string) (map[string]any, bool) {
	raw, _ := io.ReadAll(r.Body)
	var res map[string]any
	if err := json.Unmarshal(raw, &res); err != nil {
		if f.breaks[breakMalformedIs500] {
			f.fail(w, http.StatusInternalServerError, "exception", "internal error")
			return nil, false
		}
		f.fail(w, http.StatusBadRequest, "structure", "not a JSON resource: "+err.Error())
		return nil, false
	}
	if rt := str(res, "resourceType"); rt != typ && !f.breaks[breakAcceptWrongType] {
		f.fail(w, http.StatusBadRequest, "invalid", "the body is a "+rt+", the URL is for "+typ)
		return nil, false
	}
	return res, true
}

func (f *fakeServer) create(w http.ResponseWriter, r *http.Request, typ string) {
	res, ok := f.body(w, r, typ)
	if !ok {
		return
	}
	f.next++
	f.respond(w, http.StatusCreated, f.put(typ, fmt.Sprintf("f%d", f.next), res), true)
}

func (f *fakeServer) update(w http.ResponseWriter, r *http.Request, typ, id string) {
	res, ok := f.body(w, r, typ)
	if !ok {
		return
	}
	if str(res, "id") != id {
		f.fail(w, http.StatusBadRequest, "invalid", "the body's id does not match the URL")
		return
	}
	cur, known := f.current(typ, id)
	if im := r.Header.Get("If-Match"); im != "" && known && !f.breaks[breakIgnoreIfMatch] && im != `W/"`+str(cur, "meta", "versionId")+`"` {
		f.fail(w, http.StatusPreconditionFailed, "conflict", "version mismatch")
		return
	}
	status := http.StatusOK
	if !known {
		status = http.StatusCreated
	}
	f.respond(w, status, f.put(typ, id, res), !known)
}

func hasTag(res map[string]any, tag string) bool {
	sys, code, _ := strings.Cut(tag, "|")
	for _, t := range list(res, "meta", "tag") {
		if str(t, "system") == sys && str(t, "code") == code {
			return true
		}
	}
	return false
}

// sig signs a paging link's query, so that an edited link is refused.
func (f *fakeServer) sig(q url.Values) string {
	q = cloneValues(q)
	q.Del("_sig")
	m := hmac.New(sha256.New, f.key)
	m.Write([]byte(q.Encode()))
	return hex.EncodeToString(m.Sum(nil))[:16]
}

func cloneValues(v url.Values) url.Values {
	out := url.Values{}
	for k, vs := range v {
		out[k] = append([]string(nil), vs...)
	}
	return out
}

func (f *fakeServer) search(w http.ResponseWriter, r *http.Request, typ, patient string) {
	q := r.URL.Query()
	if q.Has("_offset") && !f.breaks[breakUnsignedNext] && q.Get("_sig") != f.sig(q) {
		f.fail(w, http.StatusBadRequest, "invalid", "the paging link was altered")
		return
	}
	for k := range q {
		switch k {
		case "_id", "_tag", "_count", "_offset", "_sig":
		default:
			if r.Header.Get("Prefer") == "handling=strict" {
				f.fail(w, http.StatusBadRequest, "not-supported", "unknown parameter "+k)
				return
			}
		}
	}
	var hits []map[string]any
	for _, k := range f.order {
		t, id, _ := strings.Cut(k, "/")
		res, _ := f.current(t, id)
		if t != typ || res == nil || (patient != "" && t == "Patient" && id != patient) {
			continue
		}
		if tag := q.Get("_tag"); tag != "" && !hasTag(res, tag) {
			continue
		}
		if ids := q.Get("_id"); ids != "" && !f.breaks[breakIgnoreIDParam] && !slices.Contains(strings.Split(ids, ","), id) {
			continue
		}
		hits = append(hits, res)
	}
	count, err := strconv.Atoi(q.Get("_count"))
	if err != nil || count <= 0 {
		count = 20
	}
	offset, _ := strconv.Atoi(q.Get("_offset"))
	if f.breaks[breakNextRepeats] {
		offset = 0
	}
	self := cloneValues(q)
	self.Del("_offset")
	self.Del("_sig")
	bundle := map[string]any{"resourceType": "Bundle", "type": "searchset",
		"link": []any{map[string]any{"relation": "self", "url": f.url + "/" + typ + "?" + self.Encode()}}}
	var entries []any
	for i := offset; i < len(hits) && i < offset+count; i++ {
		entries = append(entries, map[string]any{"fullUrl": f.url + "/" + typ + "/" + str(hits[i], "id"),
			"resource": hits[i], "search": map[string]any{"mode": "match"}})
	}
	bundle["entry"] = entries
	if offset+count < len(hits) {
		next := cloneValues(self)
		next.Set("_offset", strconv.Itoa(offset+count))
		next.Set("_sig", f.sig(next))
		bundle["link"] = append(bundle["link"].([]any), map[string]any{"relation": "next", "url": f.url + "/" + typ + "?" + next.Encode()})
	}
	f.write(w, http.StatusOK, bundle)
}

func (f *fakeServer) history(w http.ResponseWriter, typ, id, patient string) {
	vs := f.versions[typ+"/"+id]
	if len(vs) == 0 {
		f.fail(w, http.StatusNotFound, "not-found", "unknown")
		return
	}
	if !f.canSee(typ, id, patient) {
		f.fail(w, http.StatusForbidden, "forbidden", "not your record")
		return
	}
	var entries []any
	for i := len(vs) - 1; i >= 0; i-- {
		method := "PUT"
		if i == 0 {
			method = "POST"
		}
		en := map[string]any{"request": map[string]any{"method": method, "url": typ + "/" + id},
			"response": map[string]any{"status": "200"}}
		if vs[i] == nil {
			en["request"] = map[string]any{"method": "DELETE", "url": typ + "/" + id}
		} else {
			en["resource"] = vs[i]
		}
		entries = append(entries, en)
	}
	if f.breaks[breakHistoryOldestTop] {
		slices.Reverse(entries)
	}
	f.write(w, http.StatusOK, map[string]any{"resourceType": "Bundle", "type": "history", "entry": entries})
}
