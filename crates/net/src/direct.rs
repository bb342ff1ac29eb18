//! Direct I/O for the journal's segment files: the writer's batches and a prepared segment's
//! zeros go from the process's memory to the disk without a copy in the page cache.
//!
//! Written through the page cache, every byte of the journal was copied once into pages the
//! CPU had long forgotten (a cache miss a line), and a prepared segment's 64 MiB of zeros
//! once more, with the file system's bookkeeping for each new page besides: in a journaled
//! 4 × 64 run the writer's thread spent 59% of its time in that copy and the preparer's
//! was 15% of the switch's process (`benches/README.md`, the seventh pass). Around the page
//! cache a write is whole blocks from a block-aligned buffer: a batch goes out with the
//! segment's last partial block before it (kept here, [`Staged`]) and zeros after it to the
//! block's end — the zeros a prepared segment holds anyway, and a scan's end of records.
//!
//! Where a file system refuses direct I/O (`EINVAL` at open: tmpfs, some network file
//! systems), or asks for an alignment 4 KiB blocks do not meet (`statx`'s
//! `STATX_DIOALIGN`), a file is written through the page cache as before: the bytes on disk
//! are the same either way.

use std::{
    fs::{File, OpenOptions},
    io,
    os::unix::fs::{FileExt, OpenOptionsExt},
    path::Path,
};

use zerocopy::{FromBytes, Immutable, IntoBytes, KnownLayout};

use crate::limits::{DIRECT_BLOCK_BYTES, SYNC_STEP_BYTES};

/// A block of direct I/O: its size and its alignment.
#[derive(Clone, Copy, FromBytes, IntoBytes, Immutable, KnownLayout)]
#[repr(C, align(4096))]
struct Block([u8; DIRECT_BLOCK_BYTES]);

const _: () = assert!(std::mem::size_of::<Block>() == DIRECT_BLOCK_BYTES);
const _: () = assert!(std::mem::align_of::<Block>() == DIRECT_BLOCK_BYTES);

const ZERO: Block = Block([0; DIRECT_BLOCK_BYTES]);

/// Whole blocks at a block's alignment: what direct I/O writes from.
#[derive(Default)]
pub(crate) struct Aligned {
    blocks: Vec<Block>,
}

impl Aligned {
    /// `bytes` of zeros (rounded up to a block).
    pub(crate) fn zeros(bytes: usize) -> Self {
        let mut a = Self::default();
        a.grow_to(bytes);
        a
    }

    /// Room for at least `bytes` (a block more at most), what it held kept.
    pub(crate) fn grow_to(&mut self, bytes: usize) {
        let blocks = bytes.div_ceil(DIRECT_BLOCK_BYTES);
        if blocks > self.blocks.len() {
            self.blocks.resize(blocks, ZERO);
        }
    }

    pub(crate) fn as_bytes(&self) -> &[u8] {
        self.blocks.as_bytes()
    }

    pub(crate) fn as_bytes_mut(&mut self) -> &mut [u8] {
        self.blocks.as_mut_bytes()
    }
}

impl std::fmt::Debug for Aligned {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Aligned").field("bytes", &(self.blocks.len() * DIRECT_BLOCK_BYTES)).finish()
    }
}

/// Opens `path` as `how` says, around the page cache when `direct` and its file system
/// allows it; whether it is.
///
/// # Errors
///
/// The file cannot be opened either way.
pub(crate) fn open(path: &Path, how: &OpenOptions, direct: bool) -> io::Result<(File, bool)> {
    if direct {
        let mut d = how.clone();
        // `O_DIRECT`'s bits fit an `i32` (they are one).
        d.custom_flags(i32::try_from(rustix::fs::OFlags::DIRECT.bits()).unwrap_or(0));
        match d.open(path) {
            Ok(f) if blocks_fit(&f) => return Ok((f, true)),
            Ok(_) => {}
            Err(e) if e.raw_os_error() == Some(rustix::io::Errno::INVAL.raw_os_error()) => {}
            Err(e) => return Err(e),
        }
    }
    how.open(path).map(|f| (f, false))
}

