package main

import (
	"context"
	"os"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/switchyard-mq/switchyard/internal/brokertest"
	"github.com/switchyard-mq/switchyard/transport"
)

// matrixRow is one driver's row of README.md's capability matrix.
type matrixRow struct {
	driver string // the first cell, without backquotes, e.g. "memory://"
	has    map[transport.Capability]bool
}

// readMatrix parses the table under the heading "## Driver capability
// matrix" of README.md, checking that its columns are every capability.
func readMatrix(t *testing.T) []matrixRow {
	t.Helper()
	readme, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	_, section, ok := strings.Cut(string(readme), "\n## Driver capability matrix\n")
	if !ok {
		t.Fatal(`README.md has no "## Driver capability matrix" section`)
	}
	section, _, _ = strings.Cut(section, "\n## ")
	var table [][]string
	for _, line := range strings.Split(section, "\n") {
		line = strings.TrimSpace(line)
		if !strings.HasPrefix(line, "|") {
			if len(table) > 0 {
				break // the first table only
			}
			continue
		}
		var cells []string
		for _, c := range strings.Split(strings.Trim(line, "|"), "|") {
			cells = append(cells, strings.TrimSpace(c))
		}
		table = append(table, cells)
	}
	if len(table) < 3 {
		t.Fatalf("the matrix has %d lines, want a header, a separator and a row per driver", len(table))
	}

	caps := transport.AllCapabilities()
	wantHeader := []string{"Driver"}
	for _, c := range caps {
		wantHeader = append(wantHeader, c.String())
	}
	if !slices.Equal(table[0], wantHeader) {
		t.Fatalf("the matrix's header is\n%q, want\n%q\n(every capability of transport/driver, in order)", table[0], wantHeader)
	}
	var rows []matrixRow
	for _, cells := range table[2:] {
		if len(cells) != len(wantHeader) {
			t.Fatalf("matrix row %q has %d cells, want %d", cells, len(cells), len(wantHeader))
		}
		row := matrixRow{driver: strings.Trim(cells[0], "`"), has: map[transport.Capability]bool{}}
		for i, c := range caps {
			switch cells[i+1] {
			case "yes":
				row.has[c] = true
			case "no":
			default:
				t.Fatalf("matrix row %s, column %s: %q, want yes or no", row.driver, c, cells[i+1])
			}
		}
		rows = append(rows, row)
	}
	return rows
}

// matrixURL is the URL whose transport is checked against a matrix row.
// A driver's row gets a case here when its scheme is registered in this
// program (for a broker, from internal/brokertest, which skips or fails
// when the broker is not running).
func matrixURL(t *testing.T, row string) string {
	switch row {
	case "memory://":
		return "memory://readme-matrix"
	case "rabbit://`, `rabbits://":
		return brokertest.RabbitMQ().URL(t)
	case "amqp://`, `amqps://` on RabbitMQ":
		return brokertest.AMQP1RabbitMQ().URL(t)
	case "amqp://`, `amqps://` on RabbitMQ 4":
		// RabbitMQ 4 has AMQP 1.0 on its AMQP port.
		return "amqp://" + strings.TrimPrefix(brokertest.RabbitMQ4().URL(t), "rabbit://")
	case "amqp://`, `amqps://` on Qpid Proton":
		return brokertest.ProtonBroker().URL(t)
	case "rabbit://` on `switchyard broker":
		return switchyardBrokerURL(t)
	case "zmq://":
		return "zmq://readme-matrix"
	case "zmq://?matchmaker=redis://…":
		return "zmq://readme-matrix-redis?matchmaker=" + brokertest.Redis().URL(t)
	}
	t.Fatalf("README.md's matrix row %q has no URL to check it against: add one to matrixURL", row)
	return ""
}

