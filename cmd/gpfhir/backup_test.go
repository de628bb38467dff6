package main

import (
	"bytes"
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gpfhir/gpfhir/audit"
	"github.com/gpfhir/gpfhir/store"
	"github.com/gpfhir/gpfhir/store/sqlite"
)

// A backup taken while the store is written to restores into a store whose audit chain verifies and
// ends where the backup recorded, with the data that was there.
func TestBackupWhileWritingRestoresAndVerifies(t *testing.T) {
	ctx := context.Background()
	dir := auditStore(t, 6)
	st, err := sqlite.Open(ctx, dir)
	if err != nil {
		t.Fatal(err)
	}
	if err := st.Apply(ctx, []store.Write{{Resource: store.Resource{Type: "Patient", ID: "kept", VersionID: 1,
		LastUpdated: auditT0, Body: []byte(`{"resourceType":"Patient","id":"kept"}`)}}}); err != nil {
		t.Fatal(err)
	}
	// Writers carry on during the backup, as a running server's would.
	stop := make(chan struct{})
	started := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			default:
			}
			id := fmt.Sprintf("live%d", i)
			rec := audit.Record{ID: id, Recorded: auditT0.Add(time.Duration(100+i) * time.Minute), Body: auditBody(id)}
			if err := audit.AppendChained(ctx, st, []audit.Record{rec}, 1); err != nil {
				t.Error(err)
				return
			}
			if i == 20 {
				close(started)
			}
		}
	}()
	<-started
	out := filepath.Join(t.TempDir(), "gpfhir-backup.db")
	var stdout bytes.Buffer
	err = run(ctx, []string{"backup", "--data-dir", dir, "--out", out}, envFrom(nil), &stdout, &bytes.Buffer{})
	close(stop)
	wg.Wait()
	st.Close()
	if err != nil {
		t.Fatalf("backup: %v", err)
	}
	if !strings.Contains(stdout.String(), "audit chain intact") {
		t.Errorf("backup output %q", stdout.String())
	}
	if fi, err := os.Stat(out); err != nil || fi.Mode().Perm()&0o077 != 0 {
		t.Errorf("backup file %v, %v: want it private (0600)", fi, err)
	}
	var m backupManifest
	raw, err := os.ReadFile(out + ".json")
	if err != nil || json.Unmarshal(raw, &m) != nil || m.AuditSeq < 6+20 || m.AuditHash == "" {
		t.Fatalf("manifest %s (%v)", raw, err)
	}
	t.Logf("backup with %d audit records, head record %d", m.Records, m.AuditSeq)

	restored := filepath.Join(t.TempDir(), "restored")
	stdout.Reset()
	if err := run(ctx, []string{"restore", "--from", out, "--data-dir", restored}, envFrom(nil), &stdout, &bytes.Buffer{}); err != nil {
		t.Fatalf("restore: %v", err)
	}
	if !strings.Contains(stdout.String(), "as recorded at backup") {
		t.Errorf("restore output %q", stdout.String())
	}
	stdout.Reset()
	if err := run(ctx, []string{"audit", "verify", "--data-dir", restored}, envFrom(nil), &stdout, &bytes.Buffer{}); err != nil {
		t.Fatalf("audit verify on the restored copy: %v", err)
	}
	if want := fmt.Sprintf("intact, %d records\nhead: record %d, hash %s", m.Records, m.AuditSeq, m.AuditHash); !strings.Contains(stdout.String(), want) {
		t.Errorf("audit verify on the restored copy: %q, want %q", stdout.String(), want)
	}
	rs, err := sqlite.Open(ctx, restored)
	if err != nil {
		t.Fatal(err)
	}
	if got, err := rs.Get(ctx, "Patient", "kept"); err != nil || got.VersionID != 1 {
		t.Errorf("restored Patient/kept: %v, %v", got, err)
	}
	rs.Close()

	t.Run("restore never replaces a database", func(t *testing.T) {
		err := run(ctx, []string{"restore", "--from", out, "--data-dir", restored}, envFrom(nil), &bytes.Buffer{}, &bytes.Buffer{})
		if err == nil || !strings.Contains(err.Error(), "move it aside") {
			t.Errorf("restore over a database: %v", err)
		}
	})
	t.Run("backup never overwrites a file", func(t *testing.T) {
		err := run(ctx, []string{"backup", "--data-dir", dir, "--out", out}, envFrom(nil), &bytes.Buffer{}, &bytes.Buffer{})
		if err == nil || !strings.Contains(err.Error(), "exists already") {
			t.Errorf("backup onto an existing file: %v", err)
		}
	})
	t.Run("a damaged backup file is refused", func(t *testing.T) {
		bad := filepath.Join(t.TempDir(), "bad.db")
		b, _ := os.ReadFile(out)
		b[len(b)/2] ^= 0xff
		os.WriteFile(bad, b, 0o600)
		os.WriteFile(bad+".json", raw, 0o600)
		err := run(ctx, []string{"restore", "--from", bad, "--data-dir", filepath.Join(t.TempDir(), "d")}, envFrom(nil), &bytes.Buffer{}, &bytes.Buffer{})
		if err == nil || !strings.Contains(err.Error(), "is not the file its manifest describes") {
			t.Errorf("restore of a damaged file: %v", err)
		}
	})
	t.Run("a backup whose chain was cut short is refused", func(t *testing.T) {
		// The last record removed and the manifest's digest made to match: only the head gives it away.
		cut := filepath.Join(t.TempDir(), "cut.db")
		b, _ := os.ReadFile(out)
		os.WriteFile(cut, b, 0o600)
		db, err := sql.Open("sqlite", cut)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := db.Exec(`DELETE FROM audit WHERE seq = (SELECT max(seq) FROM audit)`); err != nil {
			t.Fatal(err)
		}
		db.Close()
		cm := m
		if cm.Bytes, cm.SHA256, err = fileDigest(cut); err != nil {
			t.Fatal(err)
		}
		mraw, _ := json.Marshal(cm)
		os.WriteFile(cut+".json", mraw, 0o600)
		err = run(ctx, []string{"restore", "--from", cut, "--data-dir", filepath.Join(t.TempDir(), "d")}, envFrom(nil), &bytes.Buffer{}, &bytes.Buffer{})
		if err == nil || !strings.Contains(err.Error(), fmt.Sprintf("but the backup recorded record %d", m.AuditSeq)) {
			t.Errorf("restore of a cut chain: %v", err)
		}
	})
}
