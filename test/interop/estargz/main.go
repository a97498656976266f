// estargz_ref: reads an eStargz blob with the reference reader (github.com/containerd/
// stargz-snapshotter/estargz, the package stargz-snapshotter itself uses), verifies the TOC
// digest and every chunk against its chunkDigest, and prints every entry in the line format of
// lazysnap's test/tools/layer_dump (with --mtime-seconds, the TOC's precision), so lazysnap's
// eStargz output is checked by an independent reader.
//
//	estargz_ref [-toc-digest sha256:...] BLOB
//
// Exit status 0 when everything verified; 1 and a message on stderr otherwise.
//
// Build (offline, Debian's Go sources): GOPATH=/usr/share/gocode GO111MODULE=off go build
package main

import (
	"bufio"
	"crypto/sha256"
	"encoding/hex"
	"flag"
	"fmt"
	"io"
	"os"
	"sort"
	"strings"
	"time"

	"github.com/containerd/stargz-snapshotter/estargz"
	digest "github.com/opencontainers/go-digest"
)

func escape(s string) string {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c <= 0x20 || c >= 0x7f || c == '\\' {
			fmt.Fprintf(&b, "\\x%02x", c)
		} else {
			b.WriteByte(c)
		}
	}
	return b.String()
}

func fail(format string, args ...interface{}) {
	fmt.Fprintf(os.Stderr, "estargz_ref: "+format+"\n", args...)
	os.Exit(1)
}

type item struct {
	path string
	ent  *estargz.TOCEntry
}

func main() {
	tocDigest := flag.String("toc-digest", "", "expected TOC digest (sha256:...); verified if given")
	printDigest := flag.Bool("print-toc-digest", false, "print only the TOC digest (after verifying everything)")
	flag.Parse()
	if flag.NArg() != 1 {
		fmt.Fprintln(os.Stderr, "usage: estargz_ref [-toc-digest sha256:...] [-print-toc-digest] BLOB")
		os.Exit(2)
	}
	f, err := os.Open(flag.Arg(0))
	if err != nil {
		fail("%v", err)
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		fail("%v", err)
	}
	r, err := estargz.Open(io.NewSectionReader(f, 0, st.Size()))
	if err != nil {
		fail("opening %s: %v", flag.Arg(0), err)
	}
	var v estargz.TOCEntryVerifier
	if *tocDigest != "" {
		d, err := digest.Parse(*tocDigest)
		if err != nil {
			fail("-toc-digest: %v", err)
		}
		v, err = r.VerifyTOC(d)
		if err != nil {
			fail("verifying the TOC: %v", err)
		}
	} else {
		v, err = r.Verifiers()
		if err != nil {
			fail("TOC chunk digests: %v", err)
		}
	}

	// Every name in the tree (hard links resolve to the object they name).
	root, ok := r.Lookup("")
	if !ok {
		fail("no root directory")
	}
	var items []item
	var walk func(dir string, e *estargz.TOCEntry)
	walk = func(dir string, e *estargz.TOCEntry) {
		e.ForeachChild(func(base string, c *estargz.TOCEntry) bool {
			p := base
			if dir != "" {
				p = dir + "/" + base
			}
			items = append(items, item{p, c})
			if c.Type == "dir" {
				walk(p, c)
			}
			return true
		})
	}
	walk("", root)
	sort.Slice(items, func(i, j int) bool { return items[i].path < items[j].path })

	// Hard-link groups: the smallest path naming each object held by more than one name.
	first := map[*estargz.TOCEntry]string{}
	count := map[*estargz.TOCEntry]int{}
	for _, it := range items {
		if it.ent.Type == "dir" {
			continue
		}
		if _, ok := first[it.ent]; !ok {
			first[it.ent] = it.path
		}
		count[it.ent]++
	}

	sums := map[*estargz.TOCEntry]string{}
	out := bufio.NewWriterSize(os.Stdout, 1<<20)
	defer out.Flush()
	for _, it := range items {
		e := it.ent
		typ := map[string]string{"reg": "reg", "dir": "dir", "symlink": "sym", "char": "chr",
			"block": "blk", "fifo": "fifo"}[e.Type]
		if typ == "" {
			fail("%s: unexpected entry type %q", it.path, e.Type)
		}
		sum := "-"
		if e.Type == "reg" {
			s, ok := sums[e]
			if !ok {
				s = readVerified(r, v, e)
				sums[e] = s
			}
			sum = s
		}
		size := int64(0)
		if e.Type == "reg" {
			size = e.Size
		}
		link := "-"
		if e.Type == "symlink" {
			link = escape(e.LinkName)
		}
		dev := "-"
		if e.Type == "char" || e.Type == "block" {
			dev = fmt.Sprintf("%d,%d", e.DevMajor, e.DevMinor)
		}
		hl := "-"
		if count[e] > 1 {
			hl = escape(first[e])
		}
		xattrs := "-"
		if len(e.Xattrs) > 0 {
			var names []string
			for k := range e.Xattrs {
				names = append(names, k)
			}
			sort.Strings(names)
			var parts []string
			for _, k := range names {
				parts = append(parts, escape(k)+"="+hex.EncodeToString(e.Xattrs[k]))
			}
			xattrs = strings.Join(parts, ",")
		}
		var mtime int64 // whole seconds, rounded (half up), as layer_dump --mtime-seconds
		if !e.ModTime().IsZero() {
			mtime = e.ModTime().Round(time.Second).Unix()
		}
		if !*printDigest {
			fmt.Fprintf(out, "%s type=%s mode=%05o uid=%d gid=%d size=%d mtime=%d sha256=%s link=%s dev=%s hl=%s xattrs=%s\n",
				escape(it.path), typ, e.Mode&07777, e.UID, e.GID, size, mtime, sum, link, dev, hl, xattrs)
		}
	}
	if *printDigest {
		fmt.Fprintln(out, r.TOCDigest().String())
	}
}

// readVerified reads a regular file chunk by chunk, checks every chunk against its chunkDigest
// with the reader's verifier (as stargz-snapshotter does before serving data), and returns the
// hex sha256 of the whole content.
func readVerified(r *estargz.Reader, v estargz.TOCEntryVerifier, e *estargz.TOCEntry) string {
	h := sha256.New()
	if e.Size == 0 {
		return hex.EncodeToString(h.Sum(nil))
	}
	sr, err := r.OpenFile(e.Name)
	if err != nil {
		fail("%s: %v", e.Name, err)
	}
	var off int64
	for off < e.Size {
		ce, ok := r.ChunkEntryForOffset(e.Name, off)
		if !ok {
			fail("%s: no chunk at offset %d", e.Name, off)
		}
		if ce.ChunkOffset != off || ce.ChunkSize <= 0 {
			fail("%s: chunk at %d has offset %d size %d", e.Name, off, ce.ChunkOffset, ce.ChunkSize)
		}
		buf := make([]byte, ce.ChunkSize)
		if _, err := sr.ReadAt(buf, ce.ChunkOffset); err != nil && !(err == io.EOF && ce.ChunkOffset+ce.ChunkSize == e.Size) {
			fail("%s: reading chunk at %d: %v", e.Name, off, err)
		}
		cv, err := v.Verifier(ce)
		if err != nil {
			fail("%s: chunk at %d: %v", e.Name, off, err)
		}
		if _, err := cv.Write(buf); err != nil {
			fail("%s: %v", e.Name, err)
		}
		if !cv.Verified() {
			fail("%s: chunk at %d does not match its chunkDigest", e.Name, off)
		}
		h.Write(buf)
		off += ce.ChunkSize
	}
	return hex.EncodeToString(h.Sum(nil))
}
