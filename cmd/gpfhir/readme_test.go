//go:build unix

// The README's examples are shell run in a terminal, and stopping a block that hangs means killing its
// process group; both are Unix things, hence the build constraint.

package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"
)

// readmeBlock is one fenced shell block of README.md and what its readme-test comments say about it.
type readmeBlock struct {
	line    int // of the opening fence, for messages
	code    string
	skip    bool
	expects []string
}

// readmeDirective is an HTML comment, invisible in the rendered README, that says how the test treats the
// next shell block: <!-- readme-test: skip (why) --> or <!-- readme-test: expect TEXT -->, where TEXT
// must appear in the block's output.
var readmeDirective = regexp.MustCompile(`^<!--\s*readme-test:\s*(.*?)\s*-->$`)

// readmeLocalBase is the base URL the README's examples call: serve's default --addr.
const readmeLocalBase = "http://127.0.0.1:8080"

// readmeBlocks finds the shell blocks of a Markdown text. A directive must be followed, across blank
// lines and other directives only, by a shell block; one that is not is an error, so that a directive
// cannot silently stop applying when the text around it is edited.
func readmeBlocks(md string) ([]readmeBlock, error) {
	lines := strings.Split(md, "\n")
	var blocks []readmeBlock
	var pending *readmeBlock
	pendingLine := 0
	for i := 0; i < len(lines); i++ {
		line := strings.TrimSpace(lines[i])
		if m := readmeDirective.FindStringSubmatch(line); m != nil {
			if pending == nil {
				pending, pendingLine = &readmeBlock{}, i+1
			}
			switch d := m[1]; {
			case d == "skip" || strings.HasPrefix(d, "skip "):
				pending.skip = true
			case strings.HasPrefix(d, "expect "):
				pending.expects = append(pending.expects, strings.TrimSpace(strings.TrimPrefix(d, "expect ")))
			default:
				return nil, fmt.Errorf("line %d: unknown readme-test directive %q (want skip or expect TEXT)", i+1, d)
			}
			continue
		}
		if line == "" {
			continue
		}
		fence, ok := strings.CutPrefix(line, "```")
		if !ok {
			if pending != nil {
				return nil, fmt.Errorf("line %d: readme-test directive is not followed by a shell block", pendingLine)
			}
			continue
		}
		start := i + 1
		var code []string
		for i++; i < len(lines) && strings.TrimSpace(lines[i]) != "```"; i++ {
			code = append(code, lines[i])
		}
		if i == len(lines) {
			return nil, fmt.Errorf("line %d: code block is not closed", start)
		}
		switch strings.TrimSpace(fence) {
		case "sh", "bash", "shell":
			b := readmeBlock{}
			if pending != nil {
				b = *pending
			}
			b.line, b.code = start, strings.Join(code, "\n")+"\n"
			blocks = append(blocks, b)
		default:
			if pending != nil {
				return nil, fmt.Errorf("line %d: readme-test directive is followed by a %q block, not a shell block", pendingLine, fence)
			}
		}
		pending = nil
	}
	if pending != nil {
		return nil, fmt.Errorf("line %d: readme-test directive is not followed by a shell block", pendingLine)
	}
	return blocks, nil
}

func TestReadmeBlocksCarryTheirDirectives(t *testing.T) {
	tests := []struct {
		name    string
		md      string
		want    []readmeBlock
		wantErr string
	}{
		{
			name: "skip and expect apply to the next shell block only",
			md: "# T\n<!-- readme-test: skip (server) -->\n```sh\ngo run ./cmd/gpfhir serve --dev\n```\ntext\n\n" +
				"<!-- readme-test: expect \"a\":1 -->\n<!-- readme-test: expect b c -->\n\n```bash\ncurl x\ncurl y\n```\n" +
				"```json\n{}\n```\n```sh\necho z\n```\n",
			want: []readmeBlock{
				{line: 3, code: "go run ./cmd/gpfhir serve --dev\n", skip: true},
				{line: 11, code: "curl x\ncurl y\n", expects: []string{`"a":1`, "b c"}},
				{line: 18, code: "echo z\n"},
			},
		},
		{name: "a directive before prose", md: "<!-- readme-test: skip -->\nSome text.\n```sh\nx\n```\n", wantErr: "line 1: readme-test directive is not followed"},
		{name: "a directive before another language", md: "<!-- readme-test: expect x -->\n```json\n{}\n```\n", wantErr: `followed by a "json" block`},
		{name: "a directive at the end", md: "```sh\nx\n```\n<!-- readme-test: skip -->\n", wantErr: "line 4: readme-test directive"},
		{name: "an unknown directive", md: "<!-- readme-test: run twice -->\n```sh\nx\n```\n", wantErr: `unknown readme-test directive "run twice"`},
		{name: "an unclosed block", md: "```sh\nx\n", wantErr: "line 1: code block is not closed"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := readmeBlocks(tt.md)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("error %v, want one containing %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if fmt.Sprintf("%+v", got) != fmt.Sprintf("%+v", tt.want) {
				t.Errorf("blocks\n got %+v\nwant %+v", got, tt.want)
			}
		})
	}
}

