// Package uptake holds the rules of the commissioners' online-services uptake figures, as plain Go: which
// audited request counts as a use of which online service, or as a refusal for which reason (Classify);
// which practice a patient is registered at and which services their access levels enable (Registered,
// Enabled); and how the stored counts and census of one practice and month become the published figures,
// the gap to the uptake target and the suggested pairings (Compute, Pair). The field names follow NHS
// Digital's Patient Online Management Information (POMI) where POMI defines them.
//
// The rules read what the rest of gpfhir decides, never a second interpretation of it: refusals by the
// access policy's outcome tags (package auth), record entries and access levels by package online, and
// requests by what package audit wrote about them (audit.Summary). They do no I/O; package uptake/tally
// keeps the counts in the store from the audit trail and takes the census, and package api serves them.
package uptake
