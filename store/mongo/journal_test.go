package mongo

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/gpfhir/gpfhir/store"
	"github.com/gpfhir/gpfhir/store/mongo/mongotest"
	"go.mongodb.org/mongo-driver/v2/bson"
)

var errCrash = errors.New("simulated crash")

func res(typ, id string, v int64, ms int) store.Resource {
	return store.Resource{Type: typ, ID: id, VersionID: v, LastUpdated: time.UnixMilli(1_700_000_000_000 + int64(ms)).UTC(),
		Body: fmt.Appendf(nil, `{"resourceType":%q,"id":%q,"v":%d}`, typ, id, v)}
}

func tokenEntry(param, code string) store.IndexEntry {
	return store.IndexEntry{Param: param, System: "s", Value: code}
}

func dateEntry(param string, lo int64) store.IndexEntry {
	return store.IndexEntry{Param: param, Low: lo, High: lo + 999}
}

// abandoned opens a journal-mode Store whose groups crash after write crashAfter, with a lease so short
// that the next Open rolls them back. Its heartbeat stops at once and its connection is released at
// the end of the test, but the Store is never closed or cleaned up, as if its process had died.
func abandoned(t *testing.T, uri, db string, crashAfter int) *Store {
	t.Helper()
	return abandonedWith(t, Options{URI: uri, Database: db, Txn: TxnJournal, JournalLease: time.Millisecond}, crashAfter)
}

func abandonedWith(t *testing.T, opts Options, crashAfter int) *Store {
	t.Helper()
	s, err := Open(t.Context(), opts)
	if err != nil {
		t.Fatal(err)
	}
	s.stopHeartbeat(true)
	s.afterWrite = func(i int) error {
		if i == crashAfter {
			return errCrash
		}
		return nil
	}
	t.Cleanup(func() { _ = s.client.Disconnect(context.Background()) })
	return s
}

