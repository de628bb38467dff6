package api

import (
	"bytes"
	"log/slog"
	"strings"
	"testing"
)

// A request's own logger is made on first use, and from then on every line names the request.
func TestRequestLoggerNamesTheRequestOnEveryLine(t *testing.T) {
	var buf bytes.Buffer
	req := &request{id: "rq-7", serverLog: slog.New(slog.NewJSONHandler(&buf, nil))}
	if req.log != nil {
		t.Fatal("the logger was made before it was wanted")
	}
	req.logger().Error("one", "k", 1)
	req.logger().Warn("two")
	lines := strings.Split(strings.TrimSpace(buf.String()), "\n")
	if len(lines) != 2 {
		t.Fatalf("want 2 lines, got %q", buf.String())
	}
	for _, l := range lines {
		if !strings.Contains(l, `"request_id":"rq-7"`) {
			t.Errorf("line without the request id: %s", l)
		}
	}
	buf.Reset()
	unnamed := &request{serverLog: slog.New(slog.NewJSONHandler(&buf, nil))}
	unnamed.logger().Info("import")
	if !strings.Contains(buf.String(), `"msg":"import"`) || strings.Contains(buf.String(), "request_id") {
		t.Errorf("a request without an id: %s", buf.String())
	}
	named := &request{id: "rq-8", log: slog.New(slog.NewJSONHandler(&buf, nil)).With("job", "j1")}
	buf.Reset()
	named.logger().Info("three")
	if !strings.Contains(buf.String(), `"job":"j1"`) || strings.Contains(buf.String(), "request_id") {
		t.Errorf("a request named otherwise lost its own logger: %s", buf.String())
	}
}
