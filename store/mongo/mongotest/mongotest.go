// Package mongotest starts an embedded FerretDB (a MongoDB-wire-compatible server backed by SQLite) for
// tests. One FerretDB serves the whole test binary; give every test its own database (see Database).
//
// Import this package only from _test.go files: it pulls FerretDB and its dependencies into the binary.
package mongotest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/FerretDB/FerretDB/ferretdb"
)

// EnvURI names the environment variable that points the Mongo tests at a real MongoDB deployment.
const EnvURI = "GPFHIR_TEST_MONGODB_URI"

var (
	mu      sync.Mutex
	uri     string
	dir     string
	cancel  context.CancelFunc
	done    chan struct{}
	counter atomic.Int64
)

// Start starts the embedded FerretDB the first time it is called in a test binary and returns its
// MongoDB URI. Later calls return the same URI. It binds 127.0.0.1 on a free port and keeps its data in
// a temporary directory; call Stop from TestMain to shut it down and remove that directory.
func Start(t testing.TB) string {
	t.Helper()
	u, err := start()
	if err != nil {
		t.Fatalf("mongotest: start FerretDB: %v", err)
	}
	return u
}

func start() (string, error) {
	mu.Lock()
	defer mu.Unlock()
	if uri != "" {
		return uri, nil
	}
	d, err := os.MkdirTemp("", "gpfhir-ferretdb-")
	if err != nil {
		return "", err
	}
	logger := slog.New(slog.NewTextHandler(io.Discard, nil))
	if os.Getenv("GPFHIR_TEST_FERRETDB_LOG") != "" {
		logger = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	}
	f, err := ferretdb.New(&ferretdb.Config{
		Listener:  ferretdb.ListenerConfig{TCP: "127.0.0.1:0"},
		Logger:    logger,
		Handler:   "sqlite",
		SQLiteURL: "file:" + d + "/",
	})
	if err != nil {
		_ = os.RemoveAll(d)
		return "", err
	}
	ctx, c := context.WithCancel(context.Background())
	ch := make(chan struct{})
	go func() {
		defer close(ch)
		_ = f.Run(ctx)
	}()
	// MongoDBURI blocks until the listener is bound; the port-0 address is resolved to the real port.
	got := make(chan string, 1)
	go func() { got <- f.MongoDBURI() }()
	select {
	case u := <-got:
		uri, dir, cancel, done = u, d, c, ch
		return uri, nil
	case <-ch:
		c()
		_ = os.RemoveAll(d)
		return "", fmt.Errorf("FerretDB stopped before listening")
	case <-time.After(30 * time.Second):
		c()
		_ = os.RemoveAll(d)
		return "", fmt.Errorf("FerretDB did not start listening within 30s")
	}
}

// Stop shuts the embedded FerretDB down, if it was started, and removes its data directory.
// Call it from TestMain after m.Run.
func Stop() {
	mu.Lock()
	defer mu.Unlock()
	if cancel == nil {
		return
	}
	cancel()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
	}
	_ = os.RemoveAll(dir)
	uri, dir, cancel, done = "", "", nil, nil
}

// Database returns a fresh database name, unique within the test binary and across binaries, derived
// from the test name so that leftovers on a real MongoDB can be traced back.
func Database(t testing.TB) string {
	var b [4]byte
	_, _ = rand.Read(b[:])
	name := strings.Map(func(r rune) rune {
		if r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' {
			return r
		}
		return '_'
	}, t.Name())
	if len(name) > 30 {
		name = name[len(name)-30:]
	}
	return fmt.Sprintf("gpfhir_%d_%s_%s", counter.Add(1), hex.EncodeToString(b[:]), name)
}
