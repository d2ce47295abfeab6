//! The durable on-disk spool: an ordered queue of frames (encoded batches) in append-only
//! segment files `DIR/<seq>.seg`, 20-digit sequence numbers so that names sort in order.
//!
//! Frame: `len: u32 LE | crc32(payload): u32 LE | payload`. Appends write a whole frame and then
//! `fdatasync` the segment (a new segment also syncs the directory), so an acknowledged append
//! survives a crash or power loss; a crash in the middle of an append leaves a torn last frame,
//! which the next open detects (length or checksum) and cuts off: at most the record being
//! written is lost. Reading does not rewrite anything: a consumed segment is deleted, and the
//! read position inside the head segment is kept in memory only, so after a crash the head
//! segment is replayed from its start; the writers' batch ledger makes that replay harmless.

use std::collections::VecDeque;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

/// Frames longer than this are taken for corruption.
const MAX_FRAME: u32 = 1 << 30;
const HEADER: u64 = 8;
/// First segment number of an empty spool: leaves room to prepend segments in front.
const FIRST_SEQ: u64 = 1 << 40;

#[derive(Debug, thiserror::Error)]
pub enum SpoolError {
    #[error("spool {path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
}

fn io_err(path: &Path) -> impl FnOnce(io::Error) -> SpoolError + '_ {
    move |source| SpoolError::Io {
        path: path.to_path_buf(),
        source,
    }
}

#[derive(Debug)]
struct Segment {
    seq: u64,
    path: PathBuf,
    /// Valid bytes in the file.
    len: u64,
    /// Read position (bytes consumed).
    read: u64,
    /// Unconsumed frames.
    frames: u64,
}

/// What [`Spool::open`] found.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct OpenReport {
    pub segments: usize,
    pub frames: u64,
    /// Bytes cut off torn or corrupt segment ends.
    pub truncated_bytes: u64,
}

pub struct Spool {
    dir: PathBuf,
    max_bytes: u64,
    segment_bytes: u64,
    segments: VecDeque<Segment>,
    tail: Option<File>,
    reader: Option<(u64, File)>,
}

impl Spool {
    /// Open (or create) the spool in `dir`, scanning every segment and cutting torn ends.
    pub fn open(
        dir: &Path,
        max_bytes: u64,
        segment_bytes: u64,
    ) -> Result<(Spool, OpenReport), SpoolError> {
        fs::create_dir_all(dir).map_err(io_err(dir))?;
        let mut seqs = Vec::new();
        for entry in fs::read_dir(dir).map_err(io_err(dir))? {
            let entry = entry.map_err(io_err(dir))?;
            let name = entry.file_name();
            let Some(name) = name.to_str() else { continue };
            if let Some(n) = name.strip_suffix(".seg")
                && let Ok(seq) = n.parse::<u64>()
            {
                seqs.push(seq);
            }
        }
        seqs.sort_unstable();
        let mut report = OpenReport::default();
        let mut segments = VecDeque::new();
        for seq in seqs {
            let path = seg_path(dir, seq);
            let (len, frames, file_len) = scan(&path)?;
            if len < file_len {
                report.truncated_bytes += file_len - len;
                tracing::error!(
                    segment = %path.display(),
                    cut_bytes = file_len - len,
                    "spool segment ends in a torn or corrupt frame; cutting it off"
                );
                let f = OpenOptions::new()
                    .write(true)
                    .open(&path)
                    .map_err(io_err(&path))?;
                f.set_len(len).map_err(io_err(&path))?;
                f.sync_all().map_err(io_err(&path))?;
            }
            if frames == 0 {
                fs::remove_file(&path).map_err(io_err(&path))?;
                continue;
            }
            report.frames += frames;
            segments.push_back(Segment {
                seq,
                path,
                len,
                read: 0,
                frames,
            });
        }
        report.segments = segments.len();
        Ok((
            Spool {
                dir: dir.to_path_buf(),
                max_bytes,
                segment_bytes: segment_bytes.max(1),
                segments,
                tail: None,
                reader: None,
            },
            report,
        ))
    }

