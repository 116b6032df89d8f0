package redistest

import (
	"bufio"
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"math/big"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/redislock/redislock/internal/redisproc"
)

// TLSServer is a redis-server private to one test that accepts TLS
// connections only (--port 0), with a certificate for 127.0.0.1 signed by a
// CA made for it. Clients need no certificate of their own.
type TLSServer struct {
	addr   string
	pool   *x509.CertPool // trusts the server's CA
	cmd    *exec.Cmd
	exited chan struct{} // closed once cmd.Wait has returned
}

// StartTLS makes a CA and a server certificate for 127.0.0.1, writes them
// to a directory from tb.TempDir, and starts a redis-server that listens
// on a free loopback port with TLS only, persistence off and args appended
// to its command line. It blocks until the server answers over TLS.
// tb.Cleanup kills it and waits for it to exit.
//
// Without a redis-server binary, or with one built without TLS (it refuses
// --tls-port), it skips tb, or fails it if $REDISLOCK_REQUIRE_REDIS is
// true.
func StartTLS(tb testing.TB, args ...string) *TLSServer {
	tb.Helper()
	progs := redisproc.MustSelect(tb)
	redisproc.RequireBinaries(tb, progs.Hint(), progs.Server)
	dir := tb.TempDir()
	pool, err := writeCertificates(dir)
	if err != nil {
		tb.Fatalf("redistest: certificates: %v", err)
	}
	for range portAttempts {
		port, err := redisproc.FreePort()
		if err != nil {
			tb.Fatal(err)
		}
		s := &TLSServer{addr: net.JoinHostPort("127.0.0.1", strconv.Itoa(port)), pool: pool, exited: make(chan struct{})}
		cmdArgs := append(redisproc.ServerArgs(dir, 0),
			"--tls-port", strconv.Itoa(port),
			"--tls-cert-file", filepath.Join(dir, "server.crt"),
			"--tls-key-file", filepath.Join(dir, "server.key"),
			"--tls-ca-cert-file", filepath.Join(dir, "ca.crt"),
			"--tls-auth-clients", "no")
		err = s.start(dir, progs.Server, append(cmdArgs, args...))
		if err == nil {
			tb.Cleanup(s.kill)
			return s
		}
		if errors.Is(err, redisproc.ErrPortInUse) {
			continue
		}
		if strings.Contains(strings.ToLower(err.Error()), "tls") {
			msg := fmt.Sprintf("redistest: %s did not start with --tls-port; built without TLS? (%s=1 makes this a failure): %v",
				progs.Server, EnvRequire, err)
			if required, _ := strconv.ParseBool(os.Getenv(EnvRequire)); required {
				tb.Fatal(msg)
			}
			tb.Skip(msg)
		}
		tb.Fatalf("redistest: %v", err)
	}
	tb.Fatalf("redistest: no free port for a TLS server in %d attempts", portAttempts)
	return nil
}

// Addr returns the server's "127.0.0.1:port", which speaks TLS only.
func (s *TLSServer) Addr() string { return s.addr }

// TLSConfig returns a client configuration that trusts the server's CA.
func (s *TLSServer) TLSConfig() *tls.Config {
	return &tls.Config{RootCAs: s.pool, MinVersion: tls.VersionTLS12}
}

// Client returns a TLS client of the server, with opts applied to its
// options. tb.Cleanup closes it.
func (s *TLSServer) Client(tb testing.TB, opts ...func(*redis.Options)) *redis.Client {
	tb.Helper()
	return newClient(tb, s.addr, append([]func(*redis.Options){func(o *redis.Options) { o.TLSConfig = s.TLSConfig() }}, opts...))
}

