package audit

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/gpfhir/gpfhir/fhir"
	"github.com/gpfhir/gpfhir/store"
)

// Export writes the records recorded in [since, until) (zero times leave either end open) to w as
// NDJSON, one AuditEvent per line as chained, in Seq order. It returns how many it wrote and the chain
// head it read up to (Seq and hash), so that the archive can be tied to a later verify.
func Export(ctx context.Context, st Store, w io.Writer, since, until time.Time) (n, last int64, head []byte, err error) {
	bw := bufio.NewWriterSize(w, 1<<16)
	for {
		page, err := st.AuditRange(ctx, last, 1000)
		if err != nil {
			return n, last, head, fmt.Errorf("after record %d: %w", last, err)
		}
		if len(page) == 0 {
			break
		}
		for _, r := range page {
			last, head = r.Seq, r.Hash
			if (!since.IsZero() && r.Recorded.Before(since)) || (!until.IsZero() && !r.Recorded.Before(until)) {
				continue
			}
			line := r.Body
			if bytes.ContainsAny(line, "\r\n") {
				var c bytes.Buffer
				if err := json.Compact(&c, line); err != nil {
					return n, last, head, fmt.Errorf("record %d (AuditEvent/%s): %w", r.Seq, r.ID, err)
				}
				line = c.Bytes()
			}
			bw.Write(line)
			bw.WriteByte('\n')
			n++
		}
	}
	return n, last, head, bw.Flush()
}

// copyPage is how many records Copy reads and appends at a time (at most MaxBatch).
const copyPage = 500

// Copy copies the audit chain from src to dst in Seq order, keeping Seq, ids, times, bodies and
// hashes, and indexing each record from its body. It resumes from dst's head, after checking that dst's
// chain is the beginning of src's. It returns how many records it appended and how many dst had.
func Copy(ctx context.Context, src, dst Store, baseURL string, progress io.Writer) (copied, had int64, err error) {
	head, hash, err := dst.AuditHead(ctx)
	if err != nil {
		return 0, 0, err
	}
	had = head
	anchor, err := src.AuditAnchor(ctx)
	if err != nil {
		return 0, had, err
	}
	switch {
	case anchor.Seq > head:
		// The store interface appends after the head and has no way to start a chain at an anchor.
		return 0, had, fmt.Errorf("the source's audit chain was pruned up to record %d and the target holds %d records: "+
			"a pruned chain cannot be copied to a store that lacks its anchor record (copy before pruning)", anchor.Seq, head)
	case head > 0 && head == anchor.Seq:
		if !bytes.Equal(anchor.Hash, hash) {
			return 0, had, fmt.Errorf("the target's audit chain (%d records) is not the beginning of the source's", head)
		}
	case head > 0:
		same, err := src.AuditRange(ctx, head-1, 1)
		if err != nil {
			return 0, had, err
		}
		if len(same) != 1 || same[0].Seq != head || !bytes.Equal(same[0].Hash, hash) {
			return 0, had, fmt.Errorf("the target's audit chain (%d records) is not the beginning of the source's", head)
		}
	}
	for {
		page, err := src.AuditRange(ctx, head, copyPage)
		if err != nil {
			return copied, had, err
		}
		if len(page) == 0 {
			return copied, had, nil
		}
		for i := range page {
			if page[i].Index, err = fhir.ExtractBody(page[i].Body, baseURL); err != nil {
				return copied, had, fmt.Errorf("index AuditEvent/%s (record %d): %w", page[i].ID, page[i].Seq, err)
			}
		}
		if err := dst.AppendAudit(ctx, page); err != nil {
			if errors.Is(err, store.ErrInvalidQuery) {
				err = fmt.Errorf("%w (is the source's chain intact? run gpfhir audit verify on it)", err)
			}
			return copied, had, fmt.Errorf("append audit records %d-%d: %w", page[0].Seq, page[len(page)-1].Seq, err)
		}
		head = page[len(page)-1].Seq
		copied += int64(len(page))
		fmt.Fprintf(progress, "progress: audit chain copied up to record %d\n", head)
	}
}