    pub fn is_empty(&self) -> bool {
        self.segments.iter().all(|s| s.frames == 0)
    }

    /// Unconsumed frames.
    pub fn frames(&self) -> u64 {
        self.segments.iter().map(|s| s.frames).sum()
    }

    /// Bytes on disk not yet consumed.
    pub fn bytes(&self) -> u64 {
        self.segments.iter().map(|s| s.len - s.read).sum()
    }

    /// True when the spool holds `max_bytes` or more: appends should wait.
    pub fn is_full(&self) -> bool {
        self.bytes() >= self.max_bytes
    }

    pub fn max_bytes(&self) -> u64 {
        self.max_bytes
    }

    /// Append one frame at the end, durably (returns after `fdatasync`).
    pub fn append(&mut self, payload: &[u8]) -> Result<(), SpoolError> {
        // A segment found on disk or prepended is never appended to: a new one is started.
        let need_new = match self.segments.back() {
            None => true,
            Some(s) => self.tail.is_none() || s.len >= self.segment_bytes,
        };
        if need_new {
            let seq = self.segments.back().map_or(FIRST_SEQ, |s| s.seq + 1);
            self.new_segment_back(seq)?;
        }
        let (seg, tail) = match (self.segments.back_mut(), self.tail.as_mut()) {
            (Some(s), Some(t)) => (s, t),
            _ => unreachable_tail(),
        };
        let frame = frame(payload);
        tail.write_all(&frame).map_err(io_err(&seg.path))?;
        tail.sync_data().map_err(io_err(&seg.path))?;
        seg.len += frame.len() as u64;
        seg.frames += 1;
        Ok(())
    }

    /// Put frames in front of everything spooled (in the given order), durably: used at
    /// shutdown for batches that were already taken out of the queue but not written.
    pub fn prepend(&mut self, payloads: &[Vec<u8>]) -> Result<(), SpoolError> {
        if payloads.is_empty() {
            return Ok(());
        }
        let seq = self.segments.front().map_or(FIRST_SEQ, |s| s.seq - 1);
        let path = seg_path(&self.dir, seq);
        let mut f = OpenOptions::new()
            .create_new(true)
            .write(true)
            .open(&path)
            .map_err(io_err(&path))?;
        let mut len = 0;
        for p in payloads {
            let fr = frame(p);
            f.write_all(&fr).map_err(io_err(&path))?;
            len += fr.len() as u64;
        }
        f.sync_all().map_err(io_err(&path))?;
        sync_dir(&self.dir)?;
        let was_empty = self.segments.is_empty();
        self.segments.push_front(Segment {
            seq,
            path,
            len,
            read: 0,
            frames: payloads.len() as u64,
        });
        if was_empty {
            // The new segment is also the tail, but it was not opened for appending: the next
            // append starts a fresh segment.
            self.tail = None;
        }
        Ok(())
    }

    /// The oldest unconsumed frame, or `None`. Frames that fail their checksum here (the disk
    /// changed under us) are an error.
    pub fn peek(&mut self) -> Result<Option<Vec<u8>>, SpoolError> {
        let Some(seg) = self.segments.front() else {
            return Ok(None);
        };
        if seg.frames == 0 {
            return Ok(None);
        }
        let (seq, path, read) = (seg.seq, seg.path.clone(), seg.read);
        if self.reader.as_ref().is_none_or(|(s, _)| *s != seq) {
            let f = File::open(&path).map_err(io_err(&path))?;
            self.reader = Some((seq, f));
        }
        let Some((_, f)) = self.reader.as_mut() else {
            return Ok(None);
        };
        f.seek(SeekFrom::Start(read)).map_err(io_err(&path))?;
        let mut h = [0u8; 8];
        f.read_exact(&mut h).map_err(io_err(&path))?;
        let len = u32::from_le_bytes([h[0], h[1], h[2], h[3]]);
        let crc = u32::from_le_bytes([h[4], h[5], h[6], h[7]]);
        let mut payload = vec![0u8; len as usize];
        f.read_exact(&mut payload).map_err(io_err(&path))?;
        if crc32fast::hash(&payload) != crc {
            return Err(SpoolError::Io {
                path,
                source: io::Error::new(io::ErrorKind::InvalidData, "frame checksum mismatch"),
            });
        }
        Ok(Some(payload))
    }

