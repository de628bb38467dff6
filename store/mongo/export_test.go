package mongo

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"sync"
	"testing"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"

	"github.com/gpfhir/gpfhir/store"
	"github.com/gpfhir/gpfhir/store/mongo/mongotest"
)

// TestExportJobClaimIsExclusive has two Stores on one database, as two processes, claim the same jobs
// from four goroutines: every job is claimed exactly once.
func TestExportJobClaimIsExclusive(t *testing.T) {
	uri := mongotest.Start(t)
	a := open(t, uri, Options{})
	b := open(t, uri, Options{Database: a.db.Name()})
	ctx := context.Background()
	const jobs = 6
	for i := 0; i < jobs; i++ {
		if err := a.CreateExportJob(ctx, fmt.Sprintf("job-%d", i), []byte(`{}`)); err != nil {
			t.Fatal(err)
		}
	}
	if err := b.CreateExportJob(ctx, "job-0", nil); !errors.Is(err, store.ErrVersionConflict) {
		t.Errorf("a second job with a taken id: %v, want ErrVersionConflict", err)
	}
	var mu sync.Mutex
	claimed := map[string][]string{}
	var wg sync.WaitGroup
	for i, s := range []*Store{a, a, b, b} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			token := fmt.Sprintf("claimer-%d", i)
			for {
				now := time.Now()
				j, err := s.ClaimExportJob(ctx, token, now, now.Add(time.Minute))
				if errors.Is(err, store.ErrNotFound) {
					return
				}
				if err != nil {
					t.Errorf("claim: %v", err)
					return
				}
				mu.Lock()
				claimed[j.ID] = append(claimed[j.ID], token)
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	if len(claimed) != jobs {
		t.Errorf("%d jobs claimed, want %d: %v", len(claimed), jobs, claimed)
	}
	for id, by := range claimed {
		if len(by) != 1 {
			t.Errorf("%s claimed by %v, want exactly one claimer", id, by)
		}
	}
}

// TestExportJobLease checks what a lease means: a held job is not claimed again until its lease
// passes; then another claimer takes it, and the first one's saves and renewals fail; a released or
// removed job behaves as documented.
func TestExportJobLease(t *testing.T) {
	s := open(t, mongotest.Start(t), Options{})
	ctx := context.Background()
	if err := s.CreateExportJob(ctx, "j", []byte(`{"n":0}`)); err != nil {
		t.Fatal(err)
	}
	t0 := time.Now()
	first, err := s.ClaimExportJob(ctx, "A", t0, t0.Add(time.Minute))
	if err != nil || first.ID != "j" || first.Claims != 1 || first.Claim != "A" {
		t.Fatalf("first claim: %+v, %v", first, err)
	}
	if _, err := s.ClaimExportJob(ctx, "B", t0.Add(30*time.Second), t0.Add(90*time.Second)); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("claim within the lease: %v, want ErrNotFound", err)
	}
	if err := s.SaveExportJob(ctx, "j", "A", []byte(`{"n":1}`), time.Time{}, t0.Add(2*time.Minute)); err != nil {
		t.Fatalf("holder's save: %v", err)
	}
	if _, err := s.ClaimExportJob(ctx, "B", t0.Add(90*time.Second), t0.Add(3*time.Minute)); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("claim within the lease a save renewed: %v, want ErrNotFound", err)
	}
	// A's lease passes (it died): B takes the job.
	second, err := s.ClaimExportJob(ctx, "B", t0.Add(3*time.Minute), t0.Add(4*time.Minute))
	if err != nil || second.Claim != "B" || second.Claims != 2 || string(second.State) != `{"n":1}` {
		t.Fatalf("claim after the lease: %+v, %v", second, err)
	}
	if err := s.SaveExportJob(ctx, "j", "A", []byte(`{"n":9}`), time.Time{}, t0.Add(5*time.Minute)); !errors.Is(err, store.ErrVersionConflict) {
		t.Errorf("deposed runner's save: %v, want ErrVersionConflict", err)
	}
	if err := s.RenewExportJob(ctx, "j", "A", t0.Add(5*time.Minute)); !errors.Is(err, store.ErrVersionConflict) {
		t.Errorf("deposed runner's renewal: %v, want ErrVersionConflict", err)
	}
	// Released (zero lease): claimable at once.
	if err := s.RenewExportJob(ctx, "j", "B", time.Time{}); err != nil {
		t.Fatal(err)
	}
	third, err := s.ClaimExportJob(ctx, "C", t0.Add(3*time.Minute), t0.Add(4*time.Minute))
	if err != nil || third.Claim != "C" || third.Claims != 3 {
		t.Fatalf("claim after a release: %+v, %v", third, err)
	}
	// Finished: never claimed again, whatever its lease.
	fin := t0.Add(3 * time.Minute)
	if err := s.SaveExportJob(ctx, "j", "C", []byte(`{"done":true}`), fin, time.Time{}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.ClaimExportJob(ctx, "D", t0.Add(time.Hour), t0.Add(2*time.Hour)); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("claim of a finished job: %v, want ErrNotFound", err)
	}
	j, err := s.ExportJob(ctx, "j")
	if err != nil || !j.Finished.Equal(fin.UTC().Truncate(time.Millisecond)) || string(j.State) != `{"done":true}` {
		t.Errorf("finished job reads %+v, %v", j, err)
	}
	if err := s.RemoveExportJob(ctx, "j"); err != nil {
		t.Fatal(err)
	}
	if err := s.SaveExportJob(ctx, "j", "C", nil, time.Time{}, time.Time{}); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("save of a removed job: %v, want ErrNotFound", err)
	}
	if err := s.RemoveExportJob(ctx, "j"); err != nil {
		t.Errorf("removing a removed job: %v", err)
	}
	if _, err := s.ExportJob(ctx, "j"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("read of a removed job: %v, want ErrNotFound", err)
	}
}

