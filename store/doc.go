// Package store defines the storage primitives that every gpfhir backend implements: versioned
// compare-and-swap writes, atomic groups of writes, history, and index queries built from predicates.
//
// The interface holds no FHIR logic. Search parsing, includes, paging, conditional interactions, bundles
// and policy live above it (package api), once, and serve every backend. Index values are computed by
// package fhir at write time, so a backend only stores and compares scalars.
//
// # Audit trail
//
// AuditEvents are append-only through every path: the interface has AppendAudit, ApplyAudited,
// AuditHead and AuditRange, and no way to change a record (Apply and SetIndex refuse type AuditEvent;
// PruneAudit removes only the oldest, for retention). An appended record is also an ordinary AuditEvent
// resource at version 1, so FHIR search on AuditEvent uses the same index as every other type. The
// records form one linear hash chain; chain.go explains the choice and how several processes append to it.
//
// The API appends with ApplyAudited, which chains the records on the head it reads inside its own commit,
// so appenders never have to retry against each other: a group commit's batch with no writes, and a
// write together with its own record, so that a change never stands without it. It answers its requests
// only after a nil error. AppendAudit takes records chained by the caller (store.Chain on the head from
// AuditHead, or audit.AppendChained), for copying a chain as it is. VerifyAudit checks the chain with the
// same primitives, so it runs unchanged on every backend.
//
// store/storetest is the contract suite; each backend's own test file only runs it.
package store
