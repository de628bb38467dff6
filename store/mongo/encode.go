package mongo

import (
	"slices"
	"strconv"
	"strings"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"

	"github.com/gpfhir/gpfhir/store"
)

// Field names of a current-version document in res_<Type>.
const (
	fVersion = "v"    // int64 versionId
	fLU      = "lu"   // int64 lastUpdated, Unix milliseconds
	fDeleted = "del"  // bool, tombstone
	fBody    = "body" // binary, the JSON served
	fJournal = "jr"   // ObjectID of the journal group that last wrote the document (journal mode)
	fPresent = "p"    // []string: params that have at least one entry
	fTok     = "tk"   // []string: "param|system|code" for every entry but dates and numbers, code or not
	fVal     = "vx"   // []string: "param|value" (exact strings, references, uris, any-system tokens)
	fText    = "tx"   // []string: "param|normalised text" (string prefix/contains, token :text)
	fSort    = "s"    // sub-document: param -> lowest sort value (string or int64)
	fRange   = "rg"   // []{p,lo,hi}: the raw date/number entries, source of idx, read by postponed ranges
)

// curDoc is the decoded form of a current-version document.
type curDoc struct {
	ID      string        `bson:"_id"`
	Version int64         `bson:"v"`
	LU      int64         `bson:"lu"`
	Deleted bool          `bson:"del"`
	Body    []byte        `bson:"body"`
	Journal bson.ObjectID `bson:"jr,omitempty"`
	Present []string      `bson:"p,omitempty"`
	Tok     []string      `bson:"tk,omitempty"`
	Val     []string      `bson:"vx,omitempty"`
	Text    []string      `bson:"tx,omitempty"`
	Sort    bson.M        `bson:"s,omitempty"`
	Range   []rangeEntry  `bson:"rg,omitempty"`
}

// rangeEntry is one date or number entry.
type rangeEntry struct {
	Param string `bson:"p"`
	Low   int64  `bson:"lo"`
	High  int64  `bson:"hi"`
}

// idxDoc is one document of the idx collection.
type idxDoc struct {
	Type    string        `bson:"t"`
	ID      string        `bson:"r"`
	Param   string        `bson:"p"`
	Low     int64         `bson:"lo"`
	High    int64         `bson:"hi"`
	Journal bson.ObjectID `bson:"jr,omitempty"`
}

// histDoc is one version in the history collection.
type histDoc struct {
	Key     string        `bson:"_id"` // histKey(t, r, v)
	Type    string        `bson:"t"`
	ID      string        `bson:"r"`
	Version int64         `bson:"v"`
	LU      int64         `bson:"lu"`
	Deleted bool          `bson:"del"`
	Body    []byte        `bson:"body"`
	Journal bson.ObjectID `bson:"jr,omitempty"`
}

func histKey(typ, id string, v int64) string {
	return typ + "/" + id + "/" + strconv.FormatInt(v, 10)
}

// isRange says whether an entry is a date/number entry (only Low/High used).
func isRange(e store.IndexEntry) bool { return e.Value == "" && e.Text == "" && e.System == "" }

// newCurDoc builds the current-version document of r with its index entries.
func newCurDoc(r store.Resource, index []store.IndexEntry, jr bson.ObjectID) curDoc {
	d := curDoc{
		ID:      r.ID,
		Version: r.VersionID,
		LU:      millis(r.LastUpdated),
		Deleted: r.Deleted,
		Body:    r.Body,
		Journal: jr,
	}
	if d.Body == nil {
		d.Body = []byte{}
	}
	if r.Deleted {
		return d
	}
	setIndex(&d, index)
	return d
}

