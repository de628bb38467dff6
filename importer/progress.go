package importer

import (
	"context"
	"fmt"
	"strings"
	"sync/atomic"
	"time"
)

// startProgress reports progress until the returned function is called: on a terminal a bar redrawn in
// place (entries done, rate, share of the input read, ETA), otherwise a plain line every opt.Every so
// that logs stay readable. The share is of bytes read from the input files, the one total known before
// the end; for standard input there is none and only counts are shown.
func startProgress(ctx context.Context, opt Options, sum *Summary, read *atomic.Int64, total int64, start time.Time) func() {
	if opt.Progress == nil {
		return func() {}
	}
	every := opt.Every
	if opt.Terminal {
		every = 200 * time.Millisecond
	}
	done := make(chan struct{})
	stopped := make(chan struct{})
	go func() {
		defer close(stopped)
		t := time.NewTicker(every)
		defer t.Stop()
		for {
			select {
			case <-done:
				if opt.Terminal {
					fmt.Fprintf(opt.Progress, "\r%s\n", progressLine(opt, sum, read, total, start, true))
				}
				return
			case <-ctx.Done():
				return
			case <-t.C:
				if opt.Terminal {
					fmt.Fprintf(opt.Progress, "\r%s", progressLine(opt, sum, read, total, start, true))
				} else {
					fmt.Fprintln(opt.Progress, progressLine(opt, sum, read, total, start, false))
				}
			}
		}
	}()
	return func() {
		close(done)
		<-stopped
	}
}

func progressLine(opt Options, sum *Summary, read *atomic.Int64, total int64, start time.Time, bar bool) string {
	n := sum.Done()
	el := opt.Now().Sub(start)
	rate := float64(n) / max(el.Seconds(), 1e-9)
	line := fmt.Sprintf("%d entries, %.0f/s", n, rate)
	if total <= 0 {
		return "import: " + line
	}
	frac := min(float64(read.Load())/float64(total), 1)
	eta := "?"
	if frac > 0.001 {
		eta = (time.Duration(float64(el)/frac) - el).Round(time.Second).String()
	}
	if !bar {
		return fmt.Sprintf("import: %s, %.0f%% of the input read, ETA %s", line, 100*frac, eta)
	}
	const width = 30
	full := int(frac * width)
	return fmt.Sprintf("[%s%s] %3.0f%% %s, ETA %s   ", strings.Repeat("#", full), strings.Repeat(".", width-full), 100*frac, line, eta)
}