func (s *TLSServer) start(dir, bin string, args []string) error {
	out, err := os.Create(filepath.Join(dir, redisproc.OutFile))
	if err != nil {
		return err
	}
	_ = os.Remove(filepath.Join(dir, redisproc.LogFile))
	s.cmd = exec.Command(bin, args...)
	s.cmd.Dir = dir
	s.cmd.Stdout, s.cmd.Stderr = out, out
	err = s.cmd.Start()
	out.Close()
	if err != nil {
		return err
	}
	go func() {
		_ = s.cmd.Wait()
		close(s.exited)
	}()
	deadline := time.NewTimer(redisproc.StartTimeout)
	defer deadline.Stop()
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for {
		err := s.probe()
		if err == nil {
			return nil
		}
		select {
		case <-s.exited:
			tail := logTail(dir)
			err := fmt.Errorf("%s on %s exited (%v)%s", filepath.Base(bin), s.addr, s.cmd.ProcessState, tail)
			if strings.Contains(tail, "Address already in use") {
				err = fmt.Errorf("%w: %w", redisproc.ErrPortInUse, err)
			}
			return err
		case <-deadline.C:
			s.kill()
			return fmt.Errorf("%s on %s did not answer over TLS within %v: %v%s", filepath.Base(bin), s.addr, redisproc.StartTimeout, err, logTail(dir))
		case <-tick.C:
		}
	}
}

// probe sends INFO server over TLS and checks that the reply comes from
// this process.
func (s *TLSServer) probe() error {
	d := &net.Dialer{Timeout: time.Second}
	conn, err := tls.DialWithDialer(d, "tcp", s.addr, s.TLSConfig())
	if err != nil {
		return err
	}
	defer conn.Close()
	if err := conn.SetDeadline(time.Now().Add(time.Second)); err != nil {
		return err
	}
	if _, err := io.WriteString(conn, "*2\r\n$4\r\nINFO\r\n$6\r\nserver\r\n"); err != nil {
		return err
	}
	r := bufio.NewReader(conn)
	line, err := r.ReadString('\n')
	if err != nil {
		return err
	}
	n, err := strconv.Atoi(strings.TrimSpace(strings.TrimPrefix(line, "$")))
	if !strings.HasPrefix(line, "$") || err != nil {
		return fmt.Errorf("INFO replied %q", strings.TrimSpace(line))
	}
	info := make([]byte, n)
	if _, err := io.ReadFull(r, info); err != nil {
		return err
	}
	if !bytes.Contains(info, []byte("process_id:"+strconv.Itoa(s.cmd.Process.Pid)+"\r\n")) {
		return fmt.Errorf("%s is answered by another process", s.addr)
	}
	return nil
}

// kill kills the server with SIGKILL and waits for it to exit.
func (s *TLSServer) kill() {
	_ = s.cmd.Process.Kill()
	<-s.exited
}

func logTail(dir string) string {
	var sb strings.Builder
	for _, name := range []string{redisproc.OutFile, redisproc.LogFile} {
		b, err := os.ReadFile(filepath.Join(dir, name))
		lines := strings.Split(strings.TrimSpace(string(b)), "\n")
		if err != nil || lines[0] == "" {
			continue
		}
		lines = lines[max(0, len(lines)-20):]
		fmt.Fprintf(&sb, "\n--- %s ---\n%s", name, strings.Join(lines, "\n"))
	}
	return sb.String()
}

// writeCertificates writes ca.crt, server.crt and server.key to dir: a CA
// and a certificate it signed for 127.0.0.1, valid for a day. It returns a
// pool that trusts the CA.
func writeCertificates(dir string) (*x509.CertPool, error) {
	now := time.Now()
	caKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, err
	}
	caTmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "redistest CA"},
		NotBefore:             now.Add(-time.Hour),
		NotAfter:              now.Add(24 * time.Hour),
		IsCA:                  true,
		BasicConstraintsValid: true,
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
	}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		return nil, err
	}
	ca, err := x509.ParseCertificate(caDER)
	if err != nil {
		return nil, err
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, err
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(2),
		Subject:      pkix.Name{CommonName: "127.0.0.1"},
		NotBefore:    now.Add(-time.Hour),
		NotAfter:     now.Add(24 * time.Hour),
		IPAddresses:  []net.IP{net.IPv4(127, 0, 0, 1)},
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, &key.PublicKey, caKey)
	if err != nil {
		return nil, err
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return nil, err
	}
	for name, block := range map[string]*pem.Block{
		"ca.crt":     {Type: "CERTIFICATE", Bytes: caDER},
		"server.crt": {Type: "CERTIFICATE", Bytes: der},
		"server.key": {Type: "PRIVATE KEY", Bytes: keyDER},
	} {
		if err := os.WriteFile(filepath.Join(dir, name), pem.EncodeToMemory(block), 0o600); err != nil {
			return nil, err
		}
	}
	pool := x509.NewCertPool()
	pool.AddCert(ca)
	return pool, nil
}
