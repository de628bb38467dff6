// Package storetest is the contract every gpfhir backend must meet: store.Store and the audit trail's
// audit.Store, which together make an audit.Backend. Backends differ in everything below the interfaces,
// so the behaviour that package api relies on is written down once, here, as tests, and each backend's
// own test file only calls Run.
//
// The suite tests what the two interfaces promise and nothing more: no SQL, no timing. Datasets stay at a
// few dozen resources, because the MongoDB backend runs it against FerretDB, which scans whole
// collections.
//
// Most tests state their expectations by hand. MatchesReference (reference.go) instead compares the backend
// with store/memory, the reference implementation, which answers queries with store.Matches and nothing
// else: both get the same dataset (reference_data.go), and every query of a generated set (each match kind
// on each parameter, negated, in ORs and ANDs, chained and reversed with _has, sorted and paged, and
// history) must return the same resources in the same order. store/memory runs the whole suite too, this
// part included, so the reference is held to the hand-written expectations as well.
package storetest
