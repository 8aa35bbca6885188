package vm

import (
	"fmt"
	"io"
	"io/fs"
)

// cpioWriter writes a "newc" (SVR4, no CRC) cpio archive, the format the
// Linux kernel unpacks as an initramfs.
type cpioWriter struct {
	w   io.Writer
	ino uint32
	err error
}

// Mode bits of the newc header.
const (
	cpioDir     = 0o040000
	cpioRegular = 0o100000
	cpioSymlink = 0o120000
)

func (c *cpioWriter) header(name string, mode uint32, size int) {
	if c.err != nil {
		return
	}
	c.ino++
	nlink := 1
	if mode&0o170000 == cpioDir {
		nlink = 2
	}
	hdr := fmt.Sprintf("070701%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X",
		c.ino, mode, 0, 0, nlink, 0, size, 0, 0, 0, 0, len(name)+1, 0)
	c.write([]byte(hdr))
	c.write([]byte(name + "\x00"))
	c.pad(len(hdr) + len(name) + 1)
}

func (c *cpioWriter) write(b []byte) {
	if c.err != nil {
		return
	}
	_, c.err = c.w.Write(b)
}

func (c *cpioWriter) pad(n int) {
	if r := n % 4; r != 0 {
		c.write(make([]byte, 4-r))
	}
}

// entry writes one archive member. perm holds the permission bits.
func (c *cpioWriter) entry(name string, typ uint32, perm fs.FileMode, data []byte) {
	c.header(name, typ|uint32(perm.Perm()), len(data))
	c.write(data)
	c.pad(len(data))
}

// close writes the trailer and reports the first error.
func (c *cpioWriter) close() error {
	c.header("TRAILER!!!", 0, 0)
	return c.err
}
