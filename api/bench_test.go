package api_test

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/gpfhir/gpfhir/api"
	"github.com/gpfhir/gpfhir/store/sqlite"
)

// benchHandler is the API on SQLite on disk, called in-process through its http.Handler, so that the
// figures are the per-request cost of routing, middleware, validation and storage without socket noise.
// With audit on, each sequential request also waits for its own audit batch (one fsync); audit off shows
// the handler's own cost. Production always runs with audit on.
func benchHandler(b *testing.B, audit bool) http.Handler {
	b.Helper()
	st, err := sqlite.Open(context.Background(), b.TempDir())
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { st.Close() })
	srv, _, token := startAPI(b, st, io.Discard, func(c *api.Config) { c.DisableAudit = !audit })
	h := srv.Handler()
	// Every request carries the token, so the figures include verifying it.
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		r.Header.Set("Authorization", "Bearer "+token)
		h.ServeHTTP(w, r)
	})
}

func benchPatient(b *testing.B) []byte {
	raw, err := json.Marshal(patient("Benchmark", validNHS))
	if err != nil {
		b.Fatal(err)
	}
	return raw
}

func BenchmarkReadByID(b *testing.B) {
	b.Run("audit=on", func(b *testing.B) { benchReadByID(b, true) })
	b.Run("audit=off", func(b *testing.B) { benchReadByID(b, false) })
}

func benchReadByID(b *testing.B, audit bool) {
	h := benchHandler(b, audit)
	req := httptest.NewRequest("POST", "/Patient", bytes.NewReader(benchPatient(b)))
	req.Header.Set("Content-Type", "application/fhir+json")
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	if rec.Code != http.StatusCreated {
		b.Fatalf("create: %d %s", rec.Code, rec.Body)
	}
	var created struct{ ID string }
	_ = json.Unmarshal(rec.Body.Bytes(), &created)
	path := "/Patient/" + created.ID
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		rec := httptest.NewRecorder()
		// Cancellable, as net/http's request context is: statements run under it pay for watching it.
		ctx, cancel := context.WithCancel(context.Background())
		h.ServeHTTP(rec, httptest.NewRequest("GET", path, nil).WithContext(ctx))
		cancel()
		if rec.Code != http.StatusOK {
			b.Fatalf("read: %d", rec.Code)
		}
	}
}

func BenchmarkCreate(b *testing.B) {
	b.Run("audit=on", func(b *testing.B) { benchCreate(b, true) })
	b.Run("audit=off", func(b *testing.B) { benchCreate(b, false) })
}

func benchCreate(b *testing.B, audit bool) {
	h := benchHandler(b, audit)
	body := benchPatient(b)
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		req := httptest.NewRequest("POST", "/Patient", bytes.NewReader(body))
		req.Header.Set("Content-Type", "application/fhir+json")
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		if rec.Code != http.StatusCreated {
			b.Fatalf("create: %d %s", rec.Code, rec.Body)
		}
	}
}
