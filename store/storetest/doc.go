// Package storetest is the contract every audit.Backend backend must meet. Backends differ in everything
// below the interface, so the behaviour that package api relies on is written down once, here, as tests,
// and each backend's own test file only calls Run.
//
// The suite tests what audit.Backend promises and nothing more: no SQL, no timing. Datasets stay at a few
// dozen resources, because the MongoDB backend runs it against FerretDB, which scans whole collections.
package storetest
