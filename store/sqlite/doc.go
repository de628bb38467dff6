// Package sqlite is the default gpfhir backend: one file in one directory, nothing to run beside the
// server, and fast enough for a single machine.
//
// Every write group is one BEGIN IMMEDIATE transaction on a single writer connection, so compare-and-swap
// holds between goroutines (serialised in the pool) and between processes sharing the file (serialised by
// SQLite's write lock). The database runs in WAL mode with synchronous=FULL, so a committed Apply survives
// a power loss, and readers on their own pool never wait for the writer.
//
// The audit trail has tables of its own (audit.go). The chain table audit holds one row per record: seq,
// hash, id, time, body and index entries, the last two compressed with a frozen dictionary (codec.go),
// so a 2 KB AuditEvent takes about 200 bytes. The row is at once the link in the chain and the
// AuditEvent served, so there is one copy to verify. AppendAudit writes only rows, in one BEGIN
// IMMEDIATE transaction, after checking inside it that the batch starts at head+1: the write lock makes
// that check and the insert one compare-and-swap, also across processes.
//
// That is what every request waits for, and on a disk where each page a commit dirties costs about as
// much as the fsync, an append costs what it dirties: rows appended in order share pages, but index
// entries keyed by patient land on a page each. So: the codes (action, outcome, subtype, ...) have no
// index at all, and a search tests them on each candidate record from its entries (auditfuncs.go); the
// references (patient, agent, entity, source; a Device's excepted, see refKept, and an agent or entity
// that is a Patient, which the record's patient entry stands for: query.go, patientFound) are copied into
// audit_ref, keyed by value, with the record's time so that "who saw this patient, newest first" reads
// a page in order and stops (audit_ref's key), after the append, by a background copier and first by any
// search that can read them (refs.go), with synchronous=NORMAL since they are derived from durable rows.
// The date is the row's time, with an index of its own. Virtual columns give the audit tables the column names of current, history and idx, so the
// search compiler serves AuditEvents with the same SQL (query.go, tables). PruneAudit removes a prefix
// of the chain and keeps its last record as the anchor (audit_anchor) from which verification starts.
//
// No commit checkpoints the WAL (wal_autocheckpoint 0): a commit that crossed the threshold would copy a
// thousand pages before returning, with every request waiting on it. A checkpointer connection runs
// PASSIVE checkpoints in the background instead (checkpoint.go).
//
// The hottest statements, reads by key, searches and the committer's appends, skip database/sql's
// statement wrappers: they run inside (*sql.Conn).Raw on statements prepared through the driver on
// each connection (keystmt.go). The pools' connections are the driver's wrapped in stmtConn, which
// holds those statements and closes them with the connection, whenever database/sql closes it.
//
// Searches compile to one SQL statement. One clause, the caller's criterion, drives it as an IN subquery
// on the idx table; every other clause, the access restrictions above all, is a correlated EXISTS tested
// on each candidate through its own index entries, so that a search costs what it finds, not what the
// caller may see (query.go says how). query_test.go holds that promise with EXPLAIN QUERY PLAN: every
// table is read through an index, and every per-row test is keyed by the row. A patient's screened
// search reads a compartment that fits on its page once, each row flagged when the screen withholds it
// (SearchScreened).
//
// The table generation counts Patient writes, moved by triggers on current and idx in the write's own
// transaction, so that any process's write moves it (generation.go): the API keeps what it looked up by
// NHS number while the count stands still.
package sqlite
