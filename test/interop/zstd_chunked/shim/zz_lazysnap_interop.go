package chunked

// Copied by test/interop/zstd_chunked/run.sh into a private copy of containers/storage's
// pkg/chunked so the interop reader can call the package's own (unexported) zstd:chunked
// manifest reader and TOC parser. Nothing else of the package is changed.

import "github.com/containers/storage/pkg/chunked/internal"

// LazysnapReadManifest is containers/storage's readZstdChunkedManifest.
func LazysnapReadManifest(iss ImageSourceSeekable, blobSize int64, annotations map[string]string) ([]byte, int64, error) {
	return readZstdChunkedManifest(iss, blobSize, annotations)
}

// LazysnapUnmarshalToc is containers/storage's unmarshalToc.
func LazysnapUnmarshalToc(manifest []byte) (*internal.TOC, error) {
	return unmarshalToc(manifest)
}
