// Package store defines the storage primitives that every gpfhir backend implements: versioned
// compare-and-swap writes, atomic groups of writes, history, and index queries built from predicates.
//
// The interface holds no FHIR logic. Search parsing, includes, paging, conditional interactions, bundles
// and policy live above it (package api), once, and serve every backend. Index values are computed by
// package fhir at write time, so a backend only stores and compares scalars.
//
// store/storetest is the contract suite; each backend's own test file only runs it.
package store