// TestJournalGroupIsAllOrNothingAfterACrash kills a group between two of its writes (and after its last
// write, before the commit), then opens a new Store on the same database and checks that the group left
// no trace: creates are gone, updates and deletes are undone with their old index, history has no new
// versions, and the resources can be written again.
func TestJournalGroupIsAllOrNothingAfterACrash(t *testing.T) {
	uri := mongotest.Start(t)
	for _, crashAfter := range []int{0, 1, 2} {
		t.Run(fmt.Sprintf("crash after write %d of 3", crashAfter), func(t *testing.T) {
			seed := open(t, uri, Options{Txn: TxnJournal})
			db := seed.db.Name()
			ctx := t.Context()
			// Existing state: Patient/u at v1 (gender=old, birthdate 1000), Patient/d at v1.
			if err := seed.Apply(ctx, []store.Write{
				{Resource: res("Patient", "u", 1, 1), Index: []store.IndexEntry{tokenEntry("gender", "old"), dateEntry("birthdate", 1000)}},
				{Resource: res("Patient", "d", 1, 2), Index: []store.IndexEntry{tokenEntry("gender", "old")}},
			}); err != nil {
				t.Fatal(err)
			}

			crashing := abandoned(t, uri, db, crashAfter)
			del := res("Patient", "d", 2, 12)
			del.Deleted, del.Body = true, nil
			err := crashing.Apply(ctx, []store.Write{
				{Resource: res("Patient", "new", 1, 10), Index: []store.IndexEntry{tokenEntry("gender", "new"), dateEntry("birthdate", 5000)}},
				{Resource: res("Patient", "u", 2, 11), ExpectVersion: 1, Index: []store.IndexEntry{tokenEntry("gender", "new"), dateEntry("birthdate", 5000)}},
				{Resource: del, ExpectVersion: 1},
			})
			if !errors.Is(err, errCrash) {
				t.Fatalf("Apply = %v, want the simulated crash", err)
			}

			// A new process opens the same database: recovery rolls the group back.
			s := open(t, uri, Options{Database: db, Txn: TxnJournal})
			if _, err := s.Get(ctx, "Patient", "new"); !errors.Is(err, store.ErrNotFound) {
				t.Errorf("Get new: %v, want not found", err)
			}
			for _, id := range []string{"u", "d"} {
				got, err := s.Get(ctx, "Patient", id)
				if err != nil || got.VersionID != 1 || got.Deleted {
					t.Errorf("Get %s = v%d deleted=%v, %v; want v1", id, got.VersionID, got.Deleted, err)
				}
			}
			hist, err := s.History(ctx, store.HistoryQuery{Type: "Patient"})
			if err != nil {
				t.Fatal(err)
			}
			if len(hist) != 2 {
				t.Errorf("history has %d versions, want the 2 seeded: %+v", len(hist), hist)
			}
			ids := func(q store.Query) []string {
				t.Helper()
				hits, err := s.Search(ctx, q)
				if err != nil {
					t.Fatal(err)
				}
				var out []string
				for _, h := range hits {
					out = append(out, h.Resource.ID)
				}
				return out
			}
			gender := func(code string) store.Query {
				return store.Query{Type: "Patient", Clauses: []store.Clause{{{Param: "gender", Match: store.MatchToken, System: "s", Value: code}}}}
			}
			if got := ids(gender("old")); !slices.Equal(got, []string{"d", "u"}) {
				t.Errorf("gender=old finds %v, want [d u]", got)
			}
			if got := ids(gender("new")); len(got) != 0 {
				t.Errorf("gender=new finds %v, want none", got)
			}
			born := store.Query{Type: "Patient", Clauses: []store.Clause{{{Param: "birthdate", Match: store.MatchRange,
				Bounds: []store.Bound{{Field: store.Low, Cmp: store.GE, Value: 4000}}}}}}
			if got := ids(born); len(got) != 0 {
				t.Errorf("birthdate>=4000 finds %v, want none", got)
			}
			born.Clauses[0][0].Bounds[0].Value = 0
			if got := ids(born); !slices.Equal(got, []string{"u"}) {
				t.Errorf("birthdate>=0 finds %v, want [u]", got)
			}
			// The resources are free again.
			if err := s.Apply(ctx, []store.Write{
				{Resource: res("Patient", "new", 1, 20)},
				{Resource: res("Patient", "u", 2, 21), ExpectVersion: 1},
			}); err != nil {
				t.Errorf("Apply after recovery: %v", err)
			}
		})
	}
}

// TestJournalLeaseProtectsAGroupInProgress checks that another Store neither rolls back a group whose
// lease is still running nor writes over one of its resources.
func TestJournalLeaseProtectsAGroupInProgress(t *testing.T) {
	uri := mongotest.Start(t)
	first := open(t, uri, Options{Txn: TxnJournal})
	ctx := t.Context()
	db := first.db.Name()
	if err := first.Apply(ctx, []store.Write{{Resource: res("Patient", "a", 1, 1)}}); err != nil {
		t.Fatal(err)
	}
	// The slow Store stays alive (its heartbeat beats), so its peers leave its group alone.
	slow, err := Open(ctx, Options{URI: uri, Database: db, Txn: TxnJournal, JournalLease: time.Hour, OwnerLease: 400 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		slow.stopHeartbeat(true)
		_ = slow.client.Disconnect(context.Background())
	})
	slow.afterWrite = func(i int) error {
		if i == 0 {
			return errCrash // stands in for a group still running
		}
		return nil
	}
	if err := slow.Apply(ctx, []store.Write{
		{Resource: res("Patient", "a", 2, 2), ExpectVersion: 1},
		{Resource: res("Patient", "b", 1, 3)},
	}); !errors.Is(err, errCrash) {
		t.Fatalf("Apply = %v", err)
	}
	other := open(t, uri, Options{Database: db, Txn: TxnJournal})
	got, err := other.Get(ctx, "Patient", "a")
	if err != nil || got.VersionID != 2 {
		t.Fatalf("Get a = v%d, %v; want v2 (the group in progress is not rolled back)", got.VersionID, err)
	}
	// Nor does the other Store's sweep, beat after beat.
	time.Sleep(time.Second)
	if _, err := other.sweep(ctx); err != nil {
		t.Fatal(err)
	}
	if got, err := other.Get(ctx, "Patient", "a"); err != nil || got.VersionID != 2 {
		t.Fatalf("Get a after sweeps = v%d, %v; want v2 (its owner is alive)", got.VersionID, err)
	}
	err = other.Apply(ctx, []store.Write{{Resource: res("Patient", "a", 3, 4), ExpectVersion: 2}})
	if !errors.Is(err, store.ErrVersionConflict) {
		t.Errorf("write over a resource of an unfinished group = %v, want a version conflict", err)
	}
	// Once the lease is over (forced here), recovery rolls it back.
	if err := other.recoverJournal(ctx, true); err != nil {
		t.Fatal(err)
	}
	if got, err := other.Get(ctx, "Patient", "a"); err != nil || got.VersionID != 1 {
		t.Errorf("Get a after recovery = v%d, %v; want v1", got.VersionID, err)
	}
}

