// Package layering_test holds the house's one structural rule to a test:
// imports only point down. Each of the module's packages stands on a
// floor, and may import only packages on lower floors.
package layering_test

import (
	"os/exec"
	"strings"
	"testing"
)

const module = "github.com/switchyard-mq/switchyard"

// floors places the module's library packages, from the ground up. A
// package is placed by the longest prefix listed, and may also import the
// packages inside its own folder (a driver its sub-packages); examples,
// commands and test helpers (internal/brokertest, internal/interop,
// internal/faultproxy, internal/rabbitnode) stand on the roof and may
// import anything.
var floors = []struct {
	floor    int
	packages []string
}{
	{1, []string{"router", "internal/oslo", "internal/backoff", "internal/flatjson", "internal/rawoslo"}},
	{2, []string{"transport/driver"}},
	{3, []string{"transport/driver/option"}},
	{4, []string{"transport", "internal/tlsfiles"}},
	{5, []string{"internal/rabbitmq", "transport/worker"}},
	{6, []string{"drivers", "internal/messaging"}},
	{7, []string{"drivers/all", "rpc", "notify"}},
	{8, []string{"config", "conformance"}},
	{9, []string{"switchyardfx"}},
	{100, []string{"examples", "internal/brokertest", "internal/interop", "internal/faultproxy", "internal/rabbitnode", "internal/layering"}},
}

// floorOf is the floor of a package path relative to the module.
func floorOf(rel string) (int, bool) {
	best, floor := -1, 0
	for _, f := range floors {
		for _, p := range f.packages {
			if (rel == p || strings.HasPrefix(rel, p+"/")) && len(p) > best {
				best, floor = len(p), f.floor
			}
		}
	}
	return floor, best >= 0
}

func TestImportsPointDown(t *testing.T) {
	out, err := exec.Command("go", "list", "-f", "{{.ImportPath}} {{join .Imports \" \"}}", module+"/...").Output()
	if err != nil {
		t.Fatalf("go list: %v", err)
	}
	for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		fields := strings.Fields(line)
		pkg := strings.TrimPrefix(fields[0], module+"/")
		floor, ok := floorOf(pkg)
		if !ok {
			t.Errorf("%s stands on no floor: place it in this test's floors", pkg)
			continue
		}
		for _, imp := range fields[1:] {
			if !strings.HasPrefix(imp, module+"/") {
				continue
			}
			dep := strings.TrimPrefix(imp, module+"/")
			depFloor, ok := floorOf(dep)
			inside := strings.HasPrefix(dep, pkg+"/")
			if ok && depFloor >= floor && floor < 100 && !inside {
				t.Errorf("%s (floor %d) imports %s (floor %d): imports must point down", pkg, floor, dep, depFloor)
			}
		}
	}
}
