// Package mongo is the MongoDB implementation of store.Store (go.mongodb.org/mongo-driver/v2), for
// production and scale-out: replica sets for availability, sharded clusters beyond one machine. The
// same code runs against FerretDB 1.24 in tests (see mongotest), so it keeps to what both support:
// index fields are scalars or arrays of scalars (no $elemMatch on sub-documents, FerretDB #2964), no
// server-side JavaScript, no TTL indexes, and no reliance on transactions where the deployment has none.
//
// # Collections
//
//	res_<Type>  current version of each resource of one type, _id = logical id:
//	            v (version), lu (lastUpdated, Unix ms), del (tombstone), body (the JSON served, binary),
//	            jr (journal group that last wrote it; journal mode only), and the index:
//	              p   []string  parameters with at least one entry                "param"
//	              tk  []string  every entry but dates and numbers, code or not    "param|system|code"
//	              vx  []string  exact values: string :exact, reference, uri, code "param|value"
//	              tx  []string  normalised text: string, token display            "param|text"
//	              s   {param: lowest sort value} (store.SortValueOf; string or int64)
//	              rg  [{p,lo,hi}] raw date/number entries (source of idx; read by postponed ranges)
//	idx         one document per date/number entry: {t, r (id), p, lo, hi}
//	history     every version, tombstones included, _id = "Type/id/version": {t, r, v, lu, del, body}
//	journal     unfinished atomic groups (journal mode only)
//	journal_owners  one document per running journal-mode Store: its id and the end of its lease
//	audit       the audit chain, one document per appended batch, _id = Seq of its first record:
//	            last (Seq of its last record), recs [{s, id, h}] (Seq, AuditEvent id, chain hash), and
//	            while pending (journal mode) pend: true and m (the batch's res_AuditEvent documents)
//	audit_anchor the anchor of a pruned chain, one document per prune step, _id = the anchor's Seq (the
//	            last record the step removed): h (its hash), lu (its time, Unix ms), and while pending
//	            (journal mode) pend: true and ids (the AuditEvents the step removes). The current anchor
//	            is the largest _id; a finished step deletes the documents it supersedes.
//	export_jobs  bulk export jobs (store.ExportJobs), _id = job id: st (the API's state, opaque), fin
//	            (finished, Unix ms; 0 while to run), claim (the holder's token), lease (Unix ms; 0 when
//	            never claimed or released), n (claims so far)
//	export_claims one mark per claim of a job, _id = "job/n": the compare-and-swap of claim number n
//	export.files, export.chunks  GridFS bucket "export": a job's ndjson files, file _id
//	            "job/claim/name", chunks of 255 KiB
//
// AuditEvents themselves are ordinary documents of res_AuditEvent, history (version 1) and idx, so FHIR
// search on AuditEvent runs on the same index encoding as every other type. Apply and SetIndex refuse
// type AuditEvent; only AppendAudit and ApplyAudited write them, nothing in the package changes them,
// and only PruneAudit removes them (see "Audit retention").
//
// # Index encoding and its trade-off
//
// Token, string, reference and uri entries live in the current document as prefixed scalar strings, so
// those predicates run in the same find as the rest of the query, and an entry can never be out of step
// with the version it belongs to (one document, one atomic write). Date and number entries need Low and
// High of the same entry compared together, which without $elemMatch on sub-documents needs one
// document per entry: they go to idx. A range predicate is first evaluated on idx into a set of ids and
// becomes _id $in [...] (or $nor of it for :not) in the main query. The cost: a second round trip, and an
// unselective range yields a large id list (bounded by the 16 MB command size, roughly 500,000 ids), so
// the layer above should pair broad date ranges with a selective predicate (a patient, a practice). With
// transactions idx changes atomically with the resource; in journal mode a concurrent reader can see the
// previous version's date entries for the moment between the two writes.
//
// The same two-step evaluation serves chaining and _has: MatchRefIn evaluates Sub to ids and matches
// vx $in ["param|SubType/id", ...]; MatchHas evaluates Sub (restricted to documents whose vx has the
// prefix "HasParam|Type/") and collects the referenced ids into _id $in [...].
//
// That two-step evaluation is used whole only for the clause that drives a query (the first one without
// negations: the caller's criterion, since access restrictions are appended last) and in queries with no
// such clause; a store.Query.Scan (a bulk export's pages) has no driving clause at all, every clause
// being postponed. A later clause made of chains, _has and ranges is postponed: the find (driving clause and
// field predicates) is read in sort order in batches, and the postponed clause is evaluated on each batch
// restricted to the ids the batch references (chain), the documents referencing the batch (_has) or the
// batch's own rg entries (range), recursively into the sub-query, until Limit documents pass. Whether a
// document of the batch passes is decided in Go by store.MatchesPredicate, the statement of the semantics
// every backend is compared with, from what the round trips fetched. So a search
// restricted to a GP practice costs what its own criterion selects, not the size of the practice. See
// plan.go for the rules and their cost.
//
// # Which index serves which predicate and sort
//
//	Get, compare-and-swap, ExpectVersion 0 insert,  res_<Type> _id (unique)
//	  _id search, id sets from idx/_has, sort by _id and the id tie-breaker
//	MatchToken system|code, |code                   res_<Type> tk: equality
//	MatchToken system| (any code in system)         res_<Type> tk: anchored prefix regex, an index range
//	MatchToken code (any system), MatchExact,       res_<Type> vx: equality / $in
//	  MatchRefIn
//	MatchHas (inner query)                          Sub type's vx: anchored prefix "param|Type/"
//	MatchPrefix, MatchTokenText                     res_<Type> tx: anchored prefix regex, an index range
//	MatchContains                                   res_<Type> tx: regex "^param\|.*value", a scan of the
//	                                                  index keys of that parameter only (no documents)
//	MatchPresent (and :missing through Not)         res_<Type> p
//	MatchRange on a parameter                       idx t_p_lo_hi (bounds on Low, High filtered from the
//	                                                  index keys) or t_p_hi (bounds on High only)
//	MatchRange on _lastUpdated, sort by it          res_<Type> lu_id
//	Sort by a parameter                             s.<param>: not indexed by default; MongoDB sorts the
//	                                                  filtered set in memory. Add {"s.<param>": 1, _id: 1}
//	                                                  on res_<Type> for hot sorts (Open leaves extra
//	                                                  indexes alone).
//	postponed chain / _has / range on a batch       Sub type's _id $in, Sub type's vx $in, the batch's rg
//	Not (any predicate)                             $nor: evaluated on the documents the other clauses
//	                                                  select; a query made only of negations reads every
//	                                                  live document of the type.
//	GetVersion, claiming a new version              history _id (unique)
//	History of one resource / one type / system     history t_r_v / t_lu / lu_t_r_v
//	replacing a resource's date/number entries      idx t_r
//	recovery                                        journal exp
//	claimable export jobs (fin, lease)              export_jobs fin_lease; claim marks by job: job
//	audit head (last batch), CAS on the first Seq   audit _id (unique)
//	AuditRange                                      audit last, then history _id
//	anchor (largest step), prune steps              audit_anchor _id (unique); pending steps: a scan of
//	                                                  a collection of one or two documents
//	pruning a step's AuditEvents                    res_AuditEvent _id, idx t_r, history _id, audit last
//
// Indexes of history, idx and journal are created at Open, those of res_<Type> at Open for
// Options.Types and otherwise at the first write of the type; existing ones (by name) are left alone.
//
// # Writes and atomic groups
//
// Every write first claims its new version by inserting it into history: the _id "Type/id/version" is
// unique, so of several writers expecting the same version exactly one proceeds, and the others get
// duplicate key 11000, translated to store.ErrVersionConflict. Then the current document is written
// with compare-and-swap (replace with filter {_id, v: ExpectVersion}; insert with the unique _id for
// ExpectVersion 0) and the idx entries are replaced. The history claim matters on FerretDB, whose
// update evaluates its filter and writes in two steps; on MongoDB the filter alone would do.
//
// Apply chooses at Open (Options.Txn, default TxnAuto):
//
//   - Replica set or sharded cluster (hello reports setName, or msg "isdbgrid" from mongos): a session
//     transaction with majority write concern. All-or-nothing and isolated. This is what production runs.
//   - Standalone mongod and FerretDB (tests, CI): the journal. Apply reads the current documents, inserts
//     a journal document listing every write with the old document, applies the writes (each tagged with
//     the group's jr), and commits by deleting the journal while it is still "pending". A failed write
//     compensates at once: every write still tagged with the group is restored to its old document, its
//     history claim removed, its idx entries rebuilt. A crash leaves the journal behind. Each journal
//     names its owner, a Store that renews its document in journal_owners every quarter of
//     Options.OwnerLease (default 10 s) and sweeps the journal as it does: a group is rolled back by any
//     Store once its owner's lease has passed (a dead owner never renews again; a Store that missed its
//     beats takes a new id), or once the group's own lease (Options.JournalLease, default 1 min) has
//     run out, whichever is first; the next writer that meets one of its resources does the same. Open
//     waits, at most one owner lease, for the groups it finds to commit, prove their owner alive or be
//     rolled back, so a restarted server never shows a dead process's half-applied group; a Store in
//     transactions mode does the same at Open, since its reads ignore journal marks. Groups are
//     therefore all-or-nothing but not isolated: a reader can see part of a group while it is applied, and other writers get
//     store.ErrVersionConflict on resources of an unfinished group.
//
// # Bulk export jobs
//
// The Store implements store.ExportJobs, so every gpfhir process on the database shares bulk export
// jobs. A job is claimable when it is not finished and its lease has passed (0: never claimed, or
// released by a process that stopped cleanly). Claiming job j at claim count n first inserts the mark
// "j/n+1" into export_claims, then moves the job from n to n+1 with {_id, n} as the filter: the unique
// _id of the mark makes the claim exclusive even on FerretDB, whose update matches and writes in two
// steps (the update alone let two claimers both win in tests). A mark whose inserter died before its
// update is removed by the next claimer once it is older than a lease, which is harmless: the update
// only matches the count the mark was made for. A successful claim removes the files of earlier
// claims: the job runs again from the start.
//
// Saves and renewals are conditional on the claim token; matching nothing they answer ErrNotFound (the
// job was removed) or ErrVersionConflict (another claim holds it), and the runner stops. A save sets the
// claim again with the state, so that should FerretDB's two-step update let a deposed runner's save land
// after a new claim, the document still names the claim whose state it holds. Files are GridFS files
// with _id "job/claim/name": OpenExportFile serves the job's current claim's file only, and removing a
// job removes every file under "job/" (by an anchored regex on files._id and chunks.files_id), closed
// or not, since chunks carry only their file id. Leases are compared with the callers' clocks; the
// Store reads none. The owners' heartbeat of the journal is not used: it runs in journal mode only,
// and it proves a Store alive, not a job's runner.
//
// GridFS works on FerretDB 1.24 for what is used here (upload with a chosen string id, download, the
// unique files_id/n index the driver creates, regex deletes). The driver's upload stream holds up to
// 16 MiB before it inserts chunks, so each file being written costs that much memory, whatever its size.
//
// # Audit chain
//
// AppendAudit's compare-and-swap is the insert of the batch document: its _id is the batch's first Seq,
// which must be the head's last Seq + 1, and _id is unique, so of two appenders that read the same head
// exactly one inserts (the other gets duplicate key 11000, store.ErrVersionConflict, and has written
// nothing). Every batch starts right after an existing batch ends, so batches never overlap. A batch is
// one document, so it is chained all or none even without transactions (hence audit.MaxBatch).
//
//   - With transactions: the head check, the batch document and the AuditEvent documents are one
//     transaction. All or nothing, isolated.
//   - Journal mode (FerretDB, standalone): the batch document is the commit point and carries the
//     AuditEvent documents in m with pend set; the AuditEvent documents are then inserted (duplicates
//     ignored, idx _ids deterministic, so doing it twice is harmless) and pend and m are removed. A crash
//     in between leaves the batch chained but not yet readable by Get or Search. It is not rolled back,
//     because another process may already have chained on it: it is rolled forward by the next reader of
//     the head (AppendAudit, AuditHead, AuditRange, Open in any process). An appender finishes a pending
//     head before it appends, so only the head batch can ever be pending, and an id check against
//     res_AuditEvent sees every earlier record. A nil error means the batch document is written with the
//     configured write concern; its AuditEvents are then readable, unless writing them failed, in which
//     case the next reader of the head writes them (returning an error there would make the caller append
//     the records a second time).
//
// The body of an AuditEvent is kept twice, like every resource here: in res_AuditEvent (served by Get and
// Search) and in history (GetVersion, History). AuditRange reads history; audit.Verify checks the
// res_AuditEvent copy against it through Search, so an edit of either copy is reported.
//
// # Audited writes
//
// ApplyAudited is Apply and AppendAudit in one, so that a change is never stored without its audit
// record. The records are chained on the head read during the call, not by the caller, because the head
// can move between a caller's read and the commit, and a caller that re-chained after the writes were
// committed would be back to two steps.
//
//   - With transactions: the writes, the head read, the batch document and the AuditEvent documents are
//     one transaction. A batch inserted by another appender meanwhile (duplicate key or write conflict
//     on the batch _id) aborts it, and it starts again from the writes, on a new snapshot that sees the
//     new head, up to 100 times. Only a conflict on the head is retried: a write's compare-and-swap
//     failing is the caller's ErrVersionConflict, as in Apply.
//   - Journal mode (FerretDB, standalone): the group is journalled and written as Apply does it; then,
//     before the journal is committed, the batch is appended as AppendAudit appends it, chained on the
//     head read then and chained again on a newer head after a lost insert. Only then is the journal
//     deleted. The order is the point: without a transaction the two commit points (the batch document
//     and the journal delete) cannot be one, and appending first means every failure leaves at worst a
//     record of a change that did not happen. An append that fails rolls the writes back. A journal
//     commit that fails after the append, or a crash before the commit (recovery then rolls the group
//     back), leaves the records chained: a later batch may already chain on them. The reverse order could
//     leave a committed change whose record failed to append, which an audit trail must not allow. The
//     group's resources stay locked by its journal while the append retries, so a busy chain delays
//     writers of those resources; it never lets them in between.
//
// Running out of attempts is ErrUnavailable, not ErrVersionConflict: a conflict would tell the caller
// that one of its writes is stale.
//
// # Audit retention
//
// PruneAudit removes the oldest records in steps of at most 500. A step reads the records after the
// anchor, keeps the prefix recorded before the cut-off whose links verify (audit.PrunablePrefix: a broken
// link stops the prune with an error, so that pruning never erases the evidence), and then moves the
// anchor to the prefix's last record and deletes the prefix's AuditEvents (res_AuditEvent, idx, history)
// and the chain documents whose records are all at or below the anchor:
//
//   - With transactions: the anchor document and the deletions are one transaction.
//   - Journal mode (FerretDB, standalone): the anchor document is the commit point. It is inserted first,
//     with pend set and the step's AuditEvent ids; the deletions follow; then pend and ids are removed. A
//     crash in between leaves the anchor moved and some of the step's records still stored. The chain is
//     verifiable at once all the same, because records at or below the anchor are ignored where the chain
//     is read: AuditRange never returns one (the chain document that straddles the anchor keeps its
//     earlier links until a later step passes its last record), AuditHead only falls back on the anchor
//     when no chain document is left, and every reader of the anchor (AuditAnchor, and so audit.Verify
//     before it counts what Search serves; AuditRange; PruneAudit; Open, in any process) first finishes
//     a pending step by deleting its ids again (deletions are idempotent). Until that happens the step's
//     AuditEvents may still be served by Get and Search, as a pending append's may not yet be. A reader
//     reads the anchor before it looks for pending steps, so that the anchor it returns never has records
//     still stored, even when another process inserts a step in between.
//
// Concurrent prunes (the retention loops of several processes on one database) need no lock. A step's
// anchor document has the anchor's Seq as _id, so two processes that prune the same step insert the same
// document, and the second gets a duplicate key and goes on from the anchor the first left. Two that
// prune different steps both leave a prefix removed, and the anchor is the largest _id either way. A step
// that read records while another process deleted them sees what looks like a broken link; it checks
// whether the anchor moved meanwhile and, if so, starts again from it.
//
// A prune is given a cut-off well in the past (gpfhir keeps at least 24 hours). With a cut-off so recent
// that records recorded before it may still be being appended, a slow appender in journal mode could
// re-insert a pruned record's served copy (audit.Verify then reports it as served but not chained), or,
// having read the head before a batch that is then pruned was appended, insert its own batch at that
// batch's freed _id.
//
// Driver errors are translated in errors.go only: 11000 and write conflicts become ErrVersionConflict,
// timeouts, network and server-selection errors ErrUnavailable, no document ErrNotFound.
//
// # Sharding
//
// Recommended shard keys, for deployments that outgrow one replica set:
//
//	res_<Type>  {_id: "hashed"}   Get and compare-and-swap target one shard; _id stays unique because
//	                              the shard key is _id; searches are scatter-gather on the index fields.
//	history     {_id: "hashed"}   keeps the version claim unique across shards; GetVersion targets one
//	                              shard; history listings are scatter-gather merges.
//	idx         {t: 1, r: "hashed"}  replacing a resource's entries targets one shard; range
//	                              predicates run on every shard against t_p_lo_hi.
//	journal     unsharded         only used without transactions, which sharded clusters always have.
//	audit_anchor unsharded        one or two tiny documents.
//	audit       unsharded         small (ids and hashes only, one document per batch) and written at one
//	                              point, the head, whatever the key: sharding it adds no write capacity.
//	                              If it must be sharded, use {_id: "hashed"}: _id stays unique (the CAS),
//	                              and the head and range reads become scatter-gather. Not a ranged time or
//	                              Seq key: monotonic keys send every insert to the last chunk.
//	export_jobs, export_claims  unsharded: a few small documents per export.
//	export.chunks {files_id: 1, n: 1}  GridFS's own index as the key, so a file's chunks stay together;
//	                              export.files unsharded (one small document per file).
//	res_AuditEvent {_id: "hashed"} the bulk of the audit data; ids are random, so writes spread evenly,
//	                              and the auditor's searches (date, patient, agent) are scatter-gather
//	                              like every other type's.
//
// Transactions that span shards need MongoDB 4.2 or later.
package mongo
