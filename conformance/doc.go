// Package conformance is a black-box conformance suite for FHIR R4 servers: `gpfhir conformance` runs it
// against a base URL and reports, check by check, what the server does as the specification requires.
//
// It speaks HTTP only and imports no gpfhir server package, so it tests gpfhir exactly as it tests any
// other server: it reads the CapabilityStatement and exercises what that declares (every interaction of
// every type it knows how to make data for, every declared search parameter with its modifiers and
// prefixes, _include and _revinclude, paging, conditional interactions, bundles, format negotiation) and
// the negative cases, each expecting the status and the OperationOutcome that R4 requires. With
// Config.Profile "gpfhir" it also checks gpfhir's own promises (NHS number rules, withheld notices,
// access levels, proxies, booking races, repeat requests, audit records of its own calls).
//
// Rules the suite keeps, because it may be pointed at a server holding real records:
//   - It writes only resources it creates, each tagged with meta.tag CodeSystem TagSystem and the run id,
//     and deletes them at the end (a search by that tag finds any it missed).
//   - Every search it judges is scoped by that tag, so existing data never changes an outcome.
//   - It is bounded: Config.MaxRequests and Config.Timeout stop it, and each request has its own time
//     limit; a check that could not run for lack of budget fails rather than passing.
//   - It never writes a token, a response body or a request body to its output: only the method, the
//     path and query it sent (made of its own synthetic data) and the status.
//
// Each check is a function that makes requests and asserts on them; a check the server cannot be asked
// (a type or interaction it does not declare, a role whose token was not given) is skipped with the
// reason. Report carries the outcome of every check and writes it as a table, as JUnit XML and as JSON.
package conformance
