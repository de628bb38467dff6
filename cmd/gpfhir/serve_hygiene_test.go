package main

import (
	"bufio"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"io"
	"math/big"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// selfSigned writes a certificate for 127.0.0.1 and its key, and returns their paths and a pool that
// trusts the certificate.
func selfSigned(t *testing.T) (certFile, keyFile string, pool *x509.CertPool) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "gpfhir test"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IPAddresses: []net.IP{net.ParseIP("127.0.0.1")}, KeyUsage: x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	kder, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	certFile, keyFile = filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	if err := os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kder}), 0o600); err != nil {
		t.Fatal(err)
	}
	cert, _ := x509.ParseCertificate(der)
	pool = x509.NewCertPool()
	pool.AddCert(cert)
	return certFile, keyFile, pool
}

// startPlainServe runs serve with args on a fresh data directory and returns its base URL and its log.
func startPlainServe(t *testing.T, args ...string) (string, *syncBuffer) {
	t.Helper()
	logs := &syncBuffer{}
	ctx, cancel := context.WithCancel(context.Background())
	listening := make(chan string, 1)
	done := make(chan error, 1)
	go func() {
		done <- serve(ctx, append([]string{"--addr", "127.0.0.1:0", "--data-dir", t.TempDir()}, args...), envFrom(nil), logs, listening)
	}()
	t.Cleanup(func() {
		cancel()
		select {
		case <-done:
		case <-time.After(30 * time.Second):
			t.Error("serve did not stop")
		}
	})
	select {
	case base := <-listening:
		return base, logs
	case err := <-done:
		t.Fatalf("serve exited: %v\n%s", err, logs.String())
	case <-time.After(2 * time.Minute):
		t.Fatal("serve did not start")
	}
	return "", nil
}

// logField finds the first log line with msg and returns its field.
func logField(logs string, msg, field string) string {
	for _, line := range strings.Split(logs, "\n") {
		var m map[string]any
		if json.Unmarshal([]byte(line), &m) == nil && m["msg"] == msg {
			s, _ := m[field].(string)
			return s
		}
	}
	return ""
}

// serve's own HTTPS, the separate metrics listener, and the slow-client timeouts.
func TestServeTLSMetricsListenerAndSlowClients(t *testing.T) {
	certFile, keyFile, pool := selfSigned(t)
	base, logs := startPlainServe(t, "--oidc-issuer", testIdP(t), "--oidc-audience", testAudience,
		"--tls-cert", certFile, "--tls-key", keyFile, "--metrics-addr", "127.0.0.1:0",
		"--read-header-timeout", "300ms")
	if !strings.HasPrefix(base, "https://127.0.0.1:") {
		t.Fatalf("base URL with --tls-cert: %s", base)
	}
	hc := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}}
	resp, err := hc.Get(base + "/healthz")
	if err != nil {
		t.Fatalf("https /healthz: %v", err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 || resp.TLS == nil {
		t.Fatalf("https /healthz: %d (TLS %v)", resp.StatusCode, resp.TLS != nil)
	}

	// Metrics: on their own listener without a token; not on the API's listener, where no token is set.
	maddr := logField(logs.String(), "metrics listening", "addr")
	if maddr == "" {
		t.Fatalf("no metrics listener logged:\n%s", logs.String())
	}
	resp, err = http.Get("http://" + maddr + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || !strings.Contains(string(body), "gpfhir_http_requests_total") {
		t.Fatalf("metrics listener: %d %.200s", resp.StatusCode, body)
	}
	if resp, err = hc.Get(base + "/metrics"); err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 404 {
		t.Errorf("/metrics on the API's listener without --metrics-token: %d, want 404", resp.StatusCode)
	}

	// A client that never finishes its headers is cut off after --read-header-timeout.
	conn, err := tls.Dial("tcp", strings.TrimPrefix(base, "https://"), &tls.Config{RootCAs: pool})
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if _, err := conn.Write([]byte("GET /healthz HTTP/1.1\r\nHost: x\r\n")); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	_ = conn.SetReadDeadline(time.Now().Add(10 * time.Second))
	line, err := bufio.NewReader(conn).ReadString('\n')
	if waited := time.Since(start); waited > 5*time.Second {
		t.Fatalf("a slow-header client held the connection for %s (read %q, %v)", waited, line, err)
	}
	if err == nil && !strings.Contains(line, "408") && !strings.Contains(line, "400") {
		t.Fatalf("a slow-header client got %q", line)
	}
}

func TestServeRefusesHalfATLSConfiguration(t *testing.T) {
	certFile, _, _ := selfSigned(t)
	err := serve(context.Background(), []string{"--data-dir", t.TempDir(), "--dev", "--tls-cert", certFile}, envFrom(nil), io.Discard, nil)
	if err == nil || !strings.Contains(err.Error(), "--tls-cert and --tls-key go together") {
		t.Fatalf("--tls-cert without --tls-key: %v", err)
	}
	err = serve(context.Background(), []string{"--data-dir", t.TempDir(), "--dev", "--read-timeout", "0s"}, envFrom(nil), io.Discard, nil)
	if err == nil || !strings.Contains(err.Error(), "--read-timeout") {
		t.Fatalf("--read-timeout 0: %v", err)
	}
}
