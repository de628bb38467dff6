package fhir

import (
	"bytes"
	"encoding/json"
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

// Marshal renders the bundle, resourceType first, without HTML escaping. It fails only if an entry's
// Resource or Outcome is not valid JSON.
func (b *Bundle) Marshal() ([]byte, error) {
	if b.ResourceType == "" {
		b.ResourceType = "Bundle"
	}
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(b); err != nil {
		return nil, err
	}
	return bytes.TrimSuffix(buf.Bytes(), []byte("\n")), nil
}

// WeakETag renders a version as the weak ETag FHIR uses: W/"3".
func WeakETag(version string) string { return `W/"` + version + `"` }
