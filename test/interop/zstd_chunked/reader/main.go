// Command reader reads a zstd:chunked layer with containers/storage's own reader: its
// readZstdChunkedManifest (locates the manifest, checks manifest-checksum, decompresses) and
// unmarshalToc (parses the TOC), reached through run.sh's shim. It then extracts every
// regular file from its chunks (each chunk's zstd frames decompressed with klauspost/compress,
// checked against chunkDigest, the whole file against digest) into OUTDIR, so run.sh can
// compare them with the original tar.
//
// With TAR_OUT, it also reads the tar-split (current generation; c/storage 1.43 predates it, so
// this part is done here with vbatts/tar-split, the library c/storage uses): checks it
// against the TOC's tarSplitDigest and reassembles the original tar from it and the extracted
// files (asm.WriteOutputTarStream, which checks every file's CRC-64) into TAR_OUT.
//
// Usage: reader BLOB ANNOTATIONS.json OUTDIR [MANIFEST_OUT [TAR_OUT]]
// containers/storage 1.43 (Debian 12) knows only the legacy io.containers.zstd-chunked.*
// annotation keys, so io.github.containers.zstd-chunked.* keys are passed under both names.
package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"github.com/containers/storage/pkg/chunked"
	"github.com/klauspost/compress/zstd"
	digest "github.com/opencontainers/go-digest"
	"github.com/vbatts/tar-split/tar/asm"
	"github.com/vbatts/tar-split/tar/storage"
)

type fileSource struct{ f *os.File }

func (s fileSource) GetBlobAt(chunks []chunked.ImageSourceChunk) (chan io.ReadCloser, chan error, error) {
	parts := make(chan io.ReadCloser, len(chunks))
	errs := make(chan error, 1)
	for _, c := range chunks {
		parts <- io.NopCloser(io.NewSectionReader(s.f, int64(c.Offset), int64(c.Length)))
	}
	close(parts)
	return parts, errs, nil
}

type piece struct {
	offset, end, size int64
	digest, typ       string
}

func run(blobPath, annPath, outDir, manifestOut, tarOut string) error {
	f, err := os.Open(blobPath)
	if err != nil {
		return err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return err
	}
	ann := map[string]string{}
	if b, err := os.ReadFile(annPath); err != nil {
		return err
	} else if err := json.Unmarshal(b, &ann); err != nil {
		return fmt.Errorf("%s: %w", annPath, err)
	}
	for k, v := range ann {
		const current = "io.github.containers.zstd-chunked."
		if strings.HasPrefix(k, current) {
			ann["io.containers.zstd-chunked."+strings.TrimPrefix(k, current)] = v
		}
	}
	manifest, _, err := chunked.LazysnapReadManifest(fileSource{f}, st.Size(), ann)
	if err != nil {
		return fmt.Errorf("containers/storage cannot read the manifest: %w", err)
	}
	if manifestOut != "" {
		if err := os.WriteFile(manifestOut, manifest, 0o644); err != nil {
			return err
		}
	}
	toc, err := chunked.LazysnapUnmarshalToc(manifest)
	if err != nil {
		return fmt.Errorf("containers/storage cannot parse the TOC: %w", err)
	}
	dec, err := zstd.NewReader(nil)
	if err != nil {
		return err
	}
	defer dec.Close()

	entries := toc.Entries
	files := 0
	for i := 0; i < len(entries); i++ {
		e := entries[i]
		if e.Type != "reg" {
			continue
		}
		var pieces []piece
		if e.ChunkSize == 0 {
			pieces = append(pieces, piece{e.Offset, e.EndOffset, e.Size, e.Digest, e.ChunkType})
		} else {
			pieces = append(pieces, piece{e.Offset, 0, e.ChunkSize, e.ChunkDigest, e.ChunkType})
			for i+1 < len(entries) && entries[i+1].Type == "chunk" {
				i++
				c := entries[i]
				pieces[len(pieces)-1].end = c.Offset
				pieces = append(pieces, piece{c.Offset, 0, c.ChunkSize, c.ChunkDigest, c.ChunkType})
			}
			pieces[len(pieces)-1].end = e.EndOffset
		}
		var data bytes.Buffer
		if e.Size > 0 {
			for _, p := range pieces {
				if p.end < p.offset || p.end > st.Size() {
					return fmt.Errorf("%s: chunk range %d..%d outside the blob", e.Name, p.offset, p.end)
				}
				comp := make([]byte, p.end-p.offset)
				if _, err := f.ReadAt(comp, p.offset); err != nil {
					return err
				}
				plain, err := dec.DecodeAll(comp, nil)
				if err != nil {
					return fmt.Errorf("%s: chunk at %d: %w", e.Name, p.offset, err)
				}
				if int64(len(plain)) != p.size {
					return fmt.Errorf("%s: chunk at %d is %d bytes, TOC says %d", e.Name, p.offset, len(plain), p.size)
				}
				if p.digest != "" && digest.FromBytes(plain).String() != p.digest {
					return fmt.Errorf("%s: chunk at %d does not match its digest", e.Name, p.offset)
				}
				data.Write(plain)
			}
		}
		if int64(data.Len()) != e.Size {
			return fmt.Errorf("%s: %d bytes read, size %d", e.Name, data.Len(), e.Size)
		}
		if e.Digest != "" && digest.FromBytes(data.Bytes()).String() != e.Digest {
			return fmt.Errorf("%s: content does not match its digest", e.Name)
		}
		name := filepath.Clean("/" + e.Name)
		dst := filepath.Join(outDir, name)
		if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
			return err
		}
		if err := os.WriteFile(dst, data.Bytes(), 0o644); err != nil {
			return err
		}
		files++
	}
	fmt.Printf("reader: %d entries, %d regular files extracted\n", len(entries), files)
	if tarOut != "" {
		return reassemble(f, ann, manifest, dec, outDir, tarOut)
	}
	return nil
}