func TestOpenFailsClearly(t *testing.T) {
	cases := []struct {
		name string
		uri  string
		want error
	}{
		{"an empty URI", "", nil},
		{"a malformed URI", "mongo://nowhere", nil},
		{"an unreachable server", "mongodb://127.0.0.1:1/?connectTimeoutMS=200", store.ErrUnavailable},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			start := time.Now()
			s, err := Open(t.Context(), Options{URI: tc.uri, Timeout: time.Second})
			if err == nil {
				_ = s.Close()
				t.Fatal("Open succeeded")
			}
			if tc.want != nil && !errors.Is(err, tc.want) {
				t.Errorf("Open = %v, want %v", err, tc.want)
			}
			if d := time.Since(start); d > 5*time.Second {
				t.Errorf("Open took %v with a 1s timeout", d)
			}
			t.Log(err)
		})
	}
}

func TestFerretDBHasNoTransactionsSoApplyUsesTheJournal(t *testing.T) {
	s := open(t, mongotest.Start(t), Options{})
	if s.Transactions() {
		t.Error("Transactions() = true on FerretDB")
	}
	if _, err := Open(t.Context(), Options{URI: mongotest.Start(t), Database: s.db.Name(), Txn: TxnRequire}); err == nil {
		t.Error("Open with TxnRequire succeeded on FerretDB")
	}
}

// TestExpiredGroupIsRolledBackByTheNextWriter checks that a running Store does not need a restart to free
// the resources of a group whose process died: the next writer that meets one rolls the group back.
func TestExpiredGroupIsRolledBackByTheNextWriter(t *testing.T) {
	uri := mongotest.Start(t)
	s := open(t, uri, Options{Txn: TxnJournal})
	ctx := t.Context()
	if err := s.Apply(ctx, []store.Write{{Resource: res("Patient", "a", 1, 1)}}); err != nil {
		t.Fatal(err)
	}
	crashing := abandoned(t, uri, s.db.Name(), 0)
	if err := crashing.Apply(ctx, []store.Write{
		{Resource: res("Patient", "a", 2, 2), ExpectVersion: 1},
		{Resource: res("Patient", "b", 1, 3)},
	}); !errors.Is(err, errCrash) {
		t.Fatalf("Apply = %v", err)
	}
	time.Sleep(5 * time.Millisecond) // the 1ms lease runs out
	err := s.Apply(ctx, []store.Write{{Resource: res("Patient", "a", 3, 4), ExpectVersion: 2}})
	if !errors.Is(err, store.ErrVersionConflict) {
		t.Fatalf("write over the dead group's resource = %v, want a conflict (the group is being undone)", err)
	}
	if got, err := s.Get(ctx, "Patient", "a"); err != nil || got.VersionID != 1 {
		t.Fatalf("Get a = v%d, %v; want v1 after the rollback", got.VersionID, err)
	}
	if err := s.Apply(ctx, []store.Write{{Resource: res("Patient", "a", 2, 5), ExpectVersion: 1}}); err != nil {
		t.Errorf("retry after rollback: %v", err)
	}
}