    /// Consume the frame [`peek`](Self::peek) returned; deletes a segment once all of it is
    /// consumed.
    pub fn pop(&mut self, payload_len: usize) -> Result<(), SpoolError> {
        let is_tail_open = self.tail.is_some() && self.segments.len() == 1;
        let Some(seg) = self.segments.front_mut() else {
            return Ok(());
        };
        seg.read += HEADER + payload_len as u64;
        seg.frames = seg.frames.saturating_sub(1);
        if seg.frames == 0 {
            let path = seg.path.clone();
            self.segments.pop_front();
            if is_tail_open {
                self.tail = None;
            }
            self.reader = None;
            fs::remove_file(&path).map_err(io_err(&path))?;
        }
        Ok(())
    }

    fn new_segment_back(&mut self, seq: u64) -> Result<(), SpoolError> {
        let path = seg_path(&self.dir, seq);
        let f = OpenOptions::new()
            .create_new(true)
            .append(true)
            .open(&path)
            .map_err(io_err(&path))?;
        sync_dir(&self.dir)?;
        self.segments.push_back(Segment {
            seq,
            path,
            len: 0,
            read: 0,
            frames: 0,
        });
        self.tail = Some(f);
        Ok(())
    }
}

fn unreachable_tail() -> ! {
    // `append` always opens a tail segment first.
    panic!("spool: no tail segment after opening one")
}

fn frame(payload: &[u8]) -> Vec<u8> {
    let mut v = Vec::with_capacity(payload.len() + HEADER as usize);
    v.extend_from_slice(&(payload.len() as u32).to_le_bytes());
    v.extend_from_slice(&crc32fast::hash(payload).to_le_bytes());
    v.extend_from_slice(payload);
    v
}

fn seg_path(dir: &Path, seq: u64) -> PathBuf {
    dir.join(format!("{seq:020}.seg"))
}

fn sync_dir(dir: &Path) -> Result<(), SpoolError> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(io_err(dir))
}

/// (valid length, frames, file length)
fn scan(path: &Path) -> Result<(u64, u64, u64), SpoolError> {
    let data = read_file(path)?;
    let (frames, valid) = valid_frames(&data);
    Ok((valid as u64, frames.len() as u64, data.len() as u64))
}

fn read_file(path: &Path) -> Result<Vec<u8>, SpoolError> {
    let mut data = Vec::new();
    File::open(path)
        .and_then(|mut f| f.read_to_end(&mut data))
        .map_err(io_err(path))?;
    Ok(data)
}

/// The payload ranges of the valid frames at the start of `data`, and where they end (a torn
/// or corrupt frame ends the valid part).
fn valid_frames(data: &[u8]) -> (Vec<std::ops::Range<usize>>, usize) {
    let mut pos = 0usize;
    let mut frames = Vec::new();
    while data.len() - pos >= HEADER as usize {
        let len = u32::from_le_bytes([data[pos], data[pos + 1], data[pos + 2], data[pos + 3]]);
        let crc = u32::from_le_bytes([data[pos + 4], data[pos + 5], data[pos + 6], data[pos + 7]]);
        if len > MAX_FRAME {
            break;
        }
        let start = pos + HEADER as usize;
        let Some(end) = start.checked_add(len as usize).filter(|&e| e <= data.len()) else {
            break;
        };
        if crc32fast::hash(&data[start..end]) != crc {
            break;
        }
        frames.push(start..end);
        pos = end;
    }
    (frames, pos)
}

