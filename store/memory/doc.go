// Package memory is the reference implementation of store.Store: everything in maps behind one mutex,
// each method a few lines over what package store states. Queries are answered by store.Matches and
// ordered by store.ComparePositions over every resource of the type, with no index and no plan, so that
// what a query selects is plainly what those functions say.
//
// It plays the part dex's storage/memory plays: the contract suite (store/storetest) runs against it
// like against any backend, and then loads one dataset into it and into the backend under test and
// requires every query of a generated set to answer alike, so a backend's SQL or BSON is checked against
// this package rather than against hand-written expectations only.
//
// It is meant for tests and as the statement of the semantics, not for serving: it keeps nothing on disk,
// and every search reads every resource of its type.
package memory
