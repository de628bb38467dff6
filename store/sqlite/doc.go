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
// Searches compile to one SQL statement in which every predicate is an IN subquery on the idx table, so
// that each one is answered from an index; query_test.go holds that promise with EXPLAIN QUERY PLAN.
package sqlite
