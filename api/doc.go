// Package api is gpfhir's HTTP layer: gin handlers and middleware for the FHIR R4 RESTful interactions,
// OperationOutcome rendering, paging cursors and the CapabilityStatement.
//
// Requests are routed by one interaction table (routes.go), which the CapabilityStatement is generated
// from, so the statement cannot advertise an interaction the server does not route. Handlers return
// errors instead of writing them, so every failure leaves as an OperationOutcome of one shape, and an
// internal error shows the caller only "internal error" and the request id.
//
// FHIR rules that need no HTTP (validation, index extraction) live in package fhir; storage primitives
// in package store. This package holds the logic that spans them: conditional interactions,
// compare-and-swap retries, search parsing and paging.
package api
