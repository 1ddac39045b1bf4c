package messaging_test

import (
	"crypto/rand"
	"encoding/hex"
	"testing"

	"github.com/switchyard-mq/switchyard/internal/messaging"
)

// BenchmarkDuplicateFilterAdmit admits fresh ids of oslo's form, as an RPC
// server does for every request.
func BenchmarkDuplicateFilterAdmit(b *testing.B) {
	ids := make([]string, 1<<16)
	for i := range ids {
		var u [16]byte
		rand.Read(u[:])
		ids[i] = hex.EncodeToString(u[:])
	}
	var f messaging.DuplicateFilter
	b.ResetTimer()
	for i := 0; b.Loop(); i++ {
		if i%len(ids) == 0 && i > 0 {
			f = messaging.DuplicateFilter{}
		}
		if !f.Admit(ids[i%len(ids)]) {
			b.Fatal("a fresh id is a repeat")
		}
	}
}
