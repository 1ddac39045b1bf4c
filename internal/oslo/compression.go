package oslo

import (
	"bytes"
	"compress/bzip2"
	"compress/zlib"
	"fmt"
	"io"
)

// CompressionHeader is the AMQP header oslo.messaging sets on a body it
// compressed (kombu_compression = gzip or bz2), naming the codec.
const CompressionHeader = "compression"

// Codecs kombu names in CompressionHeader. "gzip" is kombu's name for a
// zlib stream (bytes 78 9c), not a gzip file.
const (
	compressionZlib  = "application/x-gzip"
	compressionBzip2 = "application/x-bz2"
)

// MaxDecompressed bounds a decompressed body, so that a small compressed
// message cannot make a receiver allocate without end.
const MaxDecompressed = 64 << 20

// Decompress returns the body as its sender wrote it before compressing:
// body itself when headers name no compression, else the zlib or bzip2
// stream decoded. A Python peer compresses when configured with
// kombu_compression; Switchyard reads such bodies but sends its own
// uncompressed, which every oslo.messaging peer reads. Errors wrap
// ErrMalformed.
func Decompress(headers map[string]any, body []byte) ([]byte, error) {
	codec, ok := headers[CompressionHeader]
	if !ok {
		return body, nil
	}
	var r io.Reader
	switch codec {
	case compressionZlib:
		zr, err := zlib.NewReader(bytes.NewReader(body))
		if err != nil {
			return nil, fmt.Errorf("%w: body with header %s=%v: %v", ErrMalformed, CompressionHeader, codec, err)
		}
		defer zr.Close()
		r = zr
	case compressionBzip2:
		r = bzip2.NewReader(bytes.NewReader(body))
	default:
		return nil, fmt.Errorf("%w: body compressed with %v (header %s); Switchyard reads %s and %s", ErrMalformed,
			codec, CompressionHeader, compressionZlib, compressionBzip2)
	}
	out, err := io.ReadAll(io.LimitReader(r, MaxDecompressed+1))
	switch {
	case err != nil:
		return nil, fmt.Errorf("%w: body with header %s=%v: %v", ErrMalformed, CompressionHeader, codec, err)
	case len(out) > MaxDecompressed:
		return nil, fmt.Errorf("%w: body with header %s=%v decompresses to more than %d bytes", ErrMalformed, CompressionHeader, codec, MaxDecompressed)
	}
	return out, nil
}
