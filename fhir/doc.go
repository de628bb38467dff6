// Package fhir is everything gpfhir knows about FHIR R4 that needs no I/O: parsing and validating bodies
// (google/fhir/go's jsonformat plus project rules such as the NHS number check), the table of served
// types and search parameters, computing search-index entries at write time, and building
// OperationOutcomes and Bundles.
//
// It is kept pure so that every FHIR rule can be tested as plain Go, and so that both store backends and
// the API share one definition of what a resource and its index values are. Index values are computed
// once, at write time, because every search is then a lookup in either backend; the search engine reuses
// NormalizeString and ParseDateRange so that stored and searched values are normalised alike. Each search
// parameter is written once, as its R4 FHIRPath expression; Translate derives what the extractor walks from
// it with google/fhir/go's R4 descriptors, so the expression and the index cannot disagree.
//
// It holds FHIR mechanics only, and imports no project package. The rules of GP online services live in
// package online, which reads trees with Walk, LocalRef and Extensions from here; an extension the
// search index reads (OnlineBookableExtension) is declared here for that reason.
package fhir
