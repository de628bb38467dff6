package fhir

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strconv"
)

// Bundle types gpfhir produces or accepts.
const (
	BundleSearchset           = "searchset"
	BundleHistory             = "history"
	BundleTransaction         = "transaction"
	BundleTransactionResponse = "transaction-response"
	BundleBatch               = "batch"
	BundleBatchResponse       = "batch-response"
)

// Search entry modes.
const (
	SearchModeMatch   = "match"
	SearchModeInclude = "include"
	SearchModeOutcome = "outcome"
)

// Bundle is a FHIR Bundle whose entries carry resources as raw JSON, so that the API splices stored bytes
// into a response without re-marshalling them, and reads a transaction's entries without parsing each
// resource twice. Build it with NewBundle so ResourceType is set.
type Bundle struct {
	ResourceType string        `json:"resourceType"`
	ID           string        `json:"id,omitempty"`
	Meta         *BundleMeta   `json:"meta,omitempty"`
	Type         string        `json:"type"`
	Total        *int          `json:"total,omitempty"`
	Link         []BundleLink  `json:"link,omitempty"`
	Entry        []BundleEntry `json:"entry,omitempty"`
}

// BundleMeta is the Bundle's meta; LastUpdated is a FormatInstant string.
type BundleMeta struct {
	LastUpdated string `json:"lastUpdated,omitempty"`
}

// BundleLink is a paging or self link.
type BundleLink struct {
	Relation string `json:"relation"`
	URL      string `json:"url"`
}

// BundleEntry is one entry. Resource holds the resource's JSON exactly as stored.
type BundleEntry struct {
	FullURL  string          `json:"fullUrl,omitempty"`
	Resource json.RawMessage `json:"resource,omitempty"`
	Search   *EntrySearch    `json:"search,omitempty"`
	Request  *EntryRequest   `json:"request,omitempty"`
	Response *EntryResponse  `json:"response,omitempty"`
}

// EntrySearch says why an entry is in a searchset.
type EntrySearch struct {
	Mode  string   `json:"mode,omitempty"`
	Score *float64 `json:"score,omitempty"`
}

// EntryRequest is the request of a transaction or history entry.
type EntryRequest struct {
	Method      string `json:"method"`
	URL         string `json:"url"`
	IfMatch     string `json:"ifMatch,omitempty"`
	IfNoneExist string `json:"ifNoneExist,omitempty"`
	// IfNoneMatch and IfModifiedSince make a GET entry conditional, as the headers do a read.
	IfNoneMatch     string `json:"ifNoneMatch,omitempty"`
	IfModifiedSince string `json:"ifModifiedSince,omitempty"`
}

// EntryResponse is the outcome of one transaction entry. LastModified is a FormatInstant string; Outcome
// an OperationOutcome's JSON.
type EntryResponse struct {
	Status       string          `json:"status"`
	Location     string          `json:"location,omitempty"`
	Etag         string          `json:"etag,omitempty"`
	LastModified string          `json:"lastModified,omitempty"`
	Outcome      json.RawMessage `json:"outcome,omitempty"`
}

// NewBundle returns an empty Bundle of the given type.
func NewBundle(typ string) *Bundle {
	return &Bundle{ResourceType: "Bundle", Type: typ}
}

// Marshal renders the bundle, resourceType first, without HTML escaping, in the bytes encoding/json
// would write for the same fields. It fails only if an entry's Resource or Outcome is not a JSON object.
//
// It is written out by hand because encoding/json re-scans a RawMessage to validate and compact it:
// the stored bytes of every resource on the page, which the store holds compact and which were
// validated when they were written. That scan was three quarters of a searchset's rendering, about 4%
// of a server's CPU under compartment searches (gpfhir bench, pprof). A Resource or Outcome is spliced
// as it is, its surrounding white space trimmed.
func (b *Bundle) Marshal() ([]byte, error) {
	if b.ResourceType == "" {
		b.ResourceType = "Bundle"
	}
	size := 256
	for _, e := range b.Entry {
		size += len(e.Resource) + len(e.FullURL) + 64
		if e.Response != nil {
			size += len(e.Response.Outcome) + 128
		}
	}
	w := &jsonWriter{buf: make([]byte, 0, size)}
	w.raw(`{"resourceType":`)
	w.str(b.ResourceType)
	if b.ID != "" {
		w.raw(`,"id":`)
		w.str(b.ID)
	}
	if b.Meta != nil {
		w.raw(`,"meta":{`)
		if b.Meta.LastUpdated != "" {
			w.raw(`"lastUpdated":`)
			w.str(b.Meta.LastUpdated)
		}
		w.raw(`}`)
	}
	w.raw(`,"type":`)
	w.str(b.Type)
	if b.Total != nil {
		w.raw(`,"total":`)
		w.buf = strconv.AppendInt(w.buf, int64(*b.Total), 10)
	}
	if len(b.Link) > 0 {
		w.raw(`,"link":[`)
		for i, l := range b.Link {
			if i > 0 {
				w.raw(`,`)
			}
			w.raw(`{"relation":`)
			w.str(l.Relation)
			w.raw(`,"url":`)
			w.str(l.URL)
			w.raw(`}`)
		}
		w.raw(`]`)
	}
	if len(b.Entry) > 0 {
		w.raw(`,"entry":[`)
		for i := range b.Entry {
			if i > 0 {
				w.raw(`,`)
			}
			w.entry(&b.Entry[i])
		}
		w.raw(`]`)
	}
	w.raw(`}`)
	return w.buf, w.err
}

