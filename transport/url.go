package transport

import (
	"fmt"
	"maps"
	"net"
	"net/netip"
	"net/url"
	"slices"
	"strconv"
	"strings"

	"github.com/switchyard-mq/switchyard/transport/driver"
)

// URL is a parsed transport URL; its String form hides the password.
type URL = driver.URL

// Host is one broker address of a URL.
type Host = driver.Host

// ParseURL parses a transport URL of the form
//
//	scheme://user:pass@host1:port,host2:port/vhost?option=value
//
// as oslo.messaging's transport_url does: several comma-separated hosts for
// failover, each of which may repeat the same credentials
// (rabbit://u:p@h1,u:p@h2/); a percent-escaped password; a virtual host
// that is the path without its leading slash. A malformed URL is an error
// wrapping ErrInvalid that names the bad part and never shows the password.
func ParseURL(raw string) (*URL, error) {
	bad := func(format string, args ...any) error {
		return fmt.Errorf("%w: transport URL %q: %s", ErrInvalid, redactRawURL(raw), fmt.Sprintf(format, args...))
	}
	scheme, rest, ok := strings.Cut(raw, "://")
	if !ok {
		return nil, bad("missing \"://\" after the scheme")
	}
	if scheme == "" {
		return nil, bad("empty scheme")
	}
	for i, r := range scheme {
		letter := r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z'
		if !letter && (i == 0 || !(r >= '0' && r <= '9' || r == '+' || r == '-' || r == '.')) {
			return nil, bad("scheme %q has the character %q", scheme, r)
		}
	}
	cfg := &URL{Scheme: strings.ToLower(scheme), Options: url.Values{}}

	rest, rawQuery, _ := strings.Cut(rest, "?")
	authority, path, hasPath := strings.Cut(rest, "/")
	if strings.Contains(path, "@") {
		// Most likely a password with an unescaped "/": refuse rather
		// than take part of it for the virtual host.
		return nil, bad("\"@\" after the host list: percent-escape \"@\", \"/\", \",\" and \"?\" in credentials and virtual host")
	}
	if hasPath {
		vhost, err := url.PathUnescape(path)
		if err != nil {
			return nil, bad("virtual host %q: %v", path, err)
		}
		cfg.VirtualHost = vhost
	}
	if rawQuery != "" {
		opts, err := url.ParseQuery(rawQuery)
		switch {
		case err != nil && strings.Contains(rawQuery, "@"): // may hold a password
			return nil, bad("query: %v", err)
		case err != nil:
			return nil, bad("query %q: %v", rawQuery, err)
		}
		for k := range opts {
			if strings.Contains(k, "@") {
				// Most likely a password with an unescaped "?": the rest
				// of it and the hosts were taken for the query.
				return nil, bad("\"@\" in the query's option names: percent-escape \"@\", \"/\", \",\" and \"?\" in credentials and virtual host")
			}
		}
		cfg.Options = opts
	}
	if authority == "" {
		return cfg, nil
	}

	parts := strings.Split(authority, ",")
	if strings.Contains(authority, "@") && !strings.Contains(parts[0], "@") {
		// Hosts after the first carry credentials the first does not:
		// most likely a password with an unescaped ",".
		return nil, bad("credentials after the first host: percent-escape \"@\", \"/\", \",\" and \"?\" in credentials and virtual host")
	}
	var credentials string
	for i, part := range parts {
		hostPort := part
		if at := strings.LastIndexByte(part, '@'); at >= 0 {
			switch userinfo := part[:at]; {
			case i == 0:
				credentials = userinfo
				user, pass, hasPass := strings.Cut(userinfo, ":")
				var err error
				if cfg.User, err = url.PathUnescape(user); err != nil {
					return nil, bad("user name: %v", err)
				}
				if cfg.Password, err = url.PathUnescape(pass); err != nil {
					return nil, bad("password is not correctly percent-escaped")
				}
				cfg.HasPassword = hasPass
			case userinfo != credentials:
				return nil, bad("host %d has other credentials than host 1; one set of credentials is supported", i+1)
			}
			hostPort = part[at+1:]
		}
		host, err := parseHost(hostPort)
		if err != nil {
			return nil, bad("host %d: %v", i+1, err)
		}
		cfg.Hosts = append(cfg.Hosts, host)
	}
	return cfg, nil
}