/// Every valid frame in the spool directory `dir`, oldest first: what the next start would
/// replay (the ledger skips what was committed already). Reads only; a directory that does
/// not exist is an empty spool. For inspecting the spool of a stopped or killed process.
pub fn read_frames(dir: &Path) -> Result<Vec<Vec<u8>>, SpoolError> {
    let entries = match fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(io_err(dir)(e)),
    };
    let mut seqs = Vec::new();
    for entry in entries {
        let name = entry.map_err(io_err(dir))?.file_name();
        if let Some(seq) = name
            .to_str()
            .and_then(|n| n.strip_suffix(".seg"))
            .and_then(|n| n.parse::<u64>().ok())
        {
            seqs.push(seq);
        }
    }
    seqs.sort_unstable();
    let mut out = Vec::new();
    for seq in seqs {
        let data = read_file(&seg_path(dir, seq))?;
        let (frames, _) = valid_frames(&data);
        out.extend(frames.into_iter().map(|r| data[r].to_vec()));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn payload(i: u32) -> Vec<u8> {
        let mut v = i.to_le_bytes().to_vec();
        v.resize(10 + (i as usize % 50), i as u8);
        v
    }

    fn drain(s: &mut Spool) -> Vec<Vec<u8>> {
        let mut out = Vec::new();
        while let Some(p) = s.peek().unwrap() {
            s.pop(p.len()).unwrap();
            out.push(p);
        }
        out
    }

    #[test]
    fn frames_come_back_in_order_across_segments_and_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let (mut s, r) = Spool::open(dir.path(), 1 << 30, 200).unwrap();
        assert_eq!(r, OpenReport::default());
        for i in 0..50 {
            s.append(&payload(i)).unwrap();
        }
        assert_eq!(s.frames(), 50);
        assert!(fs::read_dir(dir.path()).unwrap().count() > 3);
        // Consume a few, then "restart": the head segment is replayed from its start.
        let first = s.peek().unwrap().unwrap();
        s.pop(first.len()).unwrap();
        drop(s);
        let (mut s, r) = Spool::open(dir.path(), 1 << 30, 200).unwrap();
        assert_eq!(
            r.frames, 50,
            "head segment replayed from the start after a restart"
        );
        let got = drain(&mut s);
        assert_eq!(got, (0..50).map(payload).collect::<Vec<_>>());
        assert!(s.is_empty());
        assert_eq!(s.bytes(), 0);
        assert_eq!(
            fs::read_dir(dir.path()).unwrap().count(),
            0,
            "segments deleted"
        );
    }

    #[test]
    fn read_frames_lists_what_a_restart_replays_without_changing_the_spool() {
        let dir = tempfile::tempdir().unwrap();
        assert!(read_frames(&dir.path().join("missing")).unwrap().is_empty());
        let (mut s, _) = Spool::open(dir.path(), 1 << 30, 200).unwrap();
        for i in 0..30 {
            s.append(&payload(i)).unwrap();
        }
        drop(s);
        // A torn frame at the end of the newest segment is not listed.
        let mut segs: Vec<_> = fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().path())
            .collect();
        segs.sort();
        let last = segs.last().unwrap();
        let before = fs::metadata(last).unwrap().len();
        let mut f = OpenOptions::new().append(true).open(last).unwrap();
        f.write_all(&frame(&payload(77))[..12]).unwrap();
        drop(f);
        assert_eq!(
            read_frames(dir.path()).unwrap(),
            (0..30).map(payload).collect::<Vec<_>>()
        );
        assert_eq!(fs::metadata(last).unwrap().len(), before + 12, "unchanged");
    }

    #[test]
    fn appends_after_draining_and_interleaved_reads_keep_order() {
        let dir = tempfile::tempdir().unwrap();
        let (mut s, _) = Spool::open(dir.path(), 1 << 30, 100).unwrap();
        let mut expected = Vec::new();
        let mut got = Vec::new();
        for i in 0..40 {
            s.append(&payload(i)).unwrap();
            expected.push(payload(i));
            if i % 3 == 0 {
                let p = s.peek().unwrap().unwrap();
                s.pop(p.len()).unwrap();
                got.push(p);
            }
        }
        got.extend(drain(&mut s));
        assert_eq!(got, expected);
        s.append(&payload(99)).unwrap();
        assert_eq!(drain(&mut s), vec![payload(99)]);
    }

    #[test]
    fn a_torn_last_frame_is_cut_and_everything_before_it_kept() {
        let dir = tempfile::tempdir().unwrap();
        let (mut s, _) = Spool::open(dir.path(), 1 << 30, 1 << 20).unwrap();
        for i in 0..5 {
            s.append(&payload(i)).unwrap();
        }
        drop(s);
        let seg = fs::read_dir(dir.path())
            .unwrap()
            .next()
            .unwrap()
            .unwrap()
            .path();
        // A crash in the middle of the sixth append: header and half the payload.
        let mut f = OpenOptions::new().append(true).open(&seg).unwrap();
        let fr = frame(&payload(5));
        f.write_all(&fr[..fr.len() / 2]).unwrap();
        drop(f);
        let (mut s, r) = Spool::open(dir.path(), 1 << 30, 1 << 20).unwrap();
        assert_eq!(r.frames, 5);
        assert_eq!(r.truncated_bytes, (fr.len() / 2) as u64);
        s.append(&payload(6)).unwrap();
        let mut want: Vec<_> = (0..5).map(payload).collect();
        want.push(payload(6));
        assert_eq!(drain(&mut s), want);
    }

    #[test]
    fn a_flipped_byte_is_detected_by_the_checksum() {
        let dir = tempfile::tempdir().unwrap();
        let (mut s, _) = Spool::open(dir.path(), 1 << 30, 1 << 20).unwrap();
        for i in 0..3 {
            s.append(&payload(i)).unwrap();
        }
        drop(s);
        let seg = fs::read_dir(dir.path())
            .unwrap()
            .next()
            .unwrap()
            .unwrap()
            .path();
        let mut data = fs::read(&seg).unwrap();
        let last = data.len() - 1;
        data[last] ^= 0xff;
        fs::write(&seg, data).unwrap();
        let (mut s, r) = Spool::open(dir.path(), 1 << 30, 1 << 20).unwrap();
        assert_eq!(r.frames, 2);
        assert_eq!(drain(&mut s), vec![payload(0), payload(1)]);
    }

    #[test]
    fn prepend_goes_before_everything_including_a_partly_read_head() {
        let dir = tempfile::tempdir().unwrap();
        let (mut s, _) = Spool::open(dir.path(), 1 << 30, 1 << 20).unwrap();
        for i in 10..13 {
            s.append(&payload(i)).unwrap();
        }
        let p = s.peek().unwrap().unwrap();
        s.pop(p.len()).unwrap();
        s.prepend(&[payload(1), payload(2)]).unwrap();
        s.append(&payload(13)).unwrap();
        let got = drain(&mut s);
        assert_eq!(
            got,
            vec![
                payload(1),
                payload(2),
                payload(11),
                payload(12),
                payload(13)
            ]
        );
        // Prepend into an empty spool, then append.
        s.prepend(&[payload(7)]).unwrap();
        s.append(&payload(8)).unwrap();
        drop(s);
        let (mut s, _) = Spool::open(dir.path(), 1 << 30, 1 << 20).unwrap();
        assert_eq!(drain(&mut s), vec![payload(7), payload(8)]);
    }

    #[test]
    fn full_means_at_or_over_the_byte_limit() {
        let dir = tempfile::tempdir().unwrap();
        let (mut s, _) = Spool::open(dir.path(), 100, 1 << 20).unwrap();
        assert!(!s.is_full());
        s.append(&[0u8; 60]).unwrap();
        assert!(!s.is_full());
        s.append(&[0u8; 60]).unwrap();
        assert!(s.is_full());
        assert_eq!(s.bytes(), 136);
        let p = s.peek().unwrap().unwrap();
        s.pop(p.len()).unwrap();
        assert!(!s.is_full());
    }
}
