package api_test

import (
	"context"
	"regexp"
	"testing"

	"github.com/gpfhir/gpfhir/store/sqlite"
)

func TestMetricsShowTheSQLiteWALSizeAndLimit(t *testing.T) {
	st, err := sqlite.Open(context.Background(), t.TempDir(), sqlite.WithWALLimit(3<<20))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	ts := newTestServerOn(t, st)
	body := string(ts.mustStatus(ts.get("/metrics", metricsHeader), 200).Body)
	for _, re := range []string{
		`(?m)^gpfhir_sqlite_wal_limit_bytes 3\.145728e\+06$`,
		`(?m)^gpfhir_sqlite_wal_bytes \d`,
	} {
		if !regexp.MustCompile(re).MatchString(body) {
			t.Errorf("/metrics has no line matching %s", re)
		}
	}
}
