// Command writer compresses a tar into a zstd:chunked layer with containers/storage's own
// compressor (pkg/chunked/compressor), the independent implementation lazysnap is checked
// against. Usage: writer IN.tar OUT.zst ANNOTATIONS.json
// ANNOTATIONS.json receives the descriptor annotations the compressor produced.
package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"

	"github.com/containers/storage/pkg/chunked/compressor"
)

func run(in, out, annotations string) error {
	src, err := os.Open(in)
	if err != nil {
		return err
	}
	defer src.Close()
	dst, err := os.Create(out)
	if err != nil {
		return err
	}
	meta := map[string]string{}
	w, err := compressor.ZstdCompressor(dst, meta, nil)
	if err != nil {
		return err
	}
	// 1024 extra zero bytes (an end-of-archive marker) so that a tar without one still ends:
	// c/storage 1.43's Close waits for the compressor before closing its input pipe, which
	// deadlocks when the compressor is still waiting for the end of the tar (this is why
	// Debian 12's skopeo 1.9 hangs on --dest-compress-format zstd:chunked).
	if err := copyTar(w, io.MultiReader(src, bytes.NewReader(make([]byte, 1024)))); err != nil {
		return err
	}
	if err := w.Close(); err != nil {
		return err
	}
	if err := dst.Close(); err != nil {
		return err
	}
	b, err := json.MarshalIndent(meta, "", "  ")
	if err != nil {
		return err
	}
	return os.WriteFile(annotations, append(b, '\n'), 0o644)
}

// copyTar is io.Copy, except that it tolerates containers/storage 1.43's compressor refusing
// input after the tar's end-of-archive marker (its Write then returns 0, nil as soon as it has
// finished): the rest must be zero padding, which is not part of any tar entry.
func copyTar(w io.Writer, r io.Reader) error {
	buf := make([]byte, 32<<10)
	finished := false
	for {
		n, rerr := r.Read(buf)
		data := buf[:n]
		if finished {
			if !allZero(data) {
				return errors.New("compressor stopped before the end of the tar")
			}
		} else if n > 0 {
			m, err := w.Write(data)
			if err != nil {
				return err
			}
			if m < n {
				if !allZero(data[m:]) {
					return errors.New("compressor stopped before the end of the tar")
				}
				finished = true
			}
		}
		if rerr == io.EOF {
			return nil
		}
		if rerr != nil {
			return rerr
		}
	}
}

func allZero(b []byte) bool {
	for _, c := range b {
		if c != 0 {
			return false
		}
	}
	return true
}

func main() {
	if len(os.Args) != 4 {
		fmt.Fprintln(os.Stderr, "usage: writer IN.tar OUT.zst ANNOTATIONS.json")
		os.Exit(2)
	}
	if err := run(os.Args[1], os.Args[2], os.Args[3]); err != nil {
		fmt.Fprintln(os.Stderr, "writer:", err)
		os.Exit(1)
	}
}
