package api_test

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"testing"

	"github.com/gpfhir/gpfhir/audit"
	"github.com/gpfhir/gpfhir/store/mongo"
	"github.com/gpfhir/gpfhir/store/mongo/mongotest"
	"github.com/gpfhir/gpfhir/store/sqlite"
)

// backendEnv selects the store behind newTestServer. Unset, the HTTP tests run on SQLite and then, in a
// child process, once more on MongoDB (the embedded FerretDB), so that every interaction and search test
// holds for both backends through the same HTTP surface.
const backendEnv = "GPFHIR_TEST_BACKEND"

func TestMain(m *testing.M) {
	flag.Parse()
	code := m.Run()
	if code == 0 && os.Getenv(backendEnv) == "" && rerunOnMongo() {
		fmt.Println("== the same HTTP tests on MongoDB (embedded FerretDB)")
		cmd := exec.Command(os.Args[0], os.Args[1:]...)
		cmd.Env = append(os.Environ(), backendEnv+"=mongo")
		cmd.Stdout, cmd.Stderr = os.Stdout, os.Stderr
		if err := cmd.Run(); err != nil {
			fmt.Println("HTTP tests on MongoDB failed:", err)
			code = 1
		}
	}
	mongotest.Stop()
	os.Exit(code)
}

// rerunOnMongo is false for benchmark runs (their figures are per backend, in store/*) and when the run
// is filtered to no tests. Set GPFHIR_TEST_BACKEND=sqlite to run the SQLite pass alone.
func rerunOnMongo() bool {
	if f := flag.Lookup("test.bench"); f != nil && f.Value.String() != "" {
		return false
	}
	if f := flag.Lookup("test.run"); f != nil && f.Value.String() == "XXX" {
		return false
	}
	return true
}

// openTestStore opens the backend selected by GPFHIR_TEST_BACKEND on fresh storage for one test.
func openTestStore(t *testing.T) audit.Backend {
	t.Helper()
	switch os.Getenv(backendEnv) {
	case "", "sqlite":
		st, err := sqlite.Open(context.Background(), t.TempDir())
		if err != nil {
			t.Fatalf("open sqlite: %v", err)
		}
		return st
	case "mongo":
		uri := mongotest.Start(t)
		db := mongotest.Database(t)
		st, err := mongo.Open(context.Background(), mongo.Options{URI: uri, Database: db})
		if err != nil {
			t.Fatalf("open mongo: %v", err)
		}
		return st
	default:
		t.Fatalf("%s=%q: want sqlite or mongo", backendEnv, os.Getenv(backendEnv))
		return nil
	}
}
