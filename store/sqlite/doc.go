// Package sqlite is the default gpfhir backend: one file in one directory, nothing to run beside the
// server, and fast enough for a single machine.
//
// Every write group is one BEGIN IMMEDIATE transaction on a single writer connection, so compare-and-swap
// holds between goroutines (serialised in the pool) and between processes sharing the file (serialised by
// SQLite's write lock). The database runs in WAL mode with synchronous=FULL, so a committed Apply survives
// a power loss, and readers on their own pool never wait for the writer.
//
// The audit chain is the table audit: one row per record holding its seq, id, time, hash, body and
// encoded index entries. AppendAudit writes only those rows, one multi-row INSERT in one such
// transaction, after checking inside it that the batch starts at head+1: the write lock makes that check
// and the insert one compare-and-swap, also across processes. This is all a request with audit on waits
// for. Serving the records as AuditEvent resources needs a history, a current and a dozen idx rows each,
// some sixty b-tree updates, which would cost a millisecond per record on the request path; so they are
// materialised afterwards from the chain rows up to a watermark (audit_indexed), by a background
// goroutine and, first, by any read that could see AuditEvents, inside BEGIN IMMEDIATE so that
// processes sharing the file never do it twice. The body thus has two copies: AuditRange reads the
// chain's, Get and Search the served one, and VerifyAudit compares each record's chain copy with its hash
// and its served copy with the chain, so an edit of either is found.
//
// Searches compile to one SQL statement. One clause, the caller's criterion, drives it as an IN subquery
// on the idx table; every other clause, the access restrictions above all, is a correlated EXISTS tested
// on each candidate through its own index entries, so that a search costs what it finds, not what the
// caller may see (query.go says how). query_test.go holds that promise with EXPLAIN QUERY PLAN: every
// table is read through an index, and every per-row test is keyed by the row.
package sqlite
