// Package online holds the rules of GP online services as plain Go: booking appointments and the
// cancellation cut-off, repeat prescription requests and their lifecycle, the access levels a practice
// switches on for a patient, proxy grants, and redaction.
//
// The rules read and return decoded FHIR JSON trees and answer with a *RuleError whose Kind the API maps
// to one HTTP status; they do no I/O and know nothing of HTTP, so each one is tested as a table without
// a server. The caller reads what a rule depends on (the slots, the plan, the practice) and writes what
// it decides, atomically. Package auth applies the access levels and proxy grants to a caller, and
// package api applies the rest on every write.
//
// FHIR mechanics (walking trees, references, extensions) come from package fhir, which imports no
// project package: an extension the search index reads, such as fhir.OnlineBookableExtension, is
// declared there even though its meaning is an online-services one.
package online
