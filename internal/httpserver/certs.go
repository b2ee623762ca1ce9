package httpserver

import (
	"crypto/tls"
	"fmt"
	"sync/atomic"
)

// Certificates is a TLS certificate read from its files, replaced whole
// by Load while connections use the one they started with.
type Certificates struct {
	certFile, keyFile string
	cur               atomic.Pointer[tls.Certificate]
}

// LoadCertificates reads the PEM certificate chain and key; a server
// does not start without them.
func LoadCertificates(certFile, keyFile string) (*Certificates, error) {
	c := &Certificates{certFile: certFile, keyFile: keyFile}
	if err := c.Load(); err != nil {
		return nil, err
	}
	return c, nil
}

// Load reads the files again; on failure the certificate in use stays.
func (c *Certificates) Load() error {
	cert, err := tls.LoadX509KeyPair(c.certFile, c.keyFile)
	if err != nil {
		return fmt.Errorf("tls_cert %s, tls_key %s: %w", c.certFile, c.keyFile, err)
	}
	c.cur.Store(&cert)
	return nil
}

func (c *Certificates) get(*tls.ClientHelloInfo) (*tls.Certificate, error) {
	return c.cur.Load(), nil
}