// TestRestartWithinTheLeaseShowsNoPartOfADeadGroup stands for a server killed in the middle of a group
// and started again at once, long before the group's lease (an hour here) runs out: the dead process's
// heartbeat has stopped, so the new Store's Open waits out the owner's short lease and rolls the group
// back before it serves anything.
func TestRestartWithinTheLeaseShowsNoPartOfADeadGroup(t *testing.T) {
	uri := mongotest.Start(t)
	s := open(t, uri, Options{Txn: TxnJournal})
	ctx := t.Context()
	db := s.db.Name()
	if err := s.Apply(ctx, []store.Write{{Resource: res("Patient", "a", 1, 1)}}); err != nil {
		t.Fatal(err)
	}
	const ownerLease = 600 * time.Millisecond
	dead := abandonedWith(t, Options{URI: uri, Database: db, Txn: TxnJournal, JournalLease: time.Hour, OwnerLease: ownerLease}, 0)
	if err := dead.Apply(ctx, []store.Write{
		{Resource: res("Patient", "a", 2, 2), ExpectVersion: 1},
		{Resource: res("Patient", "b", 1, 3)},
	}); !errors.Is(err, errCrash) {
		t.Fatalf("Apply = %v", err)
	}
	start := time.Now()
	restarted := open(t, uri, Options{Database: db, Txn: TxnJournal, OwnerLease: ownerLease})
	waited := time.Since(start)
	if got, err := restarted.Get(ctx, "Patient", "a"); err != nil || got.VersionID != 1 {
		t.Errorf("Get a right after the restart = v%d, %v; want v1 (the dead group rolled back)", got.VersionID, err)
	}
	if _, err := restarted.Get(ctx, "Patient", "b"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("Get b right after the restart: %v, want not found", err)
	}
	t.Logf("Open waited %s for the dead owner (owner lease %s)", waited.Round(10*time.Millisecond), ownerLease)
}

