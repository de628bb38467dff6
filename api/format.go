package api

import (
	"bytes"
	"compress/gzip"
	"encoding/json"
	"mime"
	"net/http"
	"strconv"
	"strings"

	"github.com/gin-gonic/gin"
)

const (
	fhirJSON      = "application/fhir+json; charset=utf-8"
	jsonPatchType = "application/json-patch+json"
)

// jsonFormats are the _format values and media types that mean FHIR JSON. Plain application/json is
// included because real clients send it.
var jsonFormats = map[string]bool{
	"json":                  true,
	"application/json":      true,
	"application/fhir+json": true,
	"application/json+fhir": true, // DSTU2-era spelling that some clients still send
}

var xmlFormats = map[string]bool{
	"xml":                  true,
	"text/xml":             true,
	"application/xml":      true,
	"application/fhir+xml": true,
	"application/xml+fhir": true,
}

// negotiate checks that the client can take JSON: from _format when given (it overrides Accept, as the
// spec says), otherwise from the Accept header.
func negotiate(c *gin.Context) *apiError {
	if f := c.Query("_format"); f != "" {
		mt := mediaType(f)
		if jsonFormats[mt] {
			return nil
		}
		return fail(kindNotAcceptable,
			"_format=%s is not supported: this server only produces FHIR JSON (_format=json or application/fhir+json)", f).at("_format")
	}
	accept := c.GetHeader("Accept")
	if accept == "" {
		return nil
	}
	for _, part := range strings.Split(accept, ",") {
		mt := mediaType(part)
		if q := quality(part); q == 0 {
			continue
		}
		if jsonFormats[mt] || mt == "*/*" || mt == "application/*" {
			return nil
		}
	}
	return fail(kindNotAcceptable,
		"cannot answer Accept: %s: this server only produces FHIR JSON (application/fhir+json or application/json)", accept)
}

// checkBodyType checks the Content-Type of a request body. A missing type is taken as JSON, because curl
// users often leave it out and the body is validated anyway.
func checkBodyType(c *gin.Context, allowed ...string) *apiError {
	ct := c.GetHeader("Content-Type")
	if ct == "" {
		return nil
	}
	mt := mediaType(ct)
	for _, a := range allowed {
		if mt == a {
			return nil
		}
	}
	if xmlFormats[mt] {
		return fail(kindUnsupportedMedia,
			"Content-Type %s is not supported: this server only accepts FHIR JSON (application/fhir+json)", mt)
	}
	return fail(kindUnsupportedMedia,
		"Content-Type %s is not supported here; use %s", mt, strings.Join(allowed, " or "))
}

func mediaType(s string) string {
	mt, _, err := mime.ParseMediaType(strings.TrimSpace(s))
	if err != nil {
		return strings.ToLower(strings.TrimSpace(s))
	}
	return mt
}

func quality(part string) float64 {
	_, params, err := mime.ParseMediaType(strings.TrimSpace(part))
	if err != nil {
		return 1
	}
	q, ok := params["q"]
	if !ok {
		return 1
	}
	f, err := strconv.ParseFloat(q, 64)
	if err != nil {
		return 1
	}
	return f
}

func pretty(c *gin.Context) bool {
	return c.Query("_pretty") == "true"
}

func indent(body []byte) []byte {
	var buf bytes.Buffer
	if err := json.Indent(&buf, body, "", "  "); err != nil {
		return body
	}
	buf.WriteByte('\n')
	return buf.Bytes()
}

// writeFixed answers 200 with a fixed document, gzipped when the client accepts that and asks for the
// document as it is stored (not _pretty, which re-indents it). The gzipped bytes are made once with the
// document, so the answer costs no compression; Vary tells caches that the two forms differ.
func writeFixed(c *gin.Context, body, gz []byte) {
	c.Writer.Header().Add("Vary", "Accept-Encoding")
	if gz == nil || c.Request.Method != http.MethodGet || pretty(c) || !acceptsGzip(c.Request.Header.Values("Accept-Encoding")) {
		writeFHIR(c, http.StatusOK, body)
		return
	}
	c.Header("Content-Type", fhirJSON)
	c.Header("Content-Encoding", "gzip")
	c.Header("Content-Length", strconv.Itoa(len(gz)))
	c.Status(http.StatusOK)
	_, _ = c.Writer.Write(gz)
}

// gzipped compresses a fixed document, once, as hard as gzip can.
func gzipped(body []byte) ([]byte, error) {
	var buf bytes.Buffer
	zw, err := gzip.NewWriterLevel(&buf, gzip.BestCompression)
	if err != nil {
		return nil, err
	}
	if _, err := zw.Write(body); err != nil {
		return nil, err
	}
	if err := zw.Close(); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

// acceptsGzip reads Accept-Encoding as RFC 9110 §12.5.3 does: gzip (or x-gzip) is acceptable when it
// is listed, or covered by *, with a weight above zero; an explicit entry outweighs *.
func acceptsGzip(headers []string) bool {
	named, star := -1.0, -1.0
	for _, h := range headers {
		for _, item := range strings.Split(h, ",") {
			coding, params, _ := strings.Cut(item, ";")
			q := 1.0
			for _, p := range strings.Split(params, ";") {
				k, v, ok := strings.Cut(strings.TrimSpace(p), "=")
				if ok && strings.EqualFold(strings.TrimSpace(k), "q") {
					if f, err := strconv.ParseFloat(strings.TrimSpace(v), 64); err == nil {
						q = f
					} else {
						q = 0 // a weight that cannot be read is not consent
					}
				}
			}
			switch coding = strings.ToLower(strings.TrimSpace(coding)); coding {
			case "gzip", "x-gzip":
				named = max(named, q)
			case "*":
				star = max(star, q)
			}
		}
	}
	if named >= 0 {
		return named > 0
	}
	return star > 0
}

// Header values that are the same on every answer, set as these slices so that setting them allocates
// nothing. net/http only reads an answer's header values, and an Add to the same name copies before it
// appends, since each slice's capacity is its length.
var (
	hdrFHIRJSON = []string{fhirJSON}
	hdrNoStore  = []string{"no-store"}
	hdrNosniff  = []string{"nosniff"}
)

// writeFHIR writes a FHIR JSON body, honouring _pretty and HEAD.
func writeFHIR(c *gin.Context, status int, body []byte) {
	c.Writer.Header()["Content-Type"] = hdrFHIRJSON
	c.Status(status)
	if c.Request.Method == http.MethodHead || body == nil {
		return
	}
	if pretty(c) {
		body = indent(body)
	}
	c.Header("Content-Length", strconv.Itoa(len(body)))
	_, _ = c.Writer.Write(body)
}
