package fhir

// IndexEntry is one search-index value of a resource, computed at write time by Extract and stored next to
// the body. Which fields are used depends on the parameter type:
//   - token:     System and Value (the code); Text holds the normalised display text, for :text.
//   - string:    Value is the raw string (for :exact), Text the normalised form (prefix and :contains).
//   - reference: Value is "Type/id" for local references, or the absolute URL otherwise.
//   - uri:       Value.
//   - date:      Low and High bound the instant range, inclusive, in Unix milliseconds.
//   - number:    Low and High hold the value.
type IndexEntry struct {
	Param  string
	System string
	Value  string
	Text   string
	Low    int64
	High   int64
}
