package sqlite

import (
	"bytes"
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gpfhir/gpfhir/store"
)

// walLoad writes writes resources of about 4 KB, one per Apply, while readers read history without a
// pause, and returns the largest WAL size seen and how many reads ran. It stops early after limit.
func walLoad(t *testing.T, s *Store, writes int, limit time.Duration) (maxWAL int64, reads int64, written int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), limit)
	defer cancel()
	body := bytes.Repeat([]byte("x"), 4000)
	var nreads atomic.Int64
	var peak atomic.Int64
	var wg sync.WaitGroup
	stop := make(chan struct{})
	for range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				select {
				case <-stop:
					return
				default:
				}
				if _, err := s.History(ctx, store.HistoryQuery{Type: "Patient", Limit: 100}); err != nil && ctx.Err() == nil {
					t.Error(err)
					return
				}
				nreads.Add(1)
			}
		}()
	}
	wg.Add(1)
	go func() {
		defer wg.Done()
		tick := time.NewTicker(10 * time.Millisecond)
		defer tick.Stop()
		for {
			select {
			case <-stop:
				return
			case <-tick.C:
			}
			if n := s.WALBytes(); n > peak.Load() {
				peak.Store(n)
			}
		}
	}()
	for i := range writes {
		if ctx.Err() != nil {
			break
		}
		w := store.Write{Resource: store.Resource{Type: "Patient", ID: fmt.Sprintf("p%d", i), VersionID: 1,
			LastUpdated: time.UnixMilli(int64(i)).UTC(), Body: fmt.Appendf(nil, `{"n":%d,"pad":"%s"}`, i, body)}}
		if err := s.Apply(ctx, []store.Write{w}); err != nil {
			if ctx.Err() != nil {
				break
			}
			t.Fatal(err)
		}
		written++
	}
	close(stop)
	wg.Wait()
	return peak.Load(), nreads.Load(), written
}

// Under steady writes and reads that never pause, PASSIVE checkpoints alone never let the WAL restart,
// and it grew by everything written: 236 MB after 6,000 writes of 4 KB (each commit appends every page
// it touched, about 60 KB). With a 2 MiB limit the WAL peaked at 3.3 MB on the development machine.
func TestWALStaysBoundedUnderSteadyWritesAndReads(t *testing.T) {
	const limit = 2 << 20
	// The bound: the limit, plus what is written between two checkpoints and while a TRUNCATE waits
	// for readers, with room for a slow machine.
	const bound = 8 << 20
	s, err := Open(t.Context(), t.TempDir(), WithWALLimit(limit))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if got := s.WALLimitBytes(); got != limit {
		t.Fatalf("WALLimitBytes = %d, want %d", got, limit)
	}
	peak, reads, written := walLoad(t, s, 2000, 90*time.Second)
	t.Logf("limit %d B: %d writes of ~4 KB and %d history reads; WAL peak %d B, now %d B", limit, written, reads, peak, s.WALBytes())
	// Each commit appends about 60 KB to the WAL, so 500 writes put some 30 MB through it, several times
	// the bound: enough to show the bound holds, on a machine busy enough to allow no more in the time.
	if written < 500 {
		t.Fatalf("only %d writes ran: the load is too small to say anything", written)
	}
	if peak > bound {
		t.Errorf("WAL reached %d bytes with a limit of %d; want at most %d", peak, limit, bound)
	}
}
