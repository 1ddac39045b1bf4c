package bench

import (
	"bytes"
	"strings"
	"testing"
	"time"
	"unicode/utf8"
)

// TestProgressOnTerminal: on a terminal, a case's line is rewritten in
// place and ended once.
func TestProgressOnTerminal(t *testing.T) {
	var buf bytes.Buffer
	p := &progress{w: &buf, live: true, width: 80}
	c := Cases()[0]
	line := p.line(c, &Backend{label: "memory://x"})
	m := &meter{}
	m.started.Store(time.Now().UnixNano())
	stop := line.watch(switchyardName, c.Unit, m)
	stop()
	line.result(Result{Case: c, Client: switchyardName, Rate: 1500})
	line.result(Result{Case: c, Client: "raw go channel", Rate: 3e6})
	line.finish()
	out := buf.String()
	if !strings.HasPrefix(out, "\r") || strings.Count(out, "\n") != 1 || !strings.HasSuffix(out, "\n") {
		t.Errorf("output %q: want lines rewritten with \\r and one newline at the end", out)
	}
	last := out[strings.LastIndexByte(strings.TrimSuffix(out, "\n"), '\r')+1:]
	if want := "publish       memory://x: switchyard 1.5k msg/s | raw go channel 3M msg/s"; strings.TrimSpace(last) != want {
		t.Errorf("final line %q, want %q", last, want)
	}

	// A line wider than the terminal is cut while it is rewritten, and
	// written whole at the end.
	buf.Reset()
	p.width = 40
	line = p.line(c, &Backend{label: "rabbit://guest:xxxxx@127.0.0.1:5672/some-virtual-host"})
	line.result(Result{Case: c, Client: switchyardName, Rate: 1500})
	line.finish()
	rewritten, final, _ := strings.Cut(strings.TrimPrefix(buf.String(), "\r"), "\r")
	if n := utf8.RuneCountInString(rewritten); n != 39 || !strings.HasSuffix(rewritten, "…") {
		t.Errorf("line rewritten as %q (%d runes), want it cut to 39", rewritten, n)
	}
	if !strings.Contains(final, "some-virtual-host: switchyard 1.5k msg/s") {
		t.Errorf("final line %q, want it whole", final)
	}
}
