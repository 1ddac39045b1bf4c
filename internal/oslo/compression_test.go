package oslo

import (
	"bytes"
	"compress/zlib"
	"errors"
	"testing"
)

func TestDecompress(t *testing.T) {
	const text = `{"oslo.version": "2.0"}`
	var zbuf bytes.Buffer
	zw := zlib.NewWriter(&zbuf)
	zw.Write([]byte(text))
	zw.Close()
	// bz2.compress(b'{"oslo.version": "2.0"}') in Python.
	bz2 := []byte("BZh91AY&SY\xf3\xc9\x98\xdb\x00\x00\n\x99\x80P\x01P\x10\x02%\x99\n \x001L\x00\x13B z\x8fP\xd9@\xae\xdeu\xd2a\xb8\xc2A0|>.\xe4\x8ap\xa1!\xe7\x931\xb6")
	bomb := bytes.Repeat([]byte{0}, MaxDecompressed+1)
	var bombBuf bytes.Buffer
	bw := zlib.NewWriter(&bombBuf)
	bw.Write(bomb)
	bw.Close()

	tests := []struct {
		name    string
		headers map[string]any
		body    []byte
		want    string
		wantErr bool
	}{
		{"not compressed", nil, []byte(text), text, false},
		{"zlib (kombu's gzip)", map[string]any{"compression": "application/x-gzip"}, zbuf.Bytes(), text, false},
		{"bzip2", map[string]any{"compression": "application/x-bz2"}, bz2, text, false},
		{"unknown codec", map[string]any{"compression": "application/x-lzma"}, zbuf.Bytes(), "", true},
		{"not a zlib stream", map[string]any{"compression": "application/x-gzip"}, []byte(text), "", true},
		{"truncated zlib stream", map[string]any{"compression": "application/x-gzip"}, zbuf.Bytes()[:8], "", true},
		{"decompresses past the bound", map[string]any{"compression": "application/x-gzip"}, bombBuf.Bytes(), "", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := Decompress(tt.headers, tt.body)
			if tt.wantErr {
				if !errors.Is(err, ErrMalformed) {
					t.Fatalf("Decompress: %v, want ErrMalformed", err)
				}
				return
			}
			if err != nil || string(got) != tt.want {
				t.Fatalf("Decompress = %q, %v; want %q", got, err, tt.want)
			}
		})
	}
}