func parseHost(hostPort string) (Host, error) {
	if hostPort == "" {
		return Host{}, fmt.Errorf("empty host")
	}
	name, port := hostPort, ""
	if strings.HasPrefix(hostPort, "[") || strings.Count(hostPort, ":") == 1 {
		var err error
		if strings.HasPrefix(hostPort, "[") && !strings.Contains(hostPort, "]:") {
			name = strings.TrimSuffix(strings.TrimPrefix(hostPort, "["), "]")
			if strings.ContainsAny(name, "[]") || !strings.HasSuffix(hostPort, "]") {
				return Host{}, fmt.Errorf("malformed IPv6 literal %q", hostPort)
			}
		} else if name, port, err = net.SplitHostPort(hostPort); err != nil {
			return Host{}, fmt.Errorf("%q: %v", hostPort, err)
		}
	}
	if name == "" {
		return Host{}, fmt.Errorf("%q has no host name", hostPort)
	}
	if _, err := netip.ParseAddr(name); err != nil && strings.Contains(name, ":") {
		// Not host:port, and not an IPv6 address either (host:port:port).
		return Host{}, fmt.Errorf("%q is neither host:port nor an IPv6 address (write [addr]:port)", hostPort)
	}
	if strings.ContainsAny(name, " /?#@") {
		return Host{}, fmt.Errorf("host name %q has an invalid character", name)
	}
	h := Host{Name: name}
	if port != "" {
		p, err := strconv.Atoi(port)
		if err != nil || p < 1 || p > 65535 {
			return Host{}, fmt.Errorf("port %q is not a number from 1 to 65535", port)
		}
		h.Port = p
	}
	return h, nil
}

// redactRawURL hides the credentials of a URL that may not parse, so that
// errors about it can quote it. When every host of the list carries its
// own "user:pass@", each password is replaced; otherwise (an unescaped ",",
// "/" or "?" in a password makes any finer split unreliable) everything
// between "://" and the last "@" before the query is.
func redactRawURL(raw string) string {
	scheme, rest, ok := strings.Cut(raw, "://")
	if !ok {
		scheme, rest = "", raw
	}
	beforeQuery, query, hasQuery := strings.Cut(rest, "?")
	if hasQuery && strings.Contains(query, "@") {
		values, err := url.ParseQuery(query)
		if err != nil || slices.ContainsFunc(slices.Collect(maps.Keys(values)), func(k string) bool { return strings.Contains(k, "@") }) {
			// An "@" outside a value: a "?" in a password cut the URL
			// short. Everything up to the last "@" goes.
			redacted := "xxxxx" + rest[strings.LastIndexByte(rest, '@'):]
			if ok {
				redacted = scheme + "://" + redacted
			}
			return redacted
		}
		for k, vs := range values {
			for i, v := range vs {
				vs[i] = driver.RedactURLValue(v)
			}
			values[k] = vs
		}
		query = values.Encode()
	}
	lastAt := strings.LastIndexByte(beforeQuery, '@')
	if lastAt < 0 {
		if hasQuery {
			return raw[:len(raw)-len(rest)] + beforeQuery + "?" + query
		}
		return raw
	}
	authority, path, hasPath := strings.Cut(beforeQuery, "/")
	parts := strings.Split(authority, ",")
	redacted := "xxxxx" + beforeQuery[lastAt:]
	if !strings.Contains(path, "@") && !slices.ContainsFunc(parts, func(p string) bool { return !strings.Contains(p, "@") }) {
		for i, part := range parts {
			at := strings.LastIndexByte(part, '@')
			user, _, hasPass := strings.Cut(part[:at], ":")
			if hasPass {
				parts[i] = user + ":xxxxx" + part[at:]
			}
		}
		redacted = strings.Join(parts, ",")
		if hasPath {
			redacted += "/" + path
		}
	}
	if ok {
		redacted = scheme + "://" + redacted
	}
	if hasQuery {
		redacted += "?" + query
	}
	return redacted
}
