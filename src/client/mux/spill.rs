//! Where a multiplexed stream's response goes when its client falls behind: an
//! unlinked temporary file, written by the connection's reader and read back by the
//! stream's owner, so the reader never waits for one slow client (FastCGI has no
//! per-request flow control) and memory stays at the stream's budget. This is what
//! nginx does with `proxy_temp_path` when its buffers are full.
//!
//! The file is written and read with plain blocking calls: they reach the page cache,
//! as nginx's do, and a stream spills only while its client is slower than the
//! backend. It is emptied (truncated) whenever the owner has read all of it, so its
//! size is what is waiting, bounded by the spill limit.

use std::fs::File;
use std::io::{self, Read, Seek, SeekFrom, Write};

use bytes::{Bytes, BytesMut};

/// One stream's overflow file.
#[derive(Debug)]
pub(super) struct Spill {
    file: File,
    read_pos: u64,
    write_pos: u64,
}

impl Spill {
    pub(super) fn create() -> io::Result<Spill> {
        Ok(Spill {
            file: tempfile::tempfile()?,
            read_pos: 0,
            write_pos: 0,
        })
    }

    /// Bytes written and not yet read back.
    pub(super) fn waiting(&self) -> u64 {
        self.write_pos - self.read_pos
    }

    pub(super) fn append(&mut self, data: &[u8]) -> io::Result<()> {
        self.file.seek(SeekFrom::Start(self.write_pos))?;
        self.file.write_all(data)?;
        self.write_pos += data.len() as u64;
        Ok(())
    }

    /// Reads back up to `max` bytes, in the order they were written.
    pub(super) fn read(&mut self, max: usize) -> io::Result<Bytes> {
        let n = usize::try_from(self.waiting()).map_or(max, |w| w.min(max));
        let mut buf = BytesMut::zeroed(n);
        self.file.seek(SeekFrom::Start(self.read_pos))?;
        self.file.read_exact(&mut buf)?;
        self.read_pos += n as u64;
        if self.read_pos == self.write_pos {
            // All read: give the disk space back.
            self.file.set_len(0)?;
            self.read_pos = 0;
            self.write_pos = 0;
        }
        Ok(buf.freeze())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bytes_come_back_in_order_and_the_file_empties() {
        let mut spill = Spill::create().unwrap();
        spill.append(b"hello ").unwrap();
        spill.append(b"world").unwrap();
        assert_eq!(spill.waiting(), 11);
        assert_eq!(&spill.read(4).unwrap()[..], b"hell");
        spill.append(b"!").unwrap();
        assert_eq!(&spill.read(100).unwrap()[..], b"o world!");
        assert_eq!(spill.waiting(), 0);
        assert_eq!(
            spill.file.metadata().unwrap().len(),
            0,
            "truncated once read"
        );
        spill.append(b"again").unwrap();
        assert_eq!(&spill.read(100).unwrap()[..], b"again");
    }
}
