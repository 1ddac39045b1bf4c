package zmq_test

import (
	"crypto/rand"
	"encoding/hex"
	"strings"
	"testing"
)

// registryName is a unique registry name for one test, so tests never
// share queues through the process-wide in-process registries.
func registryName(t testing.TB) string {
	var b [4]byte
	_, _ = rand.Read(b[:])
	name := strings.NewReplacer("/", "-", " ", "-", "#", "-", ".", "-").Replace(t.Name())
	return strings.ToLower(name) + "-" + hex.EncodeToString(b[:])
}
