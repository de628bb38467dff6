package main

import (
	"bufio"
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"

	"github.com/gpfhir/gpfhir/fhir"
	"github.com/gpfhir/gpfhir/store"
)

// exportCommand writes every current resource of the store as ndjson, one file per type (Type.ndjson),
// in id order through keyset pages, so that memory does not grow with the store. It reads the store
// directly, as an operator's tool with the data directory in hand; clients export with $export, which
// applies their access.
func exportCommand(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	var sc storeConfig
	var out string
	var types multiFlag
	fs := flag.NewFlagSet("export", flag.ContinueOnError)
	addStoreFlags(fs, &sc, "")
	fs.StringVar(&out, "out", "export", "directory to write Type.ndjson files into (created if missing)")
	fs.Var(&types, "type", "export only this type (repeatable; default every served type but AuditEvent, which audit export writes)")
	if err := parseFlags(fs, args, getenv); err != nil {
		return err
	}
	var errs configErrors
	sc.check(&errs, "")
	var list []string
	for _, t := range types {
		if _, ok := fhir.LookupType(t); !ok {
			errs.addf("--type %q is not a served resource type", t)
		}
		list = append(list, t)
	}
	if len(list) == 0 {
		for _, ti := range fhir.Types() {
			if ti.Name != store.AuditEventType {
				list = append(list, ti.Name)
			}
		}
	}
	if err := errs.err(); err != nil {
		return err
	}
	st, _, err := sc.open(ctx)
	if err != nil {
		return err
	}
	defer st.Close()
	if err := os.MkdirAll(out, 0o755); err != nil {
		return err
	}
	total := 0
	for _, typ := range list {
		n, err := exportType(ctx, st, typ, filepath.Join(out, typ+".ndjson"))
		if err != nil {
			return fmt.Errorf("export %s: %w", typ, err)
		}
		if n > 0 {
			fmt.Fprintf(stderr, "%s: %d\n", typ, n)
		}
		total += n
	}
	fmt.Fprintf(stdout, "exported %d resources to %s\n", total, out)
	return nil
}

// exportType writes one type's current resources; a type with none gets no file.
func exportType(ctx context.Context, st store.Store, typ, path string) (int, error) {
	var f *os.File
	var w *bufio.Writer
	n := 0
	after := ""
	for {
		q := store.Query{Type: typ, Limit: 1000}
		if after != "" {
			q.After = []store.SortValue{{Str: after}}
		}
		hits, err := st.Search(ctx, q)
		if err != nil {
			return n, err
		}
		for _, h := range hits {
			if f == nil {
				if f, err = os.Create(path); err != nil {
					return n, err
				}
				defer f.Close()
				w = bufio.NewWriterSize(f, 1<<16)
			}
			w.Write(h.Resource.Body)
			w.WriteByte('\n')
			n++
		}
		if len(hits) < 1000 {
			break
		}
		after = hits[len(hits)-1].Resource.ID
	}
	if w == nil {
		return 0, nil
	}
	if err := w.Flush(); err != nil {
		return n, err
	}
	return n, f.Close()
}
