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