// TestReadmeQuickStartRunsAsWritten runs README.md's quick start against a fresh server: the server is
// started with the README's own serve command (on a free port and a temporary --data-dir instead of the
// defaults), then every shell block not marked skip runs in order, each in its own bash, as a reader
// pastes it into a terminal. Each must exit 0 and print what its expect comments say.
//
// The blocks are rewritten only where the test's server differs from a reader's: "go run ./cmd/gpfhir"
// becomes the binary built here, and the README's base URL the test server's. The commands' defaults
// that point at a reader's server (dev-token's --issuer, the audit commands' --data-dir) are given
// through their GPFHIR_* environment variables, as any user may.
func TestReadmeQuickStartRunsAsWritten(t *testing.T) {
	for _, tool := range []string{"bash", "curl"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("the README's examples need %s, which is not installed", tool)
		}
	}
	md, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	blocks, err := readmeBlocks(string(md))
	if err != nil {
		t.Fatalf("README.md: %v", err)
	}

	serveArgs, testCmd := readmeSkippedCommands(t, blocks)
	ci, err := os.ReadFile("../../.ci/run")
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Contains(strings.Split(string(ci), "\n"), testCmd) {
		t.Errorf("the README's test command %q is not a line of .ci/run, which is what CI runs", testCmd)
	}

	bin := buildGpfhir(t)
	dataDir := t.TempDir()
	base := startReadmeServer(t, bin, append(serveArgs, "--addr", "127.0.0.1:0", "--data-dir", dataDir))

	env := append(environWithoutGpfhir(), "GPFHIR_ISSUER="+base+"/dev-idp", "GPFHIR_DATA_DIR="+dataDir)
	workDir := t.TempDir()
	ran := 0
	for _, b := range blocks {
		if b.skip {
			continue
		}
		ran++
		if len(b.expects) == 0 {
			t.Errorf("README.md line %d: a block the test runs needs at least one <!-- readme-test: expect TEXT --> saying what its output shows", b.line)
			continue
		}
		script := strings.ReplaceAll(b.code, "go run ./cmd/gpfhir", shellQuote(bin))
		script = strings.ReplaceAll(script, readmeLocalBase, base)
		if strings.Contains(script, ":8080") {
			t.Errorf("README.md line %d: the block names port 8080 in a form other than %s, which the test cannot point at its server", b.line, readmeLocalBase)
			continue
		}
		out, err := runReadmeBlock(t, script, env, workDir)
		if err != nil {
			t.Errorf("README.md line %d: the block failed (%v); its output:\n%s", b.line, err, out)
			continue
		}
		for _, want := range b.expects {
			if !strings.Contains(out, want) {
				t.Errorf("README.md line %d: the output lacks %q; it was:\n%s", b.line, want, out)
			}
		}
	}
	if ran == 0 {
		t.Error("README.md has no shell block for the test to run")
	}
}

