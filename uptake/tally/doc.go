// Package tally keeps the commissioners' uptake figures in the store, so that a month's figures are read,
// never recomputed from the whole audit trail, on each page view.
//
// Two kinds of figure are kept, each per practice (ODS code) and calendar month:
//
//   - Counts (uses, users, refusals, proxy users) come from the audit trail. A projector reads the chain
//     in order from a durable checkpoint (audit.Store's AuditRange), classifies each record
//     (uptake.Classify), attributes it to the practice where the patient was registered when it happened,
//     and writes the changed counters together with the new checkpoint in one atomic group
//     (store.Store.Apply with compare-and-swap on every document). A record is therefore counted exactly
//     once even when several gpfhir processes share the store and run projectors at the same time: the
//     one whose group commits first wins, the others find the checkpoint moved and read on from it.
//     CatchUp brings the counts up to the chain's head before a dashboard answer, so an answer includes
//     every request answered before it.
//   - The census (list size, enabled patients, slot supply) comes from the stored resources: Patients,
//     Organizations, Locations, Schedules and Slots. It is taken when a month has none, and again while
//     the month is current when the projector has seen changes to those resources; a past month keeps the
//     last census taken in it.
//
// The documents are internal resources of types that are no FHIR type (TypeCounts, TypeUser,
// TypeCensus, TypeCheckpoint): the API serves none of them, and the access policy leaves them out of
// history listings. Index computes their index entries, for tools that copy a store.
package tally