/// Whether this module's blocks suit direct I/O on `f`'s file system, as it says
/// (`statx`'s `STATX_DIOALIGN`, Linux 6.1 on): a device whose logical block is larger than
/// [`DIRECT_BLOCK_BYTES`] would refuse every write. A kernel that does not say is taken
/// at its word that the open succeeded (4 KiB suits every common device).
fn blocks_fit(f: &File) -> bool {
    use rustix::fs::{statx, AtFlags, StatxFlags};
    match statx(f, "", AtFlags::EMPTY_PATH, StatxFlags::DIOALIGN) {
        Ok(s) if s.stx_mask & StatxFlags::DIOALIGN.bits() != 0 => {
            aligns(s.stx_dio_mem_align, s.stx_dio_offset_align)
        }
        _ => true,
    }
}

/// Whether buffers and offsets aligned to [`DIRECT_BLOCK_BYTES`] meet a file system's
/// direct-I/O alignments (0: it has no direct I/O for the file).
fn aligns(mem: u32, offset: u32) -> bool {
    let fits = |a: u32| a != 0 && (DIRECT_BLOCK_BYTES as u32).is_multiple_of(a);
    fits(mem) && fits(offset)
}

/// How a segment file is written: around the page cache (each write whole blocks from the
/// block the records' end lies in, whose bytes before that end it keeps between writes), or
/// through it as it was opened (bytes where they go).
#[derive(Debug, Default)]
pub(crate) struct Staged {
    /// The file was opened around the page cache ([`open`]).
    direct: bool,
    /// The segment's last partial block (its first `at % DIRECT_BLOCK_BYTES` bytes), then
    /// room for a batch: at most a batch's bytes and two blocks.
    buf: Aligned,
}

fn head_of(at: u64) -> usize {
    // Less than a block.
    usize::try_from(at % DIRECT_BLOCK_BYTES as u64).unwrap_or(0)
}

impl Staged {
    /// A segment begins in a file [`open`] opened (`direct`: around the page cache).
    pub(crate) fn begin(&mut self, direct: bool) {
        self.direct = direct;
    }

    /// Whether the segment is written around the page cache.
    pub(crate) fn direct(&self) -> bool {
        self.direct
    }

    /// Writes `bytes` to `f` at `at`, the end of what it holds; around the page cache, the
    /// partial block before it as it was (kept since the last write), then `bytes`, then
    /// zeros to the block's end. Nothing kept changes: a failed write is made again the same
    /// way.
    ///
    /// # Errors
    ///
    /// The write's.
    pub(crate) fn write(&mut self, f: &File, at: u64, bytes: &[u8]) -> io::Result<()> {
        if !self.direct {
            return f.write_all_at(bytes, at);
        }
        let head = head_of(at);
        let end = head + bytes.len();
        let padded = end.next_multiple_of(DIRECT_BLOCK_BYTES);
        self.buf.grow_to(padded);
        let buf = self.buf.as_bytes_mut();
        buf[head..end].copy_from_slice(bytes);
        buf[end..padded].fill(0);
        f.write_all_at(&buf[..padded], at - head as u64)
    }

    /// The `len` bytes written at `at` hold: the block the new end lies in is kept.
    pub(crate) fn advance(&mut self, at: u64, len: usize) {
        if !self.direct {
            return;
        }
        let end = head_of(at) + len;
        let kept = head_of(at + len as u64);
        self.buf.as_bytes_mut().copy_within(end - kept..end, 0);
    }

