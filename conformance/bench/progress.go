package bench

import (
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"
	"unicode/utf8"
)

// progress shows the runs as they go: on a terminal, one line per case
// and backend, rewritten in place (\r) while its runs go on; elsewhere, that
// line once its runs are over.
type progress struct {
	w    io.Writer
	live bool
	// width bounds the text rewritten in place: a line the terminal wraps
	// can no longer be rewritten with \r.
	width int
}

func newProgress(w io.Writer) *progress {
	width := 80
	if n, err := strconv.Atoi(os.Getenv("COLUMNS")); err == nil && n > 20 {
		width = n
	}
	return &progress{w: w, live: isTerminal(w), width: width}
}

// isTerminal reports whether w is a terminal (a character device).
func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	info, err := f.Stat()
	return err == nil && info.Mode()&os.ModeCharDevice != 0
}

// progressLine is one case's line for one backend.
type progressLine struct {
	p      *progress
	prefix string
	parts  []string // finished runs
	mu     sync.Mutex
	width  int // runes of the text last written, to blank what a shorter one leaves
}

func (p *progress) line(c Case, b *Backend) *progressLine {
	return &progressLine{p: p, prefix: fmt.Sprintf("%-13s %s:", c.Name, b.label)}
}

// show rewrites the line in place with the finished runs and current,
// cut to the terminal's width.
func (l *progressLine) show(current string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	text := l.text(current)
	if runes := []rune(text); len(runes) >= l.p.width {
		text = string(runes[:l.p.width-2]) + "…"
	}
	l.rewrite(text)
}

// rewrite replaces the text on the line, blanking what a shorter text
// leaves of the last. Called with l.mu held.
func (l *progressLine) rewrite(text string) {
	n := utf8.RuneCountInString(text)
	fmt.Fprintf(l.p.w, "\r%s%s", text, strings.Repeat(" ", max(l.width-n, 0)))
	l.width = n
}

func (l *progressLine) text(current string) string {
	parts := l.parts
	if current != "" {
		parts = append(parts[:len(parts):len(parts)], current)
	}
	return l.prefix + " " + strings.Join(parts, " | ")
}

// watch shows a run's rate so far, four times a second, until the
// returned stop is called; only on a terminal.
func (l *progressLine) watch(client, unit string, m *meter) (stop func()) {
	if !l.p.live {
		return func() {}
	}
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() {
		tick := time.NewTicker(250 * time.Millisecond)
		defer tick.Stop()
		l.show(client + " …")
		for {
			select {
			case <-done:
				return
			case <-tick.C:
				started := m.started.Load()
				if started == 0 {
					continue // still setting up
				}
				elapsed := time.Since(time.Unix(0, started))
				l.show(fmt.Sprintf("%s %s %s … %.1fs", client, formatRate(float64(m.ops.Load())/elapsed.Seconds()), unit, elapsed.Seconds()))
			}
		}
	})
	return func() { close(done); wg.Wait() }
}

// result adds a finished run to the line.
func (l *progressLine) result(r Result) {
	part := fmt.Sprintf("%s %s %s", r.Client, formatRate(r.Rate), r.Case.Unit)
	if r.Err != nil {
		part = r.Client + " failed"
	}
	l.mu.Lock()
	l.parts = append(l.parts, part)
	l.mu.Unlock()
	if l.p.live {
		l.show("")
	}
}

// finish ends the line, whole: it is rewritten no more, so it may wrap.
func (l *progressLine) finish() {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.p.live {
		l.rewrite(l.text(""))
		fmt.Fprintln(l.p.w)
		return
	}
	fmt.Fprintln(l.p.w, l.text(""))
}
