package main

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/gpfhir/gpfhir/fhir"
	"github.com/gpfhir/gpfhir/store"
	"github.com/gpfhir/gpfhir/store/sqlite"
)

const importPractice = `{"resourceType":"Organization","id":"practice-y1","name":"Import Surgery",` +
	`"identifier":[{"system":"https://fhir.nhs.uk/Id/ods-organization-code","value":"Y00001"}]}`

// importFixtures writes a practice, a Synthea-shaped transaction (POSTs with urn:uuid fullUrls, a type
// not served that a served one refers to, a Patient with no practice) and an ndjson file, and returns the directory.
func importFixtures(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	tx := `{"resourceType":"Bundle","type":"transaction","entry":[
	 {"fullUrl":"urn:uuid:5b5c5f8e-0000-4000-8000-000000000001","resource":{"resourceType":"Patient","id":"5b5c5f8e-0000-4000-8000-000000000001","name":[{"family":"Imported"}],"gender":"female","birthDate":"1970-01-01"},"request":{"method":"POST","url":"Patient"}},
	 {"fullUrl":"urn:uuid:5b5c5f8e-0000-4000-8000-000000000002","resource":{"resourceType":"CarePlan","id":"5b5c5f8e-0000-4000-8000-000000000002","status":"active","intent":"plan","subject":{"reference":"urn:uuid:5b5c5f8e-0000-4000-8000-000000000001"}},"request":{"method":"POST","url":"CarePlan"}},
	 {"fullUrl":"urn:uuid:5b5c5f8e-0000-4000-8000-000000000003","resource":{"resourceType":"Observation","id":"5b5c5f8e-0000-4000-8000-000000000003","status":"final","code":{"text":"weight"},"subject":{"reference":"urn:uuid:5b5c5f8e-0000-4000-8000-000000000001"},"basedOn":[{"reference":"urn:uuid:5b5c5f8e-0000-4000-8000-000000000002"}],"effectiveDateTime":"2020-01-01"},"request":{"method":"POST","url":"Observation"}},
	 {"fullUrl":"urn:uuid:5b5c5f8e-0000-4000-8000-000000000004","resource":{"resourceType":"Practitioner","id":"5b5c5f8e-0000-4000-8000-000000000004","name":[{"family":"Doc"}]},"request":{"method":"POST","url":"Practitioner"}}
	]}`
	nd := `{"resourceType":"Practitioner","id":"nd-1","name":[{"family":"One"}]}
{"resourceType":"Practitioner","id":"nd-2","name":[{"family":"Two"}]}
{"resourceType":"Claim","id":"nd-3","status":"active"}
`
	for name, body := range map[string]string{"0-practice.json": importPractice, "patient.json": tx, "people.ndjson": nd} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(body), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

func runImport(t *testing.T, args ...string) (string, error) {
	t.Helper()
	var out, errOut bytes.Buffer
	err := importCommand(context.Background(), args, func(string) string { return "" }, strings.NewReader(""), &out, &errOut)
	return out.String(), err
}

func TestImportStoresServedTypesAndASecondRunStoresNothing(t *testing.T) {
	in := importFixtures(t)
	data := t.TempDir()
	// The practice first, so that --practice can find it.
	if out, err := runImport(t, "--data-dir", data, filepath.Join(in, "0-practice.json")); err != nil {
		t.Fatalf("import the practice: %v\n%s", err, out)
	}
	out, err := runImport(t, "--data-dir", data, "--practice", "Y00001", "--progress", "none", in)
	if err != nil {
		t.Fatalf("import: %v\n%s", err, out)
	}
	for _, want := range []string{"5 stored", "1 unchanged", "type not served: 2"} {
		if !strings.Contains(out, want) {
			t.Errorf("summary lacks %q:\n%s", want, out)
		}
	}
	st, err := sqlite.Open(context.Background(), data)
	if err != nil {
		t.Fatal(err)
	}
	obs, err := st.Get(context.Background(), "Observation", "5b5c5f8e-0000-4000-8000-000000000003")
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(string(obs.Body), "basedOn") || !strings.Contains(string(obs.Body), `"Patient/5b5c5f8e-0000-4000-8000-000000000001"`) {
		t.Errorf("the Observation keeps a reference to a type not served, or lost its patient: %s", obs.Body)
	}
	pt, err := st.Get(context.Background(), "Patient", "5b5c5f8e-0000-4000-8000-000000000001")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(pt.Body), "Organization/practice-y1") {
		t.Errorf("the Patient is not registered at --practice: %s", pt.Body)
	}
	audited, err := st.Search(context.Background(), store.Query{Type: store.AuditEventType, Limit: 1000})
	if err != nil {
		t.Fatal(err)
	}
	st.Close()
	if len(audited) == 0 {
		t.Errorf("the import wrote no audit records")
	}

	out, err = runImport(t, "--data-dir", data, "--practice", "Y00001", "--progress", "none", in)
	if err != nil {
		t.Fatalf("second import: %v\n%s", err, out)
	}
	if !strings.Contains(out, " 0 stored, 6 unchanged") {
		t.Errorf("the second import stored something:\n%s", out)
	}
}

