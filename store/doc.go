// Package store defines the storage primitives that every gpfhir backend implements: versioned
// compare-and-swap writes, atomic groups of writes, history, and index queries built from predicates.
//
// The interface holds no FHIR logic. Search parsing, includes, paging, conditional interactions, bundles
// and policy live above it (package api), once, and serve every backend. Index values are computed by
// package fhir at write time, so a backend only stores and compares scalars.
//
// # Audit trail
//
// AuditEvents are read through this interface like every other type (Get, Search, History), but they are
// written only through the audit trail's own storage interface, audit.Store, which every backend also
// implements: Apply and SetIndex refuse type AuditEvent. An appended record is an ordinary AuditEvent
// resource at version 1, so FHIR search on AuditEvent uses the same index as every other type.
//
// # What a query means
//
// Match, Predicate, Clause, Query and SortKey say in words what a query selects and in which order;
// match.go says it once more in plain Go (Matches, CheckQuery, SortValueOf, ComparePositions), and where
// the words leave a case open the code is the answer. Backends compile queries to SQL or BSON for speed;
// where one tests predicates in Go (SQLite on AuditEvent rows, MongoDB on the batches of a postponed
// clause) it calls these functions rather than keeping a copy.
//
// store/memory is the reference implementation: a Store that answers every query with those functions
// over every resource of the type, and nothing else. It is too slow to serve, and meant to be obviously
// right instead.
//
// # Tests
//
// store/storetest is the contract suite; each backend's own test file only runs it. Besides its
// hand-written cases it loads one dataset into store/memory and into the backend under test and requires
// both to answer a generated set of queries alike, so that a backend disagreeing with the reference on any
// match, sort or page fails, whoever thought of the query.
//
// # Optional capabilities
//
// A backend may also be a Screener (a search that says in the same statement whether its last clauses
// withheld something) or Generations (a count of a type's writes, which any process's write moves). Callers
// check with a type assertion and do without: SearchThenProbe answers as a Screener must, and a caller
// without a count keeps nothing. SQLite has both; MongoDB and the memory store have neither.
package store
