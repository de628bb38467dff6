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
// store/storetest is the contract suite; each backend's own test file only runs it.
package store
