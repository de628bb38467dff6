// Package audit is gpfhir's audit trail, apart from the HTTP layer that feeds it: building each
// AuditEvent from what a request did (Event, after IHE Basic Audit Log Patterns) and its search index
// (EventIndex), the patient's view of an event (PatientView), the hash chain the records form (chain.go
// explains the choice), its verification (Verify) and retention (PruneAudit through Retention), the group
// committer that makes each request's record durable before the answer (Committer), and export and copy.
//
// The trail has its own storage interface, Store, beside the resource store (package store): records
// are appended, read in chain order and pruned from the front, never changed. Every backend implements
// both (Backend), because an appended record is also an AuditEvent resource that FHIR search serves; the
// contract suite (store/storetest) checks both on every backend. Writes and their records are committed
// together through Store.ApplyAudited, so that a change never stands without its record.
//
// It imports store and fhir, and nothing above them.
package audit