// jsonWriter appends JSON to buf; err is the first failure.
type jsonWriter struct {
	buf []byte
	err error
}

func (w *jsonWriter) raw(s string) { w.buf = append(w.buf, s...) }

// str appends s as encoding/json writes a string without HTML escaping. Strings of printable ASCII
// without a quote or a backslash (nearly all: URLs, ids, codes, instants) are copied; any other goes
// through encoding/json itself, so that the escaping is its own.
func (w *jsonWriter) str(s string) {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < 0x20 || c > 0x7e || c == '"' || c == '\\' {
			var sb bytes.Buffer
			enc := json.NewEncoder(&sb)
			enc.SetEscapeHTML(false)
			if err := enc.Encode(s); err != nil && w.err == nil {
				w.err = err
			}
			w.buf = append(w.buf, bytes.TrimSuffix(sb.Bytes(), []byte("\n"))...)
			return
		}
	}
	w.buf = append(w.buf, '"')
	w.buf = append(w.buf, s...)
	w.buf = append(w.buf, '"')
}

// object appends a resource or outcome's JSON as it is, after checking that it is an object.
func (w *jsonWriter) object(field string, v json.RawMessage) {
	v = bytes.TrimSpace(v)
	if len(v) < 2 || v[0] != '{' || v[len(v)-1] != '}' {
		if w.err == nil {
			w.err = fmt.Errorf("fhir: a bundle entry's %s is not a JSON object", field)
		}
		return
	}
	w.buf = append(w.buf, v...)
}

func (w *jsonWriter) entry(e *BundleEntry) {
	w.raw(`{`)
	sep := ""
	field := func(name string) {
		w.raw(sep)
		w.raw(`"`)
		w.raw(name)
		w.raw(`":`)
		sep = ","
	}
	if e.FullURL != "" {
		field("fullUrl")
		w.str(e.FullURL)
	}
	if len(e.Resource) > 0 {
		field("resource")
		w.object("resource", e.Resource)
	}
	if s := e.Search; s != nil {
		field("search")
		w.raw(`{`)
		if s.Mode != "" {
			w.raw(`"mode":`)
			w.str(s.Mode)
		}
		if s.Score != nil {
			if s.Mode != "" {
				w.raw(`,`)
			}
			w.raw(`"score":`)
			score, err := json.Marshal(*s.Score)
			if err != nil && w.err == nil {
				w.err = err
			}
			w.buf = append(w.buf, score...)
		}
		w.raw(`}`)
	}
	if r := e.Request; r != nil {
		field("request")
		w.raw(`{"method":`)
		w.str(r.Method)
		w.raw(`,"url":`)
		w.str(r.URL)
		for _, f := range [...]struct{ name, v string }{{"ifMatch", r.IfMatch}, {"ifNoneExist", r.IfNoneExist},
			{"ifNoneMatch", r.IfNoneMatch}, {"ifModifiedSince", r.IfModifiedSince}} {
			if f.v != "" {
				w.raw(`,"`)
				w.raw(f.name)
				w.raw(`":`)
				w.str(f.v)
			}
		}
		w.raw(`}`)
	}
	if r := e.Response; r != nil {
		field("response")
		w.raw(`{"status":`)
		w.str(r.Status)
		for _, f := range [...]struct{ name, v string }{{"location", r.Location}, {"etag", r.Etag}, {"lastModified", r.LastModified}} {
			if f.v != "" {
				w.raw(`,"`)
				w.raw(f.name)
				w.raw(`":`)
				w.str(f.v)
			}
		}
		if len(r.Outcome) > 0 {
			w.raw(`,"outcome":`)
			w.object("outcome", r.Outcome)
		}
		w.raw(`}`)
	}
	w.raw(`}`)
}

// WeakETag renders a version as the weak ETag FHIR uses: W/"3".
func WeakETag(version string) string { return `W/"` + version + `"` }
