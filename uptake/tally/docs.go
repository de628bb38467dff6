package tally

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"time"

	"github.com/gpfhir/gpfhir/store"
	"github.com/gpfhir/gpfhir/uptake"
)

// The internal resource types. FHIR type names start with a capital letter, so these can never be one.
const (
	TypeCheckpoint = "gpfhir-uptake-checkpoint"
	TypeCounts     = "gpfhir-uptake-counts"
	TypeUser       = "gpfhir-uptake-user"
	TypeCensus     = "gpfhir-uptake-census"
)

// checkpointID is the projector's one checkpoint document.
const checkpointID = "audit"

// Unattributed is the practice key of refusals that cannot be tied to a practice: no GP record is
// linked (by definition), or the caller gave no NHS number.
const Unattributed = "unattributed"

// docID names the document of one practice and month.
func docID(p uptake.Period, practice string) string { return p.String() + "." + practice }

// checkpoint is how far the projector has counted: the Seq of the last audit record counted.
type checkpoint struct {
	ResourceType string `json:"resourceType"`
	ID           string `json:"id"`
	Seq          int64  `json:"seq"`
}

// countsDoc is one practice's counts for one month.
type countsDoc struct {
	ResourceType string `json:"resourceType"`
	ID           string `json:"id"`
	Period       string `json:"period"`
	Practice     string `json:"practice"`
	uptake.Counts
}

// marker says that one person was counted as a user (or a proxy user) of one practice in one month, so
// that each is counted once. It is written once, with compare-and-swap on its absence, and never
// changed: a set kept in one document would be rewritten, and versioned, on every step that adds to it.
type marker struct {
	ResourceType string `json:"resourceType"`
	ID           string `json:"id"`
}

// markerID names the marker of a user (a Patient id) or a proxy (pseudonym) of a practice-month.
func markerID(p uptake.Period, practice, kind, who string) string {
	return docID(p, practice) + "." + kind + "." + who
}

// censusDoc is one practice's census for one month.
type censusDoc struct {
	ResourceType string `json:"resourceType"`
	ID           string `json:"id"`
	Period       string `json:"period"`
	Practice     string `json:"practice"`
	uptake.Census
}

// pseudonym stands for an NHS number in a marker's id: it tells one person from another without
// writing the number down. It is a plain hash, so it hides the number from a casual reader only.
func pseudonym(nhs string) string {
	sum := sha256.Sum256([]byte("gpfhir uptake person\x00" + nhs))
	return hex.EncodeToString(sum[:8])
}

// indexOf is the index of a document of one practice and month.
func indexOf(period, practice string) []store.IndexEntry {
	return []store.IndexEntry{{Param: "period", Value: period}, {Param: "practice", Value: practice}}
}

// Index returns the index entries of a stored tally document, ok false for any other type: the ones the
// tally wrote it with, for `gpfhir store copy`, which rebuilds FHIR resources' entries from their bodies.
func Index(typ string, body []byte) (entries []store.IndexEntry, ok bool) {
	switch typ {
	case TypeCounts, TypeCensus:
		var d struct {
			Period   string `json:"period"`
			Practice string `json:"practice"`
		}
		if json.Unmarshal(body, &d) != nil || d.Period == "" {
			return nil, true
		}
		return indexOf(d.Period, d.Practice), true
	case TypeUser, TypeCheckpoint:
		return nil, true
	}
	return nil, false
}

// write is a compare-and-swap write of a document as version cur+1.
func write(typ, id string, cur int64, doc any, index []store.IndexEntry, now time.Time) (store.Write, error) {
	body, err := json.Marshal(doc)
	if err != nil {
		return store.Write{}, err
	}
	return store.Write{
		Resource:      store.Resource{Type: typ, ID: id, VersionID: cur + 1, LastUpdated: now.UTC().Truncate(time.Millisecond), Body: body},
		ExpectVersion: cur,
		Index:         index,
	}, nil
}

// get reads the current version of a document into doc; version 0 when there is none.
func get(ctx context.Context, st store.Store, typ, id string, doc any) (int64, error) {
	r, err := st.Get(ctx, typ, id)
	if errors.Is(err, store.ErrNotFound) {
		return 0, nil
	}
	if err != nil {
		return 0, err
	}
	if r.Deleted || len(r.Body) == 0 {
		return r.VersionID, nil
	}
	return r.VersionID, json.Unmarshal(r.Body, doc)
}
