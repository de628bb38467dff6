// Package api is gpfhir's HTTP layer: gin handlers and middleware for the FHIR R4 RESTful interactions,
// OperationOutcome rendering, paging cursors and the CapabilityStatement.
//
// A request is one value (request.go), made by the first middleware and passed by hand to every later
// step: routing by one interaction table (routes.go, which the CapabilityStatement is generated from, so
// the statement cannot advertise an interaction the server does not route), identification and
// authorisation (auth.go), the handler, and the audit middleware (audit.go). Reads are confined by the
// caller's auth.Restriction (policy.go). A write handler prepares a change and hands it to commit
// (commit.go), the one way to the store: the write guard, the writes stored together with their audit
// record, then the answer. Handlers return errors instead of writing them, and one error map (errors.go)
// turns every error into a status and an OperationOutcome, an internal error showing the caller only
// "internal error" and the request id.
//
// FHIR rules that need no HTTP (validation, index extraction) live in package fhir, the GP online-services
// rules in package online, the audit trail in package audit, and storage primitives in package store.
// This package holds the logic that spans them: conditional interactions, compare-and-swap retries,
// search parsing and paging.
package api