// setIndex fills the index fields of d from entries.
func setIndex(d *curDoc, index []store.IndexEntry) {
	d.Present, d.Tok, d.Val, d.Text, d.Sort, d.Range = nil, nil, nil, nil, nil, nil
	present := map[string]bool{}
	seen := map[string]bool{}
	add := func(dst *[]string, s string) {
		if !seen[s] {
			seen[s] = true
			*dst = append(*dst, s)
		}
	}
	for _, e := range index {
		if !present[e.Param] {
			present[e.Param] = true
			d.Present = append(d.Present, e.Param)
		}
		if isRange(e) {
			d.Range = append(d.Range, rangeEntry{Param: e.Param, Low: e.Low, High: e.High})
			continue
		}
		// Every other entry is a token as far as MatchToken goes, with or without a code: "system|"
		// matches an identifier that has a system and no value, "|" a concept that has only a text.
		add(&d.Tok, "t:"+e.Param+"|"+e.System+"|"+e.Value)
		if e.Value != "" {
			add(&d.Val, "v:"+e.Param+"|"+e.Value)
		}
		if e.Text != "" {
			add(&d.Text, "x:"+e.Param+"|"+e.Text)
		}
	}
	// Strip the de-duplication prefixes (they only keep the three sets apart in one map).
	for _, l := range [][]string{d.Tok, d.Val, d.Text} {
		for i := range l {
			l[i] = l[i][2:]
		}
	}
	if len(d.Present) > 0 {
		// The lowest value of each parameter, by the rule every backend sorts by.
		d.Sort = bson.M{}
		c := store.Candidate{Index: index}
		for _, param := range d.Present {
			v := store.SortValueOf(c, param)
			if v.IsInt {
				d.Sort[sortField(param)] = v.Int
			} else {
				d.Sort[sortField(param)] = v.Str
			}
		}
	}
}

// sortField makes a parameter name safe as a sub-document key (no '.', no leading '$').
func sortField(param string) string {
	if !strings.ContainsAny(param, ".$") {
		return param
	}
	return strings.NewReplacer(".", "\uff0e", "$", "\uff04").Replace(param)
}

func (d *curDoc) resource(typ string) store.Resource {
	return store.Resource{
		Type:        typ,
		ID:          d.ID,
		VersionID:   d.Version,
		LastUpdated: fromMillis(d.LU),
		Deleted:     d.Deleted,
		Body:        nonNil(d.Body, d.Deleted),
	}
}

// candidates are docs as store.Matches sees them when it decides the predicates of clauses (postponed
// chains, _has and ranges): their ids and lastUpdated, and those of their entries the predicates read,
// the references and other values (vx) and the date and number entries (rg) of the parameters they name.
// The entries of the whole batch share one array, so that a batch costs two allocations, not one per
// document.
func candidates(typ string, docs []curDoc, clauses []store.Clause) []store.Candidate {
	var params []string // a few: a map would cost more than it saves
	for _, c := range clauses {
		for _, p := range c {
			if p.Match != store.MatchHas && !slices.Contains(params, p.Param) {
				params = append(params, p.Param)
			}
		}
	}
	// Usually one entry per document and parameter; append grows the array past that.
	entries := make([]store.IndexEntry, 0, len(docs)*len(params))
	out := make([]store.Candidate, len(docs))
	for i := range docs {
		d := &docs[i]
		start := len(entries)
		for _, v := range d.Val {
			if param, value, ok := strings.Cut(v, "|"); ok && slices.Contains(params, param) {
				entries = append(entries, store.IndexEntry{Param: param, Value: value})
			}
		}
		for _, r := range d.Range {
			if slices.Contains(params, r.Param) {
				entries = append(entries, store.IndexEntry{Param: r.Param, Low: r.Low, High: r.High})
			}
		}
		out[i] = store.Candidate{Type: typ, ID: d.ID, LastUpdated: d.LU, Index: entries[start:len(entries):len(entries)]}
	}
	return out
}

func (h *histDoc) resource() store.Resource {
	return store.Resource{
		Type:        h.Type,
		ID:          h.ID,
		VersionID:   h.Version,
		LastUpdated: fromMillis(h.LU),
		Deleted:     h.Deleted,
		Body:        nonNil(h.Body, h.Deleted),
	}
}

// nonNil keeps tombstone bodies empty (nil) and live bodies as stored.
func nonNil(b []byte, deleted bool) []byte {
	if deleted && len(b) == 0 {
		return nil
	}
	return b
}

func millis(t time.Time) int64 { return t.UnixMilli() }

func fromMillis(ms int64) time.Time { return time.UnixMilli(ms).UTC() }

// idxDocs derives the idx collection documents of one resource from its range entries.
func idxDocs(typ, id string, rg []rangeEntry, jr bson.ObjectID) []any {
	out := make([]any, 0, len(rg))
	for _, e := range rg {
		out = append(out, idxDoc{Type: typ, ID: id, Param: e.Param, Low: e.Low, High: e.High, Journal: jr})
	}
	return out
}