    /// Takes up a segment of `at` bytes, at `path`, in a file [`open`] opened (a restart
    /// appending to it): around the page cache, the partial block before `at` is read back.
    ///
    /// # Errors
    ///
    /// The read's.
    pub(crate) fn resume(&mut self, direct: bool, path: &Path, at: u64) -> io::Result<()> {
        self.begin(direct);
        if !direct {
            return Ok(());
        }
        let head = head_of(at);
        self.buf.grow_to(head);
        // A read through the page cache: a direct one would need its own alignment, and
        // this is once a start.
        File::open(path)?.read_exact_at(&mut self.buf.as_bytes_mut()[..head], at - head as u64)
    }
}

/// Reads the file at `path` into `buf` (grown to hold it) a step of [`SYNC_STEP_BYTES`] at
/// a time, around the page cache where its file system allows it, straight into `buf`; its
/// length. A checkpoint's read of segments the writer wrote around the page cache goes to
/// the disk: in one request of a step at a time the journal's own writes and syncs wait
/// behind at most that — not behind the kernel's read-ahead of megabytes, which the disk's
/// scheduler puts ahead of writes — and nothing is copied (a segment's 64 MiB copied into a
/// buffer the CPU has long forgotten is a cache miss a line).
///
/// # Errors
///
/// The open's or a read's.
pub(crate) fn read_paced(path: &Path, buf: &mut Aligned) -> io::Result<usize> {
    let (f, direct) = open(path, OpenOptions::new().read(true), true)?;
    let len = usize::try_from(f.metadata()?.len()).unwrap_or(usize::MAX);
    if !direct {
        rustix::fs::fadvise(&f, 0, None, rustix::fs::Advice::Random)?;
    }
    // Whole steps: a direct read asks for whole blocks, and gets what the file holds.
    buf.grow_to(len.next_multiple_of(SYNC_STEP_BYTES));
    let mut at = 0;
    while at < len {
        let n = f.read_at(&mut buf.as_bytes_mut()[at..at + SYNC_STEP_BYTES], at as u64)?;
        if n == 0 {
            break;
        }
        at += n;
    }
    Ok(at.min(len))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn direct_io_is_used_only_where_its_blocks_meet_the_file_systems_alignment() {
        assert!(aligns(512, 512) && aligns(4_096, 4_096) && aligns(4, 512));
        assert!(!aligns(0, 0), "no direct I/O for the file");
        assert!(!aligns(512, 8_192), "a device of 8 KiB logical blocks");
        assert!(!aligns(8_192, 512));
        assert!(!aligns(3_000, 512), "not a divisor of a block");
    }

    #[test]
    fn a_paced_read_is_the_file_whole_whatever_its_length_and_the_buffer_held() {
        let dir = std::env::temp_dir().join(format!("corridor-direct-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let mut buf = Aligned::default();
        // Longest first: what a longer file left in the buffer is not read as the next's.
        for len in [3 * SYNC_STEP_BYTES + 4_097, SYNC_STEP_BYTES, 5, 0] {
            let path = dir.join(format!("{len}.seg"));
            let bytes: Vec<u8> = (0..len).map(|i| (i * 7 % 251) as u8 + 1).collect();
            std::fs::write(&path, &bytes).unwrap();
            let n = read_paced(&path, &mut buf).unwrap();
            assert_eq!(n, len);
            assert!(buf.as_bytes()[..n] == bytes[..], "{len} bytes read back");
        }
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn a_buffer_for_direct_io_is_block_aligned_and_keeps_what_it_held_as_it_grows() {
        let mut a = Aligned::zeros(1);
        assert_eq!(a.as_bytes().len(), DIRECT_BLOCK_BYTES);
        a.as_bytes_mut()[..3].copy_from_slice(b"abc");
        a.grow_to(3 * DIRECT_BLOCK_BYTES + 1);
        assert_eq!(a.as_bytes().len(), 4 * DIRECT_BLOCK_BYTES);
        assert_eq!(&a.as_bytes()[..3], b"abc");
        assert_eq!(a.as_bytes().as_ptr() as usize % DIRECT_BLOCK_BYTES, 0);
    }
}
