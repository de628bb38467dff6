// Package importer loads FHIR JSON (transaction and batch Bundles, collections, single resources and
// ndjson, from files, directories, .tgz archives or standard input) into a gpfhir server by posting
// Bundles to it: in process through api.Server.LocalHandler against the configured store, or over HTTP
// with a token. Either way every resource passes the server's own validation, rules, policy and audit;
// the importer only reshapes input so that a second run stores nothing new (POSTs of resources with ids
// become PUTs, which the server answers as no-op updates when the content is already stored), drops what
// the server does not serve, and counts what happened.
package importer
