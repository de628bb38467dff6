// Package sqlite is the default gpfhir backend: one file in one directory, nothing to run beside the
// server, and fast enough for a single machine.
//
// Every write group is one BEGIN IMMEDIATE transaction on a single writer connection, so compare-and-swap
// holds between goroutines (serialised in the pool) and between processes sharing the file (serialised by
// SQLite's write lock). The database runs in WAL mode with synchronous=FULL, so a committed Apply survives
// a power loss, and readers on their own pool never wait for the writer.
//
// Searches compile to one SQL statement in which every predicate is an IN subquery on the idx table, so
// that each one is answered from an index; query_test.go holds that promise with EXPLAIN QUERY PLAN.
package sqlite
