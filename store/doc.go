// Package store defines the storage primitives that every gpfhir backend implements: versioned
// compare-and-swap writes, atomic groups of writes, history, and index queries built from predicates.
//
// The interface holds no FHIR logic. Search parsing, includes, paging, conditional interactions, bundles
// and policy live above it (package api), once, and serve every backend. Index values are computed by
// package fhir at write time, so a backend only stores and compares scalars.
//
// # Audit trail
//
// AuditEvents are append-only through every path: the interface has AppendAudit, AuditHead and
// AuditRange, and no way to change or remove a record (Apply and SetIndex refuse type AuditEvent). An
// appended record is also an ordinary AuditEvent resource at version 1, so FHIR search on AuditEvent uses
// the same index as every other type. The records form one linear hash chain; chain.go explains the
// choice and how several processes append to it. The API appends like this:
//
//	head, hash, err := st.AuditHead(ctx)       // or store.AppendChained, which does all of it
//	store.Chain(hash, head, batch)             // a group commit's batch: Seq and Hash filled in
//	err = st.AppendAudit(ctx, batch)           // ErrVersionConflict: another writer won; read the head again
//
// and answers its requests only after a nil error. VerifyAudit checks the chain with the same
// primitives, so it runs unchanged on every backend.
//
// store/storetest is the contract suite; each backend's own test file only runs it.
package store
