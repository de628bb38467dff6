package fhir

import (
	"archive/tar"
	"compress/gzip"
	"encoding/json"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// syntheaArchive is the shared Synthea R4 sample, outside the repository (see ../shared/data/README.md).
var syntheaArchive = filepath.Join("..", "..", "shared", "data", "synthea-r4.tgz")

// syntheaBundles calls fn for the first n patient bundles and every hospital/practitioner bundle.
func syntheaBundles(t testing.TB, n int, fn func(name string, b Bundle)) {
	t.Helper()
	f, err := os.Open(syntheaArchive)
	if err != nil {
		t.Skipf("Synthea sample not available (%v); it lives in ../shared/data next to the repository", err)
	}
	defer f.Close()
	gz, err := gzip.NewReader(f)
	if err != nil {
		t.Fatal(err)
	}
	tr := tar.NewReader(gz)
	patients, sharedSeen := 0, 0
	for {
		if patients >= n && sharedSeen >= 2 {
			return
		}
		h, err := tr.Next()
		if err == io.EOF {
			return
		}
		if err != nil {
			t.Fatal(err)
		}
		base := filepath.Base(h.Name)
		if h.Typeflag != tar.TypeReg || !strings.HasSuffix(base, ".json") {
			continue
		}
		shared := strings.HasPrefix(base, "hospitalInformation") || strings.HasPrefix(base, "practitionerInformation")
		if shared {
			sharedSeen++
		} else {
			if patients >= n {
				continue
			}
			patients++
		}
		data, err := io.ReadAll(tr)
		if err != nil {
			t.Fatal(err)
		}
		var b Bundle
		if err := json.Unmarshal(data, &b); err != nil {
			t.Fatalf("%s: %v", base, err)
		}
		fn(base, b)
	}
}

func TestSyntheaResourcesParseFinalizeAndExtract(t *testing.T) {
	if testing.Short() {
		t.Skip("reads the Synthea archive")
	}
	wanted := map[string]bool{"Patient": true, "Immunization": true, "MedicationRequest": true, "Organization": true, "Practitioner": true}
	counts := map[string]int{}
	syntheaBundles(t, 8, func(name string, b Bundle) {
		for i, e := range b.Entry {
			var head struct {
				ResourceType string `json:"resourceType"`
			}
			if err := json.Unmarshal(e.Resource, &head); err != nil || !wanted[head.ResourceType] {
				continue
			}
			r, err := Parse(e.Resource)
			if err != nil {
				t.Errorf("%s entry %d (%s): %v", name, i, head.ResourceType, err)
				continue
			}
			counts[head.ResourceType]++
			out, err := r.Finalize("x1", 1, time.Unix(1700000000, 0))
			if err != nil {
				t.Errorf("%s entry %d: Finalize: %v", name, i, err)
				continue
			}
			if _, err := Parse(out); err != nil {
				t.Errorf("%s entry %d: Finalize output does not parse again: %v", name, i, err)
			}
			if len(Extract(r, testBase)) == 0 {
				t.Errorf("%s entry %d (%s): no index entries", name, i, head.ResourceType)
			}
		}
	})
	for typ := range wanted {
		if counts[typ] == 0 {
			t.Errorf("no %s found in the sample", typ)
		}
	}
	t.Logf("parsed %v", counts)
}
