package main

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"time"

	"github.com/gpfhir/gpfhir/audit"
	"github.com/gpfhir/gpfhir/store/sqlite"
)

// backupManifest is the sidecar FILE.json written beside a backup: what the copy must hold, so that a
// restore can tell a damaged or swapped file, and a chain cut short, from the copy that was made.
type backupManifest struct {
	Format    string    `json:"format"`
	Created   time.Time `json:"created"`
	Bytes     int64     `json:"bytes"`
	SHA256    string    `json:"sha256"`
	AuditSeq  int64     `json:"auditHeadSeq"`
	AuditHash string    `json:"auditHeadHash"`
	Records   int64     `json:"auditRecords"`
}

const backupFormat = "gpfhir-sqlite-backup/1"

// backupCommand is "gpfhir backup --data-dir D --out FILE": an online copy of the SQLite store (the
// server may keep running), verified, with its audit head recorded in FILE.json.
func backupCommand(ctx context.Context, args []string, getenv func(string) string, stdout io.Writer) error {
	fs := flag.NewFlagSet("backup", flag.ContinueOnError)
	dataDir := fs.String("data-dir", "./data", "directory of the SQLite store to back up")
	out := fs.String("out", "", "the backup file to write (must not exist); FILE.json records its audit head")
	if err := parseFlags(fs, args, getenv); err != nil {
		return err
	}
	var errs configErrors
	if *out == "" {
		errs.addf("--out is required: the file to write the backup to")
	}
	db := filepath.Join(*dataDir, "gpfhir.db")
	if _, err := os.Stat(db); err != nil {
		errs.addf("--data-dir %s holds no gpfhir.db to back up", *dataDir)
	}
	for _, p := range []string{*out, *out + ".json"} {
		if _, err := os.Lstat(p); *out != "" && err == nil {
			errs.addf("%s exists already; a backup never overwrites a file", p)
		}
	}
	if err := errs.err(); err != nil {
		return err
	}
	st, err := sqlite.Open(ctx, *dataDir)
	if err != nil {
		return err
	}
	// The copy is made in a directory of its own, opened and verified there, and only then moved to
	// --out, so that --out is never a partial or unverified copy.
	work, err := os.MkdirTemp(filepath.Dir(*out), ".gpfhir-backup-")
	if err != nil {
		st.Close()
		return err
	}
	defer os.RemoveAll(work)
	err = st.Backup(ctx, filepath.Join(work, "gpfhir.db"))
	if cerr := st.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return err
	}
	res, err := verifyStoreIn(ctx, work)
	if err != nil {
		return fmt.Errorf("backup: the copy does not verify: %w", err)
	}
	m := backupManifest{Format: backupFormat, Created: time.Now().UTC(), AuditSeq: res.HeadSeq,
		AuditHash: hex.EncodeToString(res.Head), Records: res.Records}
	if m.Bytes, m.SHA256, err = fileDigest(filepath.Join(work, "gpfhir.db")); err != nil {
		return err
	}
	// VACUUM INTO creates the file with the process's umask; it holds health records.
	if err := os.Chmod(filepath.Join(work, "gpfhir.db"), 0o600); err != nil {
		return err
	}
	if err := os.Rename(filepath.Join(work, "gpfhir.db"), *out); err != nil {
		return err
	}
	raw, _ := json.MarshalIndent(m, "", "  ")
	if err := writeFileSync(*out+".json", append(raw, '\n')); err != nil {
		return err
	}
	fmt.Fprintf(stdout, "backup %s: %d bytes, sha256 %s\naudit chain %s\nhead: record %d, hash %s (in %s.json)\n",
		*out, m.Bytes, m.SHA256, res, m.AuditSeq, m.AuditHash, *out)
	return nil
}

