package api_test

import (
	"bytes"
	"compress/gzip"
	"encoding/json"
	"io"
	"net/http"
	"slices"
	"strconv"
	"testing"
)

// TestMetadataIsGzippedForClientsThatAcceptIt fetches the CapabilityStatement with the encodings a client
// can ask for and checks that gzip is used exactly when it is acceptable, that it unpacks to the same
// document as the plain answer, and that caches are told the answer varies by Accept-Encoding.
func TestMetadataIsGzippedForClientsThatAcceptIt(t *testing.T) {
	ts := newTestServer(t)
	get := func(path, acceptEncoding string) (*http.Response, []byte) {
		t.Helper()
		req, err := http.NewRequest("GET", ts.URL+path, nil)
		if err != nil {
			t.Fatal(err)
		}
		// Set explicitly, the header stops the transport from asking for gzip and unpacking it itself.
		req.Header.Set("Accept-Encoding", acceptEncoding)
		resp, err := http.DefaultTransport.RoundTrip(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		body, err := io.ReadAll(resp.Body)
		if err != nil {
			t.Fatal(err)
		}
		if resp.StatusCode != 200 {
			t.Fatalf("GET %s with Accept-Encoding %q: status %d: %s", path, acceptEncoding, resp.StatusCode, body)
		}
		if v := resp.Header.Values("Vary"); !slices.Contains(v, "Accept-Encoding") {
			t.Errorf("GET %s with Accept-Encoding %q: Vary %q, want Accept-Encoding among them", path, acceptEncoding, v)
		}
		return resp, body
	}
	_, plain := get("/metadata", "identity")
	var cs struct{ ResourceType string }
	if err := json.Unmarshal(plain, &cs); err != nil || cs.ResourceType != "CapabilityStatement" {
		t.Fatalf("plain answer is not a CapabilityStatement (%v): %.200s", err, plain)
	}
	for _, c := range []struct {
		acceptEncoding string
		gzipped        bool
	}{
		{"gzip", true},
		{"br, gzip;q=0.5", true},
		{"*", true},
		{"x-gzip", true},
		{"gzip;q=0", false},
		{"*, gzip;q=0", false},
		{"*;q=0", false},
		{"br", false},
		{"gzip;q=nonsense", false},
	} {
		resp, body := get("/metadata", c.acceptEncoding)
		enc := resp.Header.Get("Content-Encoding")
		if !c.gzipped {
			if enc != "" || !bytes.Equal(body, plain) {
				t.Errorf("Accept-Encoding %q: Content-Encoding %q, want the plain document", c.acceptEncoding, enc)
			}
			continue
		}
		if enc != "gzip" {
			t.Errorf("Accept-Encoding %q: Content-Encoding %q, want gzip", c.acceptEncoding, enc)
			continue
		}
		if got := resp.Header.Get("Content-Length"); got != strconv.Itoa(len(body)) {
			t.Errorf("Accept-Encoding %q: Content-Length %q for %d gzipped bytes", c.acceptEncoding, got, len(body))
		}
		zr, err := gzip.NewReader(bytes.NewReader(body))
		if err != nil {
			t.Fatalf("Accept-Encoding %q: not gzip: %v", c.acceptEncoding, err)
		}
		unpacked, err := io.ReadAll(zr)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(unpacked, plain) {
			t.Errorf("Accept-Encoding %q: the gzipped answer unpacks to other bytes than the plain one", c.acceptEncoding)
		}
		if len(body)*4 > len(plain) {
			t.Errorf("Accept-Encoding %q: %d gzipped bytes for %d plain; want a quarter or less", c.acceptEncoding, len(body), len(plain))
		}
	}
	// _pretty re-indents the document, so it is served as it is made.
	resp, pretty := get("/metadata?_pretty=true", "gzip")
	if enc := resp.Header.Get("Content-Encoding"); enc != "" || !bytes.Contains(pretty, []byte("\n  ")) {
		t.Errorf("_pretty with gzip accepted: Content-Encoding %q, indented %v; want the indented document, plain",
			enc, bytes.Contains(pretty, []byte("\n  ")))
	}
}
