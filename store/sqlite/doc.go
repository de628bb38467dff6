// Package sqlite is the default gpfhir backend: one file in one directory, nothing to run beside the
// server, and fast enough for a single machine.
//
// Every write group is one BEGIN IMMEDIATE transaction on a single writer connection, so compare-and-swap
// holds between goroutines (serialised in the pool) and between processes sharing the file (serialised by
// SQLite's write lock). The database runs in WAL mode with synchronous=FULL, so a committed Apply survives
// a power loss, and readers on their own pool never wait for the writer.
//
// The audit chain is the table audit (seq, id, hash). AppendAudit writes a batch's chain rows and the
// AuditEvents' history, current and idx rows in one such transaction, after checking inside it that the
// batch starts at head+1: the write lock makes that check and the insert one compare-and-swap, also
// across processes. The body and time of a record are stored once, in history, which is what Get, Search
// and AuditRange all read, so there is no second copy that could be edited unseen.
//
// Searches compile to one SQL statement. One clause, the caller's criterion, drives it as an IN subquery
// on the idx table; every other clause, the access restrictions above all, is a correlated EXISTS tested
// on each candidate through its own index entries, so that a search costs what it finds, not what the
// caller may see (query.go says how). query_test.go holds that promise with EXPLAIN QUERY PLAN: every
// table is read through an index, and every per-row test is keyed by the row.
package sqlite