// TestReadmeCapabilityMatrix holds README.md's driver capability matrix to
// the drivers: each row of a scheme registered in this program (every
// driver the tool links) must equal what a transport of that driver
// reports, and each registered scheme must have a row.
func TestReadmeCapabilityMatrix(t *testing.T) {
	rows := readMatrix(t)
	registered := transport.Schemes()
	for _, scheme := range registered {
		// A row may name several schemes of one driver: "rabbit://`, `rabbits://".
		if !slices.ContainsFunc(rows, func(r matrixRow) bool {
			return strings.HasPrefix(r.driver, scheme+"://") || strings.Contains(r.driver, "`"+scheme+"://")
		}) {
			t.Errorf("README.md's capability matrix has no row for the registered scheme %s://", scheme)
		}
	}
	for _, row := range rows {
		scheme, _, _ := strings.Cut(row.driver, "://")
		if !slices.Contains(registered, scheme) {
			t.Logf("matrix row %s: its driver is not linked into this program, not checked", row.driver)
			continue
		}
		t.Run(row.driver, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			tr, err := transport.Open(ctx, matrixURL(t, row.driver))
			if err != nil {
				t.Fatal(err)
			}
			defer tr.Close()
			got := tr.Capabilities()
			for _, c := range transport.AllCapabilities() {
				if got.Has(c) != row.has[c] {
					t.Errorf("README.md says %s has %s: %v; the driver says %v", row.driver, c, row.has[c], got.Has(c))
				}
			}
		})
	}
}

// backquoted returns the `words` of s, in order.
func backquoted(s string) []string {
	var words []string
	for i, part := range strings.Split(s, "`") {
		if i%2 == 1 {
			words = append(words, part)
		}
	}
	return words
}

// TestReadmePropertyTable holds README.md's table of which property needs
// which capability to the model: each property it names is a field of
// transport's types, each capability a capability, and every capability
// is in the table or among the behaviours the README says no property
// asks for, never both.
func TestReadmePropertyTable(t *testing.T) {
	readme, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	_, section, ok := strings.Cut(string(readme), "\nWhat needs which capability:\n")
	if !ok {
		t.Fatal(`README.md has no "What needs which capability:" table`)
	}
	types := map[string]reflect.Type{
		"Exchange": reflect.TypeFor[transport.Exchange](), "Queue": reflect.TypeFor[transport.Queue](),
		"Message": reflect.TypeFor[transport.Message](), "ConsumeOptions": reflect.TypeFor[transport.ConsumeOptions](),
	}
	names := map[string]transport.Capability{}
	for _, c := range transport.AllCapabilities() {
		names[c.String()] = c
	}
	inTable := map[transport.Capability]bool{}
	lines := strings.Split(section, "\n")
	i := 0
	for ; i < len(lines) && !strings.HasPrefix(lines[i], "|"); i++ {
	}
	for i += 2; i < len(lines) && strings.HasPrefix(lines[i], "|"); i++ {
		cells := strings.Split(strings.Trim(lines[i], "|"), "|")
		if len(cells) != 2 {
			t.Fatalf("property table row %q: want two cells", lines[i])
		}
		for _, p := range backquoted(cells[0]) {
			typ, field, isField := strings.Cut(p, ".")
			if _, known := types[typ]; !known && p != "Bind" {
				t.Errorf("property table row %q: %q is not one of transport's types", lines[i], p)
			}
			if isField {
				if _, ok := types[typ].FieldByName(field); !ok {
					t.Errorf("property table row %q: transport.%s has no field %s", lines[i], typ, field)
				}
			}
		}
		for _, name := range backquoted(cells[1]) {
			c, ok := names[name]
			if !ok {
				t.Errorf("property table row %q: %q is not a capability", lines[i], name)
			}
			inTable[c] = true
		}
	}
	behaviours, _, ok := strings.Cut(strings.Join(lines[i:], "\n"), " are behaviours no property asks for")
	if !ok {
		t.Fatal(`README.md does not say which capabilities "are behaviours no property asks for" after the table`)
	}
	behaviours = behaviours[strings.LastIndex(behaviours, "\n\n")+1:]
	for _, name := range backquoted(behaviours) {
		c, ok := names[name]
		switch {
		case !ok:
			t.Errorf("behaviour %q is not a capability", name)
		case inTable[c]:
			t.Errorf("capability %s is both a property's and a behaviour", name)
		}
		inTable[c] = true
	}
	for _, c := range transport.AllCapabilities() {
		if !inTable[c] {
			t.Errorf("capability %s is neither in README.md's property table nor among its behaviours", c)
		}
	}
}