// TestExportFiles writes files larger than a GridFS chunk, reads them back streamed, and checks that
// only the current claim's closed files are served and that removing the job leaves no chunk behind,
// even of a file never closed.
func TestExportFiles(t *testing.T) {
	s := open(t, mongotest.Start(t), Options{})
	ctx := context.Background()
	if err := s.CreateExportJob(ctx, "f", nil); err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	if _, err := s.ClaimExportJob(ctx, "A", now, now.Add(time.Minute)); err != nil {
		t.Fatal(err)
	}
	payload := bytes.Repeat([]byte(`{"resourceType":"Patient","id":"x"}`+"\n"), 30000) // ~1 MB, 5 chunks
	write := func(claim, name string, close bool) store.ExportFile {
		t.Helper()
		w, err := s.CreateExportFile(ctx, "f", claim, name)
		if err != nil {
			t.Fatal(err)
		}
		for p := payload; len(p) > 0; p = p[min(len(p), 4096):] {
			if _, err := w.Write(p[:min(len(p), 4096)]); err != nil {
				t.Fatal(err)
			}
		}
		if close {
			if err := w.Close(); err != nil {
				t.Fatal(err)
			}
		}
		return w
	}
	write("A", "Patient.ndjson", true)
	r, err := s.OpenExportFile(ctx, "f", "Patient.ndjson")
	if err != nil {
		t.Fatal(err)
	}
	got, err := io.ReadAll(r)
	_ = r.Close()
	if err != nil || !bytes.Equal(got, payload) {
		t.Fatalf("read back %d bytes (%v), wrote %d", len(got), err, len(payload))
	}
	if _, err := s.OpenExportFile(ctx, "f", "Slot.ndjson"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("a file never written: %v, want ErrNotFound", err)
	}
	aborted := write("A", "Slot.ndjson", false)
	if err := aborted.Abort(); err != nil {
		t.Fatal(err)
	}
	if n := s.chunkCount(t, "f/A/Slot.ndjson"); n != 0 {
		t.Errorf("%d chunks left after Abort", n)
	}
	// Another claim takes over (the lease passed): A's files are not served, and a zombie A that
	// still closes a file does not change that.
	if err := s.RenewExportJob(ctx, "f", "A", time.Time{}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.ClaimExportJob(ctx, "B", now, now.Add(time.Minute)); err != nil {
		t.Fatal(err)
	}
	write("A", "Immunization.ndjson", true)
	if _, err := s.OpenExportFile(ctx, "f", "Immunization.ndjson"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("a deposed claim's file: %v, want ErrNotFound", err)
	}
	write("B", "Patient.ndjson", true)
	write("B", "Slot.ndjson", false) // a runner that dies mid-file
	if err := s.RemoveExportJob(ctx, "f"); err != nil {
		t.Fatal(err)
	}
	if n := s.chunkCount(t, ""); n != 0 {
		t.Errorf("%d chunks left after the job was removed", n)
	}
	if _, err := s.OpenExportFile(ctx, "f", "Patient.ndjson"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("a removed job's file: %v, want ErrNotFound", err)
	}
	if _, err := s.CreateExportFile(ctx, "f", "B", "Patient.ndjson"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("a file for a removed job: %v, want ErrNotFound", err)
	}
}

// chunkCount counts the GridFS chunks of one file, or of every file when fid is empty.
func (s *Store) chunkCount(t *testing.T, fid string) int64 {
	t.Helper()
	f := bson.D{}
	if fid != "" {
		f = bson.D{{Key: "files_id", Value: fid}}
	}
	n, err := s.bucket().GetChunksCollection().CountDocuments(context.Background(), f)
	if err != nil {
		t.Fatal(err)
	}
	return n
}
