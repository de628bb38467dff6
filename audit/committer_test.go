package audit

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/gpfhir/gpfhir/store"
)

// gateStore is an audit store whose commits wait for the test: it reports each batch's size and then
// holds the commit until the test releases it.
type gateStore struct {
	Store // only ApplyAudited is called
	sizes chan int
	open  chan struct{}
}

func (g *gateStore) ApplyAudited(ctx context.Context, writes []store.Write, records []Record) error {
	g.sizes <- len(records)
	<-g.open
	return nil
}

// TestACommitWaitsForMostOfTheLastCommitsNumber: under load the clients of a commit are still sending
// their next requests when the committer looks for more, so nothing tells it they are coming. After a
// commit of 8, records arriving one by one, with no request in progress, still go into one commit of
// six (three quarters of eight) rather than each into its own.
func TestACommitWaitsForMostOfTheLastCommitsNumber(t *testing.T) {
	g := &gateStore{sizes: make(chan int, 1), open: make(chan struct{})}
	a := NewCommitter(g, slog.New(slog.NewTextHandler(io.Discard, nil)), nil)
	// Long enough that the scheduler of a loaded machine cannot end the wait before the records come;
	// the commit goes as soon as they have.
	a.gather = 10 * time.Second
	var wg sync.WaitGroup
	appendOne := func(i int) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := a.Append(Record{ID: fmt.Sprint(i)}); err != nil {
				t.Error(err)
			}
		}()
	}
	release := func() { g.open <- struct{}{} }

	appendOne(0)
	if n := <-g.sizes; n != 1 {
		t.Fatalf("the first commit carried %d records, want 1", n)
	}
	// Eight more wait behind it, and go together.
	for i := 1; i <= 8; i++ {
		appendOne(i)
	}
	for len(a.in) < 8 {
		time.Sleep(time.Millisecond)
	}
	release()
	if n := <-g.sizes; n != 8 {
		t.Fatalf("the second commit carried %d records, want the 8 that waited", n)
	}
	release()
	// Now six, one at a time, none of them announced with Begin.
	for i := 9; i < 15; i++ {
		appendOne(i)
		time.Sleep(2 * time.Millisecond)
	}
	var got []int
	got = append(got, <-g.sizes)
	release()
	if got[0] < 6 {
		// The rest follow in commits of their own.
		for sum := got[0]; sum < 6; sum += got[len(got)-1] {
			got = append(got, <-g.sizes)
			release()
		}
	}
	wg.Wait()
	if !slices.Equal(got, []int{6}) {
		t.Errorf("six records arriving one by one after a commit of eight were committed as %v, want one commit of 6", got)
	}
	a.Close()
}

// TestALoneRecordAfterABusySpellIsStillCommitted: the wait for the last commit's number is
// bounded, so a record that comes alone after a commit of many is committed, alone, rather than held
// for company that never comes.
func TestALoneRecordAfterABusySpellIsStillCommitted(t *testing.T) {
	g := &gateStore{sizes: make(chan int, 1), open: make(chan struct{})}
	close(g.open)
	a := NewCommitter(g, slog.New(slog.NewTextHandler(io.Discard, nil)), nil)
	defer a.Close()
	recs := make([]Record, 12)
	for i := range recs {
		recs[i].ID = fmt.Sprint(i)
	}
	done := make(chan error, 1)
	go func() { done <- a.AppendAll(recs) }()
	if n := <-g.sizes; n != 12 {
		t.Fatalf("twelve records handed over together were committed %d at a time, want 12", n)
	}
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	go func() { done <- a.Append(Record{ID: "alone"}) }()
	if n := <-g.sizes; n != 1 {
		t.Fatalf("the lone record was committed with %d, want alone", n)
	}
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}

// seqStore numbers the records of each batch it commits, as a store chains them, and fails the batches
// that hold a record whose id is fail.
type seqStore struct {
	Store // only ApplyAudited is called
	mu    sync.Mutex
	head  int64
	fail  string
}

func (s *seqStore) ApplyAudited(_ context.Context, _ []store.Write, records []Record) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, r := range records {
		if r.ID == s.fail {
			return fmt.Errorf("%w: refused", store.ErrUnavailable)
		}
	}
	for i := range records {
		s.head++
		records[i].Seq = s.head
	}
	return nil
}

// TestNotifyIsToldOfDurableBatchesOnly: the records Notify hands on are the committed ones, numbered,
// with the Summary NewRecord gave them; a batch that failed is not handed on.
func TestNotifyIsToldOfDurableBatchesOnly(t *testing.T) {
	st := &seqStore{fail: "bad"}
	a := NewCommitter(st, slog.New(slog.NewTextHandler(io.Discard, nil)), nil)
	var mu sync.Mutex
	var told []Record
	a.Notify(func(recs []Record) {
		mu.Lock()
		told = append(told, recs...)
		mu.Unlock()
	})
	at := time.Date(2026, 12, 7, 9, 0, 0, 0, time.UTC)
	for _, id := range []string{"r1", "bad", "r2"} {
		err := a.Append(NewRecord(Input{ID: id, Recorded: at, Interaction: "read", Status: 200, User: &User{Kind: "patient", NHSNumber: "9000000009"}}, ""))
		if (err != nil) != (id == "bad") {
			t.Errorf("%s: %v", id, err)
		}
	}
	a.Close()
	if len(told) != 2 || told[0].ID != "r1" || told[1].ID != "r2" || told[0].Seq != 1 || told[1].Seq != 2 {
		t.Fatalf("told of %+v, want r1 and r2 numbered 1 and 2", told)
	}
	for _, r := range told {
		if r.Summary == nil || r.Summary.ID != r.ID || r.Summary.Role != RolePatient || r.Summary.UserNHS != "9000000009" {
			t.Errorf("%s: Summary %+v", r.ID, r.Summary)
		}
	}
}
