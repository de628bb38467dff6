package importer

import (
	"archive/tar"
	"bufio"
	"bytes"
	"compress/gzip"
	"context"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync/atomic"
)

// doc is one input document: a JSON file, an archive member, standard input or a group of ndjson lines.
type doc struct {
	name string
	body []byte
	// lines marks ndjson: one resource per line.
	lines bool
}

// maxDoc bounds one document read into memory; Synthea's largest bundle is 3.9 MB.
const maxDoc = 256 << 20

// countingReader counts the bytes read from the input files, for progress as a share of their size.
type countingReader struct {
	r io.Reader
	n *atomic.Int64
}

func (c countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n.Add(int64(n))
	return n, err
}

// inputFiles expands paths (files and directories) into the files to read, in a stable order, and
// their total size. "-" stays as is.
func inputFiles(paths []string) ([]string, int64, error) {
	var out []string
	var total int64
	for _, p := range paths {
		if p == "-" {
			out = append(out, p)
			continue
		}
		info, err := os.Stat(p)
		if err != nil {
			return nil, 0, err
		}
		if !info.IsDir() {
			out = append(out, p)
			total += info.Size()
			continue
		}
		var found []string
		err = filepath.WalkDir(p, func(path string, d fs.DirEntry, err error) error {
			if err != nil {
				return err
			}
			if !d.IsDir() && readable(path) {
				found = append(found, path)
				if fi, err := d.Info(); err == nil {
					total += fi.Size()
				}
			}
			return nil
		})
		if err != nil {
			return nil, 0, err
		}
		sort.Strings(found)
		out = append(out, found...)
	}
	return out, total, nil
}

// readable says whether a file in a directory is input: JSON, ndjson or a gzipped tar of them.
func readable(name string) bool {
	n := strings.ToLower(name)
	for _, ext := range []string{".json", ".ndjson", ".jsonl", ".tgz", ".tar.gz"} {
		if strings.HasSuffix(n, ext) {
			return true
		}
	}
	return false
}

// readInputs sends every document of the files to out, in order. Organizations and Practitioners files
// (Synthea's hospitalInformation and practitionerInformation) need no special order: patient bundles
// carry their own copies.
func readInputs(ctx context.Context, files []string, stdin io.Reader, read *atomic.Int64, out chan<- doc) error {
	for _, f := range files {
		if err := readFile(ctx, f, stdin, read, out); err != nil {
			return fmt.Errorf("%s: %w", f, err)
		}
	}
	return nil
}

func readFile(ctx context.Context, name string, stdin io.Reader, read *atomic.Int64, out chan<- doc) error {
	var r io.Reader
	if name == "-" {
		r = stdin
	} else {
		f, err := os.Open(name)
		if err != nil {
			return err
		}
		defer f.Close()
		r = countingReader{r: f, n: read}
	}
	br := bufio.NewReaderSize(r, 1<<16)
	head, _ := br.Peek(2)
	if len(head) == 2 && head[0] == 0x1f && head[1] == 0x8b {
		return readTgz(ctx, br, out)
	}
	body, err := io.ReadAll(io.LimitReader(br, maxDoc+1))
	if err != nil {
		return err
	}
	if len(body) > maxDoc {
		return fmt.Errorf("larger than %d MB; split it or use ndjson", maxDoc>>20)
	}
	return send(ctx, out, doc{name: name, body: body, lines: isNDJSON(name, body)})
}

func readTgz(ctx context.Context, r io.Reader, out chan<- doc) error {
	gz, err := gzip.NewReader(r)
	if err != nil {
		return err
	}
	tr := tar.NewReader(gz)
	for {
		h, err := tr.Next()
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return err
		}
		if h.Typeflag != tar.TypeReg || !readable(h.Name) || strings.HasSuffix(h.Name, "gz") {
			continue
		}
		if h.Size > maxDoc {
			return fmt.Errorf("%s is larger than %d MB", h.Name, maxDoc>>20)
		}
		body, err := io.ReadAll(tr)
		if err != nil {
			return err
		}
		if err := send(ctx, out, doc{name: h.Name, body: body, lines: isNDJSON(h.Name, body)}); err != nil {
			return err
		}
	}
}

func send(ctx context.Context, out chan<- doc, d doc) error {
	select {
	case out <- d:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// isNDJSON tells ndjson from one JSON document: by name, or by a second top-level value after the first
// line.
func isNDJSON(name string, body []byte) bool {
	n := strings.ToLower(name)
	if strings.HasSuffix(n, ".ndjson") || strings.HasSuffix(n, ".jsonl") {
		return true
	}
	first, rest, ok := bytes.Cut(bytes.TrimSpace(body), []byte("\n"))
	if !ok {
		return false
	}
	first, rest = bytes.TrimSpace(first), bytes.TrimSpace(rest)
	return len(first) > 1 && first[0] == '{' && first[len(first)-1] == '}' && len(rest) > 0 && rest[0] == '{'
}