func TestImportWithoutPracticeSkipsUnregisteredPatients(t *testing.T) {
	in := importFixtures(t)
	data := t.TempDir()
	out, err := runImport(t, "--data-dir", data, "--progress", "none", filepath.Join(in, "patient.json"))
	if err != nil {
		t.Fatalf("import: %v\n%s", err, out)
	}
	if !strings.Contains(out, "patient has no registered practice (give --practice ODS): 2") || !strings.Contains(out, "1 stored") {
		t.Errorf("want the Patient and its Observation skipped for having no practice, the Practitioner stored:\n%s", out)
	}
}

func TestImportReportsInvalidInputAndFails(t *testing.T) {
	dir := t.TempDir()
	bad := filepath.Join(dir, "bad.json")
	if err := os.WriteFile(bad, []byte(`{"resourceType":"Practitioner","id":"x1","gender":"sometimes"}`), 0o600); err != nil {
		t.Fatal(err)
	}
	out, err := runImport(t, "--data-dir", t.TempDir(), "--progress", "none", bad)
	if err == nil || !strings.Contains(out, "skipped, invalid: 1") || !strings.Contains(out, "gender") {
		t.Errorf("an invalid resource: err %v, summary:\n%s", err, out)
	}
	if _, err := runImport(t, "--data-dir", t.TempDir()); err == nil || !strings.Contains(err.Error(), "no PATH") {
		t.Errorf("no path: %v", err)
	}
}

func TestImportReadsStandardInput(t *testing.T) {
	var out, errOut bytes.Buffer
	err := importCommand(context.Background(), []string{"--data-dir", t.TempDir(), "--progress", "none", "-"},
		func(string) string { return "" }, strings.NewReader(importPractice), &out, &errOut)
	if err != nil || !strings.Contains(out.String(), "1 stored") {
		t.Fatalf("stdin import: %v\n%s%s", err, out.String(), errOut.String())
	}
}

// TestImportSyntheaSample imports the first patients of the shared Synthea sample from a .tgz, checks
// that every entry of a served type was kept, and that a second import stores nothing.
func TestImportSyntheaSample(t *testing.T) {
	const src = "../../../shared/data/synthea-r4.tgz"
	f, err := os.Open(src)
	if err != nil {
		t.Skipf("the Synthea sample %s is not here (%v); it is read from ../shared/data", src, err)
	}
	defer f.Close()
	// A temporary archive of the first 25 patient bundles keeps the test short; the benchmark takes
	// all 615.
	dir := t.TempDir()
	sub := filepath.Join(dir, "sample.tgz")
	served := subsetTgz(t, f, sub, 25)
	data := t.TempDir()
	if out, err := runImport(t, "--data-dir", data, filepath.Join(importFixtures(t), "0-practice.json")); err != nil {
		t.Fatalf("import the practice: %v\n%s", err, out)
	}
	out, err := runImport(t, "--data-dir", data, "--practice", "Y00001", "--workers", "2", "--progress", "none", sub)
	if err != nil {
		t.Fatalf("import: %v\n%s", err, out)
	}
	var stored, unchanged int
	if _, err := fmtSscan(out, &stored, &unchanged); err != nil {
		t.Fatalf("summary %q: %v", out, err)
	}
	if stored+unchanged != served {
		t.Errorf("%d stored + %d unchanged, want every one of the %d entries of a served type:\n%s", stored, unchanged, served, out)
	}
	out, err = runImport(t, "--data-dir", data, "--practice", "Y00001", "--progress", "none", sub)
	if err != nil {
		t.Fatalf("second import: %v\n%s", err, out)
	}
	if !strings.Contains(out, " 0 stored,") {
		t.Errorf("the second import stored something:\n%s", out)
	}
}

