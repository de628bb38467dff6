package bench

import (
	"errors"
	"net"
	"net/http"
	"time"
)

// Baseline is a server that answers every GET with the same bytes from memory, through a plain ServeMux
// and no middleware: the most a Go HTTP server on this machine can serve, against which the real server's
// figures are read. It listens on 127.0.0.1 only.
type Baseline struct {
	URL string
	srv *http.Server
}

// StartBaseline serves body as contentType at every path.
func StartBaseline(body []byte, contentType string) (*Baseline, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", contentType)
		_, _ = w.Write(body)
	})
	b := &Baseline{URL: "http://" + ln.Addr().String(), srv: &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}}
	go func() {
		if err := b.srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			panic(err)
		}
	}()
	return b, nil
}

// Scenario is the baseline as a scenario, to run first so that later runs get their ratio.
func (b *Baseline) Scenario() Scenario {
	return Scenario{Name: "static bytes (the limit)", As: "baseline", BaseURL: b.URL,
		Next: func(int, int64) Request { return Request{Method: "GET", Path: "/static"} }}
}

// Close stops the server.
func (b *Baseline) Close() error { return b.srv.Close() }