// readmeSkippedCommands finds, in the blocks marked skip, the arguments of the README's serve command
// and its test command line.
func readmeSkippedCommands(t *testing.T, blocks []readmeBlock) (serveArgs []string, testCmd string) {
	t.Helper()
	var serves, tests []string
	for _, b := range blocks {
		if !b.skip {
			continue
		}
		for _, line := range strings.Split(b.code, "\n") {
			line, _, _ = strings.Cut(line, "#")
			line = strings.TrimSpace(line)
			if rest, ok := strings.CutPrefix(line, "go run ./cmd/gpfhir serve"); ok {
				serves = append(serves, rest)
			}
			if strings.HasPrefix(line, "go test") {
				tests = append(tests, line)
			}
		}
	}
	if len(serves) != 1 || len(tests) != 1 {
		t.Fatalf("README.md must have one skipped block line that starts the server (go run ./cmd/gpfhir serve ...) and one that runs the tests (go test ...); found %q and %q", serves, tests)
	}
	return append([]string{"serve"}, strings.Fields(serves[0])...), tests[0]
}

// buildGpfhir builds the command once into a temporary directory, so that the blocks run the binary
// rather than compiling it at every "go run".
func buildGpfhir(t *testing.T) string {
	t.Helper()
	goTool, err := exec.LookPath("go")
	if err != nil {
		t.Fatalf("the go command is needed to build gpfhir: %v", err)
	}
	bin := filepath.Join(t.TempDir(), "gpfhir")
	cmd := exec.Command(goTool, "build", "-o", bin, ".")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	return bin
}

// startReadmeServer starts the binary with args in its own process group, and returns the base URL it
// reports once /readyz answers. The server is stopped when the test ends.
func startReadmeServer(t *testing.T, bin string, args []string) string {
	t.Helper()
	cmd := exec.Command(bin, args...)
	cmd.Env = environWithoutGpfhir()
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	logs := &syncBuffer{}
	listening := make(chan string, 1)
	go func() {
		// Reading to the end keeps the server from blocking on a full pipe.
		sc := bufio.NewScanner(stderr)
		sc.Buffer(make([]byte, 0, 64<<10), 1<<20)
		for sc.Scan() {
			fmt.Fprintln(logs, sc.Text())
			var line struct {
				Msg     string `json:"msg"`
				BaseURL string `json:"base_url"`
			}
			if json.Unmarshal(sc.Bytes(), &line) == nil && line.Msg == "gpfhir listening" {
				select {
				case listening <- line.BaseURL:
				default:
				}
			}
		}
		_, _ = io.Copy(logs, stderr)
		exited <- cmd.Wait()
	}()
	t.Cleanup(func() {
		_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGTERM)
		select {
		case <-exited:
		case <-time.After(15 * time.Second):
			_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
			<-exited
		}
	})

	var base string
	select {
	case base = <-listening:
	case err := <-exited:
		t.Fatalf("gpfhir %s exited before listening (%v):\n%s", strings.Join(args, " "), err, logs)
	case <-time.After(45 * time.Second):
		t.Fatalf("gpfhir %s did not start listening:\n%s", strings.Join(args, " "), logs)
	}
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		resp, err := http.Get(base + "/readyz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return base
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s/readyz did not answer 200 (last: %v %v):\n%s", base, resp, err, logs)
		}
	}
}

// runReadmeBlock runs one block in bash, stricter than an interactive shell (-e -u -o pipefail), so that
// a failing command anywhere fails the block rather than only the last one counting. It returns
// standard output and standard error together, since some commands report on standard error.
func runReadmeBlock(t *testing.T, script string, env []string, dir string) (string, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 45*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, "bash", "-e", "-u", "-o", "pipefail", "-c", script)
	cmd.Env, cmd.Dir = env, dir
	// curl and dev-token are children of bash: a block that hangs is stopped as a group.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	cmd.WaitDelay = 5 * time.Second
	out, err := cmd.CombinedOutput()
	if ctx.Err() != nil {
		err = errors.Join(err, fmt.Errorf("stopped after 45s"))
	}
	return string(out), err
}

// environWithoutGpfhir is this process's environment without GPFHIR_* variables, so that a developer's
// own settings (GPFHIR_ADDR, GPFHIR_STORE, ...) do not change what the README's commands do here.
func environWithoutGpfhir() []string {
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "GPFHIR_") {
			env = append(env, kv)
		}
	}
	return env
}

// shellQuote quotes s as one bash word.
func shellQuote(s string) string {
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}