func reassemble(f *os.File, ann map[string]string, manifest []byte, dec *zstd.Decoder, outDir, tarOut string) error {
	var offset, length, uncompressed int64
	pos := ann["io.github.containers.zstd-chunked.tarsplit-position"]
	if _, err := fmt.Sscanf(pos, "%d:%d:%d", &offset, &length, &uncompressed); err != nil {
		return fmt.Errorf("tarsplit-position %q: %w", pos, err)
	}
	var toc struct {
		TarSplitDigest string `json:"tarSplitDigest"`
	}
	if err := json.Unmarshal(manifest, &toc); err != nil {
		return err
	}
	comp := make([]byte, length)
	if _, err := f.ReadAt(comp, offset); err != nil {
		return err
	}
	if got := digest.FromBytes(comp).String(); got != toc.TarSplitDigest {
		return fmt.Errorf("tar-split digest %s, TOC says %q", got, toc.TarSplitDigest)
	}
	plain, err := dec.DecodeAll(comp, nil)
	if err != nil {
		return fmt.Errorf("tar-split: %w", err)
	}
	if int64(len(plain)) != uncompressed {
		return fmt.Errorf("tar-split is %d bytes, annotation says %d", len(plain), uncompressed)
	}
	out, err := os.Create(tarOut)
	if err != nil {
		return err
	}
	defer out.Close()
	unpacker := storage.NewJSONUnpacker(bytes.NewReader(plain))
	if err := asm.WriteOutputTarStream(storage.NewPathFileGetter(outDir), unpacker, out); err != nil {
		return fmt.Errorf("reassembling the tar from the tar-split: %w", err)
	}
	fmt.Println("reader: tar reassembled from the tar-split")
	return out.Close()
}

func main() {
	if len(os.Args) < 4 || len(os.Args) > 6 {
		fmt.Fprintln(os.Stderr, "usage: reader BLOB ANNOTATIONS.json OUTDIR [MANIFEST_OUT [TAR_OUT]]")
		os.Exit(2)
	}
	manifestOut, tarOut := "", ""
	if len(os.Args) >= 5 {
		manifestOut = os.Args[4]
	}
	if len(os.Args) == 6 {
		tarOut = os.Args[5]
	}
	if err := run(os.Args[1], os.Args[2], os.Args[3], manifestOut, tarOut); err != nil {
		fmt.Fprintln(os.Stderr, "reader:", err)
		os.Exit(1)
	}
}
