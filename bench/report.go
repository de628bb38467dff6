package bench

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
	"text/tabwriter"
)

// Report is what a run found, as written by WriteJSON.
type Report struct {
	// Server says what was measured and how it was configured (rate limits off, store, data size).
	Server  map[string]string `json:"server"`
	Results []Result          `json:"results"`
}

// WriteTable writes the results as an aligned table.
func WriteTable(w io.Writer, results []Result) error {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "scenario\tas\tload\treq/s\tratio\tp50 ms\tp95 ms\tp99 ms\tmax ms\terrors\tCPU µs/req\tRSS MiB\t")
	for _, r := range results {
		load := fmt.Sprintf("%d conns", r.Connections)
		if r.Mode == "open" {
			load = fmt.Sprintf("%g/s open", r.Rate)
		}
		ratio := "-"
		if r.Ratio > 0 {
			ratio = fmt.Sprintf("%.3f", r.Ratio)
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%.0f\t%s\t%.2f\t%.2f\t%.2f\t%.2f\t%d\t%.0f\t%.0f\t\n", r.Scenario, r.As, load,
			r.ReqPerSec, ratio, r.P50Ms, r.P95Ms, r.P99Ms, r.MaxMs, r.Errors, r.CPUPerReqUs, r.RSSMiB)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	for _, r := range results {
		if r.FirstError != "" {
			fmt.Fprintf(w, "%s as %s (%d conns): first error: %s\n", r.Scenario, r.As, r.Connections, r.FirstError)
		}
	}
	return nil
}

// WriteJSON writes the report to path.
func WriteJSON(path string, rep Report) error {
	b, err := json.MarshalIndent(rep, "", "  ")
	if err != nil {
		return err
	}
	return os.WriteFile(path, append(b, '\n'), 0o644)
}