// TestRunningStoreSweepsADeadOwnersGroup checks that a running Store rolls back a dead process's group
// by itself, with no restart and no writer meeting its resources, once the owner's lease has passed.
func TestRunningStoreSweepsADeadOwnersGroup(t *testing.T) {
	uri := mongotest.Start(t)
	const ownerLease = 400 * time.Millisecond
	s := open(t, uri, Options{Txn: TxnJournal, OwnerLease: ownerLease})
	ctx := t.Context()
	if err := s.Apply(ctx, []store.Write{{Resource: res("Patient", "a", 1, 1)}}); err != nil {
		t.Fatal(err)
	}
	dead := abandonedWith(t, Options{URI: uri, Database: s.db.Name(), Txn: TxnJournal, JournalLease: time.Hour, OwnerLease: ownerLease}, 1)
	if err := dead.Apply(ctx, []store.Write{
		{Resource: res("Patient", "a", 2, 2), ExpectVersion: 1},
		{Resource: res("Patient", "b", 1, 3)},
	}); !errors.Is(err, errCrash) {
		t.Fatalf("Apply = %v", err)
	}
	if got, err := s.Get(ctx, "Patient", "b"); err != nil || got.VersionID != 1 {
		t.Fatalf("Get b before the sweep = v%d, %v; the crash should have left it", got.VersionID, err)
	}
	// Bounded: the owner lease, then a beat or two; generous for a loaded FerretDB.
	deadline := time.Now().Add(20 * time.Second)
	for {
		_, errB := s.Get(ctx, "Patient", "b")
		a, errA := s.Get(ctx, "Patient", "a")
		if errors.Is(errB, store.ErrNotFound) && errA == nil && a.VersionID == 1 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("after 20 s the dead group is still there: a v%d (%v), b: %v", a.VersionID, errA, errB)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// TestOpenWithTransactionsSettlesTheJournal checks that a Store in transactions mode, which writes no
// journal and whose reads ignore journal marks, still rolls back at Open a group a dead journal-mode
// process left (a database moved from a standalone to a replica set after a crash).
func TestOpenWithTransactionsSettlesTheJournal(t *testing.T) {
	uri := mongotest.Start(t)
	s := open(t, uri, Options{Txn: TxnJournal})
	ctx := t.Context()
	db := s.db.Name()
	if err := s.Apply(ctx, []store.Write{{Resource: res("Patient", "a", 1, 1)}}); err != nil {
		t.Fatal(err)
	}
	const ownerLease = 500 * time.Millisecond
	dead := abandonedWith(t, Options{URI: uri, Database: db, Txn: TxnJournal, JournalLease: time.Hour, OwnerLease: ownerLease}, 1)
	if err := dead.Apply(ctx, []store.Write{
		{Resource: res("Patient", "a", 2, 2), ExpectVersion: 1},
		{Resource: res("Patient", "b", 1, 3)},
	}); !errors.Is(err, errCrash) {
		t.Fatalf("Apply = %v", err)
	}
	withTxn := open(t, uri, Options{Database: db, OwnerLease: ownerLease, assumeTxn: true})
	if !withTxn.Transactions() {
		t.Fatal("the Store under test is not in transactions mode")
	}
	if got, err := withTxn.Get(ctx, "Patient", "a"); err != nil || got.VersionID != 1 {
		t.Errorf("Get a after Open with transactions = v%d, %v; want v1 (the dead group rolled back)", got.VersionID, err)
	}
	if _, err := withTxn.Get(ctx, "Patient", "b"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("Get b after Open with transactions: %v, want not found", err)
	}
}

// TestJournalWritesKeepIdxInStepWithDates follows one resource through the ways its date entries can
// change in journal mode, where a write that had none and gets none skips the idx delete: after each
// write the idx collection holds exactly the current version's entries.
func TestJournalWritesKeepIdxInStepWithDates(t *testing.T) {
	s := open(t, mongotest.Start(t), Options{Txn: TxnJournal})
	ctx := t.Context()
	steps := []struct {
		name  string
		index []store.IndexEntry
	}{
		{"created without dates", []store.IndexEntry{tokenEntry("gender", "f")}},
		{"given two dates", []store.IndexEntry{dateEntry("birthdate", 1000), dateEntry("death-date", 9000)}},
		{"down to one date", []store.IndexEntry{dateEntry("birthdate", 2000)}},
		{"no dates again", []store.IndexEntry{tokenEntry("gender", "m")}},
		{"still none", nil},
		{"a date once more", []store.IndexEntry{dateEntry("birthdate", 3000)}},
	}
	for i, st := range steps {
		v := int64(i + 1)
		if err := s.Apply(ctx, []store.Write{{Resource: res("Patient", "p", v, i), Index: st.index, ExpectVersion: v - 1}}); err != nil {
			t.Fatalf("%s: %v", st.name, err)
		}
		var want []int64
		for _, e := range st.index {
			if isRange(e) {
				want = append(want, e.Low)
			}
		}
		cur, err := s.db.Collection(collIdx).Find(ctx, bson.D{{Key: "t", Value: "Patient"}, {Key: "r", Value: "p"}})
		if err != nil {
			t.Fatal(err)
		}
		var docs []idxDoc
		if err := cur.All(ctx, &docs); err != nil {
			t.Fatal(err)
		}
		var got []int64
		for _, d := range docs {
			got = append(got, d.Low)
		}
		slices.Sort(got)
		if !slices.Equal(got, want) {
			t.Errorf("%s: idx holds lows %v, want %v", st.name, got, want)
		}
	}
}
