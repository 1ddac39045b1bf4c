package main

import (
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/switchyard-mq/switchyard/config"
	"github.com/switchyard-mq/switchyard/transport"
)

// backendFlags are the flags of every command that talks to a backend.
type backendFlags struct {
	url        string
	configFile string
}

func (b *backendFlags) register(fs *flag.FlagSet) {
	fs.StringVar(&b.url, "url", "", "transport `URL` (default $SWITCHYARD_URL, else memory://)")
	fs.StringVar(&b.configFile, "config", "", "oslo.config `file` (nova.conf style) for the transport URL, control exchange and messaging options")
}

// load reads the configuration: -url, over the environment
// (SWITCHYARD_URL, SWITCHYARD_<OPTION>), over the -config file, over
// defaults. defaults may be nil.
func (b *backendFlags) load(defaults *config.Config) (config.Config, error) {
	if b.url != "" {
		if _, err := transport.ParseURL(b.url); err != nil {
			return config.Config{}, fmt.Errorf("%w: -url: %w", errUsage, err)
		}
	}
	// The flags stand in for the variables they beat, so that config.Load
	// reads -url as it reads SWITCHYARD_URL: its query options
	// (control_exchange=...) count too.
	env := func(k string) (string, bool) {
		switch {
		case k == "SWITCHYARD_URL" && b.url != "":
			return b.url, true
		case k == "SWITCHYARD_CONFIG_FILE" && b.configFile != "":
			return "", false
		}
		return os.LookupEnv(k)
	}
	s := config.Sources{Defaults: defaults, Env: env}
	if b.configFile != "" {
		s.Files = []string{b.configFile}
	}
	return config.Load(s)
}

// open opens the configured transport; its logs go to stderr, warnings
// only, since the commands print what matters themselves.
func (b *backendFlags) open(ctx context.Context, cfg config.Config) (*transport.Transport, error) {
	quiet := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	return cfg.Open(ctx, transport.WithLogger(quiet))
}

// lockedWriter serializes writes from several goroutines, a line at a
// time.
type lockedWriter struct {
	mu sync.Mutex
	w  io.Writer
}

func (l *lockedWriter) printf(format string, args ...any) {
	l.mu.Lock()
	defer l.mu.Unlock()
	fmt.Fprintf(l.w, format, args...)
}

// jsonObjectArg parses a command-line argument that must be a JSON
// object (oslo's keyword arguments, a request context); "" is {}.
func jsonObjectArg(what, arg string) (json.RawMessage, error) {
	if strings.TrimSpace(arg) == "" {
		return json.RawMessage("{}"), nil
	}
	var obj map[string]json.RawMessage
	if err := json.Unmarshal([]byte(arg), &obj); err != nil || obj == nil {
		return nil, fmt.Errorf("%w: %s %q is not a JSON object (e.g. '{\"x\": 1}')", errUsage, what, arg)
	}
	return json.RawMessage(arg), nil
}

// jsonArg parses a command-line argument that must be any JSON value.
func jsonArg(what, arg string) (json.RawMessage, error) {
	if !json.Valid([]byte(arg)) {
		return nil, fmt.Errorf("%w: %s %q is not JSON (quote a string: '\"text\"')", errUsage, what, arg)
	}
	return json.RawMessage(arg), nil
}

// compactJSON writes JSON on one line, for printing.
func compactJSON(raw []byte) string {
	var b bytes.Buffer
	if err := json.Compact(&b, raw); err != nil {
		return string(raw)
	}
	return b.String()
}

// jsonReader reads raw JSON.
func jsonReader(raw json.RawMessage) io.Reader { return bytes.NewReader(raw) }

// indentJSON formats JSON for reading, two spaces per level.
func indentJSON(raw []byte) string {
	var b bytes.Buffer
	if err := json.Indent(&b, raw, "", "  "); err != nil {
		return string(raw)
	}
	return b.String()
}
