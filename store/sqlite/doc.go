// Package sqlite is the default gpfhir backend: one file in one directory, nothing to run beside the
// server, and fast enough for a single machine.
//
// Every write group is one BEGIN IMMEDIATE transaction on a single writer connection, so compare-and-swap
// holds between goroutines (serialised in the pool) and between processes sharing the file (serialised by
// SQLite's write lock). The database runs in WAL mode with synchronous=FULL, so a committed Apply survives
// a power loss, and readers on their own pool never wait for the writer.
//
// The audit trail has its own two tables (audit.go). The chain table audit holds one row per record, its
// seq, hash, id, time and body, and is at once the chain and the AuditEvent served; audit_idx holds the
// records' index entries under two keys. AppendAudit writes both in one BEGIN IMMEDIATE transaction,
// after checking inside it that the batch starts at head+1: the write lock makes that check and the
// insert one compare-and-swap, also across processes, and a record is durable, readable and searchable
// as soon as the append returns. Kept in the resource tables, every entry would cost six b-tree inserts
// and every record a history and a current row: a millisecond per record, several times the cost of the
// read it records. Here an entry costs two inserts and a record three, so that audit with every request
// waiting for its record costs a fraction of the request. Virtual columns give the audit tables the
// column names of current, history and idx, so the search compiler serves AuditEvents with the same SQL
// (query.go, tables). PruneAudit removes a prefix of the chain and keeps its last record as the anchor
// (audit_anchor) from which verification starts.
//
// Searches compile to one SQL statement. One clause, the caller's criterion, drives it as an IN subquery
// on the idx table; every other clause, the access restrictions above all, is a correlated EXISTS tested
// on each candidate through its own index entries, so that a search costs what it finds, not what the
// caller may see (query.go says how). query_test.go holds that promise with EXPLAIN QUERY PLAN: every
// table is read through an index, and every per-row test is keyed by the row.
package sqlite