// subsetTgz copies the first n bundles of a tgz into a new tgz and counts their entries of served types.
func subsetTgz(t *testing.T, r io.Reader, path string, n int) int {
	t.Helper()
	gz, err := gzip.NewReader(r)
	if err != nil {
		t.Fatal(err)
	}
	tr := tar.NewReader(gz)
	out, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	defer out.Close()
	zw := gzip.NewWriter(out)
	tw := tar.NewWriter(zw)
	served := 0
	for copied := 0; copied < n; {
		h, err := tr.Next()
		if err != nil {
			t.Fatalf("the sample has fewer than %d bundles: %v", n, err)
		}
		if h.Typeflag != tar.TypeReg || !strings.HasSuffix(h.Name, ".json") {
			continue
		}
		body, err := io.ReadAll(tr)
		if err != nil {
			t.Fatal(err)
		}
		var b struct {
			Entry []struct {
				Resource struct {
					ResourceType string `json:"resourceType"`
				} `json:"resource"`
			} `json:"entry"`
		}
		if err := json.Unmarshal(body, &b); err != nil {
			t.Fatal(err)
		}
		for _, e := range b.Entry {
			if _, ok := fhir.LookupType(e.Resource.ResourceType); ok {
				served++
			}
		}
		if err := tw.WriteHeader(&tar.Header{Name: h.Name, Mode: 0o600, Size: int64(len(body)), Typeflag: tar.TypeReg}); err != nil {
			t.Fatal(err)
		}
		if _, err := tw.Write(body); err != nil {
			t.Fatal(err)
		}
		copied++
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	return served
}

// fmtSscan reads "N stored, M unchanged" from an import summary.
func fmtSscan(out string, stored, unchanged *int) (int, error) {
	_, rest, _ := strings.Cut(out, "): ")
	return fmt.Sscanf(rest, "%d stored, %d unchanged", stored, unchanged)
}

// TestImportPostsAnOversizedTransactionInParts imports a transaction of more entries than the server
// takes in one (a Synthea patient can have over a thousand), with its Patient last: every entry is
// stored, references to other entries' fullUrls still resolve across the parts, the summary says it
// was split, and a second import stores nothing.
func TestImportPostsAnOversizedTransactionInParts(t *testing.T) {
	const n = 1100
	const pid, did = "5b5c5f8e-0000-4000-8000-00000000aaaa", "5b5c5f8e-0000-4000-8000-00000000bbbb"
	var entries []string
	for i := range n {
		id := fmt.Sprintf("5b5c5f8e-0000-4000-9000-%012d", i)
		entries = append(entries, fmt.Sprintf(`{"fullUrl":"urn:uuid:%s","resource":{"resourceType":"Observation","id":"%s",`+
			`"status":"final","code":{"text":"weight"},"subject":{"reference":"urn:uuid:%s"},"performer":[{"reference":"urn:uuid:%s"}],`+
			`"effectiveDateTime":"2020-01-01"},"request":{"method":"POST","url":"Observation"}}`, id, id, pid, did))
	}
	entries = append(entries,
		fmt.Sprintf(`{"fullUrl":"urn:uuid:%s","resource":{"resourceType":"Practitioner","id":"%s","name":[{"family":"Doc"}]},"request":{"method":"POST","url":"Practitioner"}}`, did, did),
		fmt.Sprintf(`{"fullUrl":"urn:uuid:%s","resource":{"resourceType":"Patient","id":"%s","name":[{"family":"Big"}],"gender":"male","birthDate":"1950-01-01"},"request":{"method":"POST","url":"Patient"}}`, pid, pid))
	dir := t.TempDir()
	big := filepath.Join(dir, "big.json")
	if err := os.WriteFile(big, []byte(`{"resourceType":"Bundle","type":"transaction","entry":[`+strings.Join(entries, ",")+`]}`), 0o600); err != nil {
		t.Fatal(err)
	}
	data := t.TempDir()
	if out, err := runImport(t, "--data-dir", data, filepath.Join(importFixtures(t), "0-practice.json")); err != nil {
		t.Fatalf("import the practice: %v\n%s", err, out)
	}
	out, err := runImport(t, "--data-dir", data, "--practice", "Y00001", "--progress", "none", big)
	if err != nil {
		t.Fatalf("import: %v\n%s", err, out)
	}
	for _, want := range []string{fmt.Sprintf(": %d stored, 0 unchanged, 0 skipped", n+2), "posted in parts", "big.json: 1102 entries in 2 transactions"} {
		if !strings.Contains(out, want) {
			t.Errorf("summary lacks %q:\n%s", want, out)
		}
	}
	st, err := sqlite.Open(context.Background(), data)
	if err != nil {
		t.Fatal(err)
	}
	last, err := st.Get(context.Background(), "Observation", fmt.Sprintf("5b5c5f8e-0000-4000-9000-%012d", n-1))
	st.Close()
	if err != nil {
		t.Fatal(err)
	}
	for _, ref := range []string{`"Patient/` + pid + `"`, `"Practitioner/` + did + `"`} {
		if !strings.Contains(string(last.Body), ref) {
			t.Errorf("the last Observation (in the second part) does not refer to %s: %s", ref, last.Body)
		}
	}
	out, err = runImport(t, "--data-dir", data, "--practice", "Y00001", "--progress", "none", big)
	if err != nil {
		t.Fatalf("second import: %v\n%s", err, out)
	}
	if !strings.Contains(out, " 0 stored,") {
		t.Errorf("the second import stored something:\n%s", out)
	}
}

// A practitioner that comes in every patient's bundle is looked up once: after a bundle has stored it,
// the import knows it is there, and each lookup is an audited search whose record waits for the writer.
func TestImportLooksUpASharedResourceOnlyUntilItIsStored(t *testing.T) {
	data := t.TempDir()
	in := sharedPractitionerBundles(t, "7c0e0000-0000-4000-8000-0000000000aa", 3, 0, false)
	out := importAtPractice(t, data, "--workers", "1", in)
	if !strings.Contains(out, "7 stored, 2 unchanged") {
		t.Errorf("want the practitioner stored once, and the three patients and their immunisations:\n%s", out)
	}
	st, err := sqlite.Open(context.Background(), data)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	pr, err := st.Get(context.Background(), "Practitioner", "7c0e0000-0000-4000-8000-0000000000aa")
	if err != nil || pr.VersionID != 1 {
		t.Fatalf("the shared practitioner: version %d, %v; want version 1", pr.VersionID, err)
	}
	for i := 1; i <= 3; i++ {
		im, err := st.Get(context.Background(), "Immunization", fmt.Sprintf("7c0e0000-0000-4000-8000-00000000000%d-i", i))
		if err != nil || !strings.Contains(string(im.Body), `"Practitioner/7c0e0000-0000-4000-8000-0000000000aa"`) {
			t.Errorf("immunisation %d does not name the stored practitioner: %v %s", i, err, im.Body)
		}
	}
	audited, err := st.Search(context.Background(), store.Query{Type: store.AuditEventType, Limit: 1000})
	if err != nil {
		t.Fatal(err)
	}
	searches := 0
	for _, a := range audited {
		var ev struct {
			Entity []struct {
				Query []byte `json:"query"` // base64, which encoding/json decodes
			} `json:"entity"`
		}
		if err := json.Unmarshal(a.Resource.Body, &ev); err != nil {
			t.Fatal(err)
		}
		for _, e := range ev.Entity {
			if strings.Contains(string(e.Query), "_id=7c0e0000-0000-4000-8000-0000000000aa") {
				searches++
			}
		}
	}
	if searches != 1 {
		t.Errorf("the import searched %d times for the shared practitioner, want once (before the first bundle stored it)", searches)
	}
}

// Bundles that carry the same practitioner with different content, posted by several workers at once:
// the first to arrive is created and the others leave it as it is, as they would one after another.
func TestImportCreatesASharedResourceOnceUnderConcurrentWorkers(t *testing.T) {
	data := t.TempDir()
	const prID = "7c0e0000-0000-4000-8000-0000000000bb"
	const n = 24
	in := sharedPractitionerBundles(t, prID, n, 100, true)
	out := importAtPractice(t, data, "--workers", "8", in)
	if want := fmt.Sprintf("%d stored, %d unchanged", 2*n+1, n-1); !strings.Contains(out, want) {
		t.Errorf("want %q: the practitioner stored once, the patients and immunisations all:\n%s", want, out)
	}
	st, err := sqlite.Open(context.Background(), data)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	pr, err := st.Get(context.Background(), "Practitioner", prID)
	if err != nil || pr.VersionID != 1 {
		t.Errorf("the shared practitioner is at version %d (%v): a later bundle overwrote the one created first", pr.VersionID, err)
	}
}

// sharedPractitionerBundles writes n patient bundles, each with a Patient, an Immunization and the
// same Practitioner prID that performed it (with a name of its own in each bundle when vary is set),
// and returns their directory. Patient i's id ends in base+i.
func sharedPractitionerBundles(t *testing.T, prID string, n, base int, vary bool) string {
	t.Helper()
	in := t.TempDir()
	for i := 1; i <= n; i++ {
		id := fmt.Sprintf("7c0e0000-0000-4000-8000-%012d", base+i)
		family := "Shared"
		if vary {
			family += fmt.Sprint(i)
		}
		tx := `{"resourceType":"Bundle","type":"transaction","entry":[
		 {"fullUrl":"urn:uuid:` + prID + `","resource":{"resourceType":"Practitioner","id":"` + prID + `","name":[{"family":"` + family + `"}]},"request":{"method":"POST","url":"Practitioner"}},
		 {"fullUrl":"urn:uuid:` + id + `","resource":{"resourceType":"Patient","id":"` + id + `","gender":"female"},"request":{"method":"POST","url":"Patient"}},
		 {"fullUrl":"urn:uuid:` + id + `-i","resource":{"resourceType":"Immunization","id":"` + id + `-i","status":"completed",` +
			`"vaccineCode":{"text":"flu"},"patient":{"reference":"urn:uuid:` + id + `"},"occurrenceDateTime":"2020-01-01",` +
			`"performer":[{"actor":{"reference":"urn:uuid:` + prID + `"}}]},"request":{"method":"POST","url":"Immunization"}}]}`
		if err := os.WriteFile(filepath.Join(in, fmt.Sprintf("p%02d.json", i)), []byte(tx), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	return in
}

// importAtPractice imports the practice Y00001 into data and then args, registering patients there,
// and returns the summary.
func importAtPractice(t *testing.T, data string, args ...string) string {
	t.Helper()
	practice := filepath.Join(t.TempDir(), "practice.json")
	if err := os.WriteFile(practice, []byte(importPractice), 0o600); err != nil {
		t.Fatal(err)
	}
	if out, err := runImport(t, "--data-dir", data, practice); err != nil {
		t.Fatalf("import the practice: %v\n%s", err, out)
	}
	out, err := runImport(t, append([]string{"--data-dir", data, "--practice", "Y00001", "--progress", "none"}, args...)...)
	if err != nil {
		t.Fatalf("import: %v\n%s", err, out)
	}
	return out
}
