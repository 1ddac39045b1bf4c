package driver

import (
	"fmt"
	"log/slog"
	"net/url"
	"strings"
)

// Host is one broker address of a URL.
type Host struct {
	Name string // host name or IP, without brackets
	Port int    // 0 when the URL gave none
}

// String returns host:port, bracketing IPv6 literals.
func (h Host) String() string {
	name := h.Name
	if strings.Contains(name, ":") {
		name = "[" + name + "]"
	}
	if h.Port == 0 {
		return name
	}
	return fmt.Sprintf("%s:%d", name, h.Port)
}

// URL is a parsed transport URL:
// scheme://user:pass@host1:port,host2:port/vhost?option=value.
// Its String form never shows the password.
type URL struct {
	Scheme   string
	User     string
	Password string
	// HasPassword distinguishes an empty password from none.
	HasPassword bool
	Hosts       []Host
	// VirtualHost is the URL path without its leading slash, unescaped
	// ("" when the URL has no path). For memory:// it names the broker.
	VirtualHost string
	// Options are the query parameters. Drivers read them with an
	// option.Set, which refuses unknown ones.
	Options url.Values
	// Logger receives the driver's logs; never nil when a driver opens.
	Logger *slog.Logger
}

// String is the URL with the password replaced by "xxxxx".
func (c *URL) String() string {
	var b strings.Builder
	b.WriteString(c.Scheme)
	b.WriteString("://")
	if c.User != "" || c.HasPassword {
		b.WriteString(url.PathEscape(c.User))
		if c.HasPassword {
			b.WriteString(":xxxxx")
		}
		b.WriteByte('@')
	}
	for i, h := range c.Hosts {
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteString(h.String())
	}
	if c.VirtualHost != "" {
		b.WriteByte('/')
		b.WriteString(url.PathEscape(c.VirtualHost))
	}
	if len(c.Options) > 0 {
		redacted := make(url.Values, len(c.Options))
		for k, vs := range c.Options {
			for _, v := range vs {
				redacted[k] = append(redacted[k], RedactURLValue(v))
			}
		}
		b.WriteByte('?')
		b.WriteString(redacted.Encode())
	}
	return b.String()
}

// RedactURLValue returns v with the password of a URL in it replaced by
// "xxxxx", for option values that are URLs themselves (zmq's
// matchmaker=redis://:password@host); other values come back unchanged.
// A value that looks like a URL with credentials but does not parse is
// hidden whole.
func RedactURLValue(v string) string {
	if !strings.Contains(v, "@") {
		return v
	}
	u, err := url.Parse(v)
	switch {
	case err != nil:
		return "xxxxx"
	case u.User == nil:
		return v
	}
	if _, has := u.User.Password(); !has {
		return v
	}
	return u.Redacted()
}

// LogValue keeps the password out of structured logs.
func (c *URL) LogValue() slog.Value { return slog.StringValue(c.String()) }

// Clone returns a deep copy of c.
func (c *URL) Clone() *URL {
	cp := *c
	cp.Hosts = append([]Host(nil), c.Hosts...)
	cp.Options = make(url.Values, len(c.Options))
	for k, v := range c.Options {
		cp.Options[k] = append([]string(nil), v...)
	}
	return &cp
}