// restoreCommand is "gpfhir restore --from FILE --data-dir D": it puts a backup in place as D's
// database, after checking it against FILE.json, and verifies the audit chain of the result. It never
// replaces a database: D must hold none (move the old one aside first), and the server must be stopped.
func restoreCommand(ctx context.Context, args []string, getenv func(string) string, stdout io.Writer) error {
	fs := flag.NewFlagSet("restore", flag.ContinueOnError)
	from := fs.String("from", "", "the backup file written by gpfhir backup (its FILE.json beside it)")
	dataDir := fs.String("data-dir", "./data", "directory to restore into; it must hold no gpfhir.db")
	if err := parseFlags(fs, args, getenv); err != nil {
		return err
	}
	var errs configErrors
	var m backupManifest
	if *from == "" {
		errs.addf("--from is required: the backup file to restore")
	} else if raw, err := os.ReadFile(*from + ".json"); err != nil {
		errs.addf("%s.json: %v (the manifest gpfhir backup writes beside the file)", *from, err)
	} else if err := json.Unmarshal(raw, &m); err != nil || m.Format != backupFormat {
		errs.addf("%s.json is not a gpfhir backup manifest (%s)", *from, backupFormat)
	}
	for _, name := range []string{"gpfhir.db", "gpfhir.db-wal", "gpfhir.db-shm"} {
		if _, err := os.Lstat(filepath.Join(*dataDir, name)); err == nil {
			errs.addf("%s exists: restore never replaces a database; stop the server and move it aside first", filepath.Join(*dataDir, name))
		}
	}
	if err := errs.err(); err != nil {
		return err
	}
	n, sum, err := fileDigest(*from)
	if err != nil {
		return err
	}
	if n != m.Bytes || sum != m.SHA256 {
		return fmt.Errorf("%s is not the file its manifest describes (%d bytes, sha256 %s; the manifest says %d bytes, %s)", *from, n, sum, m.Bytes, m.SHA256)
	}
	if err := os.MkdirAll(*dataDir, 0o700); err != nil {
		return err
	}
	partial := filepath.Join(*dataDir, ".gpfhir.db.restoring")
	if err := copyFileSync(*from, partial); err != nil {
		os.Remove(partial)
		return err
	}
	if err := os.Rename(partial, filepath.Join(*dataDir, "gpfhir.db")); err != nil {
		return err
	}
	res, err := verifyStoreIn(ctx, *dataDir)
	if err != nil {
		return fmt.Errorf("restore: the restored database does not verify: %w", err)
	}
	if res.HeadSeq != m.AuditSeq || hex.EncodeToString(res.Head) != m.AuditHash {
		return fmt.Errorf("restore: the restored audit chain ends at record %d (%x), but the backup recorded record %d (%s)",
			res.HeadSeq, res.Head, m.AuditSeq, m.AuditHash)
	}
	fmt.Fprintf(stdout, "restored %s into %s\naudit chain %s\nhead: record %d, hash %s, as recorded at backup\n",
		*from, *dataDir, res, res.HeadSeq, m.AuditHash)
	return nil
}

// verifyStoreIn opens the store in dir and verifies its audit chain; a broken chain is an error.
func verifyStoreIn(ctx context.Context, dir string) (audit.VerifyResult, error) {
	st, err := sqlite.Open(ctx, dir)
	if err != nil {
		return audit.VerifyResult{}, err
	}
	res, err := audit.Verify(ctx, st)
	if cerr := st.Close(); err == nil {
		err = cerr
	}
	if err == nil && !res.Intact {
		err = errors.New(res.String())
	}
	return res, err
}

func fileDigest(path string) (int64, string, error) {
	f, err := os.Open(path)
	if err != nil {
		return 0, "", err
	}
	defer f.Close()
	h := sha256.New()
	n, err := io.Copy(h, f)
	return n, hex.EncodeToString(h.Sum(nil)), err
}

// copyFileSync copies src to the new file dst and syncs it.
func copyFileSync(src, dst string) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	return copyReaderSync(in, dst)
}

func writeFileSync(path string, data []byte) error {
	return copyReaderSync(bytes.NewReader(data), path)
}

// copyReaderSync writes r to the new file dst (mode 0600: backups hold health records) and syncs it.
func copyReaderSync(r io.Reader, dst string) error {
	out, err := os.OpenFile(dst, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, r); err != nil {
		out.Close()
		return err
	}
	if err := out.Sync(); err != nil {
		out.Close()
		return err
	}
	return out.Close()
}
