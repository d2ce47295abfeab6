//! The recording file of `oee-stream record` and `oee-stream replay`: MQTT messages with the
//! time they were received, append-only, versioned, each record checksummed.
//!
//! Layout (all integers little-endian; described for users in docs/tools.md):
//!
//! ```text
//! header, 16 bytes:  magic "OEE-REC\0" (8) · version u16 = 1 · flags u16 = 0 · reserved u32 = 0
//! each record:       length u32 (of the body) · CRC-32 u32 (IEEE, of the body) · body
//! body:              kind u8 · time u64 (UTC ms of receipt) · then by kind:
//!                    1 message:          topic length u16 · topic · payload (the rest)
//!                    2 connection lost:  nothing
//!                    3 connected:        nothing
//! ```
//!
//! Each record is written with one `write` call and the file is synced every second, so a
//! crash (of the process or of the machine) leaves every record before the last one whole;
//! a record cut short or damaged is detected by its length or checksum, and reading stops
//! there ([`Reader::torn`] says where and how many bytes were ignored).

use std::fs::{File, OpenOptions};
use std::io::{self, BufReader, Read, Write};
use std::path::{Path, PathBuf};

use bytes::Bytes;

/// The first 8 bytes of every recording.
pub const MAGIC: [u8; 8] = *b"OEE-REC\0";
/// The format version this build writes and reads.
pub const VERSION: u16 = 1;
const HEADER_LEN: usize = 16;
/// Kind byte and time.
const BODY_FIXED: usize = 9;
/// The largest body accepted on read: a larger length field is damage, not a record.
const MAX_BODY: u32 = 512 * 1024 * 1024;

const KIND_MESSAGE: u8 = 1;
const KIND_CONNECTION_LOST: u8 = 2;
const KIND_CONNECTED: u8 = 3;

/// One record.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Entry {
    /// An MQTT message as received: topic bytes (UTF-8 unless the broker sent otherwise) and
    /// payload.
    Message {
        at_ms: u64,
        topic: Bytes,
        payload: Bytes,
    },
    /// The recorder's broker connection was lost at this time.
    ConnectionLost { at_ms: u64 },
    /// The recorder (re)connected and subscribed at this time.
    Connected { at_ms: u64 },
}

impl Entry {
    /// The receipt time.
    pub fn at_ms(&self) -> u64 {
        match self {
            Entry::Message { at_ms, .. }
            | Entry::ConnectionLost { at_ms }
            | Entry::Connected { at_ms } => *at_ms,
        }
    }
}

/// Why a recording cannot be written or read.
#[derive(Debug, thiserror::Error)]
pub enum RecordingError {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("{path} already exists; record into a new file (recordings are never overwritten)")]
    Exists { path: PathBuf },
    #[error("{path} is not an oee-stream recording (it does not start with the magic bytes)")]
    NotARecording { path: PathBuf },
    #[error(
        "{path} is a recording of format version {version}; this oee-stream reads version {VERSION}"
    )]
    Version { path: PathBuf, version: u16 },
    #[error(
        "{path}: record at byte {offset} has the unknown kind {kind} (written by a newer oee-stream?)"
    )]
    UnknownKind {
        path: PathBuf,
        offset: u64,
        kind: u8,
    },
    #[error("{path}: topic of {len} bytes is longer than a recording can hold (65535)")]
    TopicTooLong { path: PathBuf, len: usize },
}

/// Appends records to a new recording file.
pub struct Writer {
    file: File,
    path: PathBuf,
    frame: Vec<u8>,
    bytes: u64,
}

impl Writer {
    /// Creates `path` (which must not exist) and writes the header.
    pub fn create(path: &Path) -> Result<Writer, RecordingError> {
        let io = |source| RecordingError::Io {
            path: path.to_path_buf(),
            source,
        };
        let mut file = OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(path)
            .map_err(|e| {
                if e.kind() == io::ErrorKind::AlreadyExists {
                    RecordingError::Exists {
                        path: path.to_path_buf(),
                    }
                } else {
                    io(e)
                }
            })?;
        let mut header = [0u8; HEADER_LEN];
        header[..8].copy_from_slice(&MAGIC);
        header[8..10].copy_from_slice(&VERSION.to_le_bytes());
        file.write_all(&header).map_err(io)?;
        file.sync_all().map_err(io)?;
        Ok(Writer {
            file,
            path: path.to_path_buf(),
            frame: Vec::with_capacity(4096),
            bytes: HEADER_LEN as u64,
        })
    }

    /// Appends one record with a single `write` (not synced: see [`Writer::sync`]).
    pub fn append(&mut self, entry: &Entry) -> Result<(), RecordingError> {
        self.frame.clear();
        self.frame.extend_from_slice(&[0u8; 8]);
        match entry {
            Entry::Message {
                at_ms,
                topic,
                payload,
            } => {
                let len = u16::try_from(topic.len()).map_err(|_| RecordingError::TopicTooLong {
                    path: self.path.clone(),
                    len: topic.len(),
                })?;
                self.frame.push(KIND_MESSAGE);
                self.frame.extend_from_slice(&at_ms.to_le_bytes());
                self.frame.extend_from_slice(&len.to_le_bytes());
                self.frame.extend_from_slice(topic);
                self.frame.extend_from_slice(payload);
            }
            Entry::ConnectionLost { at_ms } => {
                self.frame.push(KIND_CONNECTION_LOST);
                self.frame.extend_from_slice(&at_ms.to_le_bytes());
            }
            Entry::Connected { at_ms } => {
                self.frame.push(KIND_CONNECTED);
                self.frame.extend_from_slice(&at_ms.to_le_bytes());
            }
        }
        let body = &self.frame[8..];
        let len = u32::try_from(body.len())
            .ok()
            .filter(|l| *l <= MAX_BODY)
            .ok_or_else(|| RecordingError::Io {
                path: self.path.clone(),
                source: io::Error::new(io::ErrorKind::InvalidInput, "record too large"),
            })?;
        let crc = crc32fast::hash(body);
        self.frame[..4].copy_from_slice(&len.to_le_bytes());
        self.frame[4..8].copy_from_slice(&crc.to_le_bytes());
        self.file
            .write_all(&self.frame)
            .map_err(|source| RecordingError::Io {
                path: self.path.clone(),
                source,
            })?;
        self.bytes += self.frame.len() as u64;
        Ok(())
    }

    /// Forces what was written to the disk.
    pub fn sync(&mut self) -> Result<(), RecordingError> {
        self.file.sync_data().map_err(|source| RecordingError::Io {
            path: self.path.clone(),
            source,
        })
    }

    /// Bytes in the file so far (header included).
    pub fn bytes(&self) -> u64 {
        self.bytes
    }
}

/// Where reading stopped before the end of the file.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Torn {
    /// Byte offset of the first record that is not whole.
    pub offset: u64,
    /// Bytes from there to the end of the file, ignored.
    pub bytes: u64,
}

/// Reads a recording record by record.
pub struct Reader {
    input: BufReader<File>,
    path: PathBuf,
    offset: u64,
    len: u64,
    torn: Option<Torn>,
}

impl Reader {
    /// Opens `path` and checks its header.
    pub fn open(path: &Path) -> Result<Reader, RecordingError> {
        let io = |source| RecordingError::Io {
            path: path.to_path_buf(),
            source,
        };
        let file = File::open(path).map_err(io)?;
        let len = file.metadata().map_err(io)?.len();
        let mut input = BufReader::with_capacity(256 * 1024, file);
        let mut header = [0u8; HEADER_LEN];
        match input.read_exact(&mut header) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => {
                return Err(RecordingError::NotARecording {
                    path: path.to_path_buf(),
                });
            }
            Err(e) => return Err(io(e)),
        }
        if header[..8] != MAGIC {
            return Err(RecordingError::NotARecording {
                path: path.to_path_buf(),
            });
        }
        let version = u16::from_le_bytes([header[8], header[9]]);
        if version != VERSION {
            return Err(RecordingError::Version {
                path: path.to_path_buf(),
                version,
            });
        }
        Ok(Reader {
            input,
            path: path.to_path_buf(),
            offset: HEADER_LEN as u64,
            len,
            torn: None,
        })
    }

    /// The next record; `None` at the end of the file, or where a record is not whole (see
    /// [`Reader::torn`]).
    pub fn next_entry(&mut self) -> Result<Option<Entry>, RecordingError> {
        if self.torn.is_some() || self.offset >= self.len {
            return Ok(None);
        }
        let start = self.offset;
        let remaining = self.len - start;
        let mut head = [0u8; 8];
        if remaining < 8 {
            return Ok(self.stop(start));
        }
        self.read(&mut head)?;
        let len = u32::from_le_bytes([head[0], head[1], head[2], head[3]]);
        let crc = u32::from_le_bytes([head[4], head[5], head[6], head[7]]);
        if len > MAX_BODY || (len as usize) < BODY_FIXED || u64::from(len) > remaining - 8 {
            return Ok(self.stop(start));
        }
        let mut body = vec![0u8; len as usize];
        self.read(&mut body)?;
        if crc32fast::hash(&body) != crc {
            return Ok(self.stop(start));
        }
        self.offset = start + 8 + u64::from(len);
        let kind = body[0];
        let mut time = [0u8; 8];
        time.copy_from_slice(&body[1..BODY_FIXED]);
        let at_ms = u64::from_le_bytes(time);
        let entry = match kind {
            KIND_MESSAGE => {
                let rest = &body[BODY_FIXED..];
                let Some(tlen) = rest
                    .get(..2)
                    .map(|b| u16::from_le_bytes([b[0], b[1]]) as usize)
                else {
                    return Ok(self.stop(start));
                };
                if rest.len() < 2 + tlen {
                    return Ok(self.stop(start));
                }
                let body = Bytes::from(body);
                let t0 = BODY_FIXED + 2;
                Entry::Message {
                    at_ms,
                    topic: body.slice(t0..t0 + tlen),
                    payload: body.slice(t0 + tlen..),
                }
            }
            KIND_CONNECTION_LOST => Entry::ConnectionLost { at_ms },
            KIND_CONNECTED => Entry::Connected { at_ms },
            kind => {
                return Err(RecordingError::UnknownKind {
                    path: self.path.clone(),
                    offset: start,
                    kind,
                });
            }
        };
        Ok(Some(entry))
    }

    /// Where reading stopped short of the end of the file, once [`Reader::next_entry`] has
    /// returned `None`.
    pub fn torn(&self) -> Option<Torn> {
        self.torn
    }

    fn stop(&mut self, offset: u64) -> Option<Entry> {
        self.torn = Some(Torn {
            offset,
            bytes: self.len - offset,
        });
        None
    }

    fn read(&mut self, buf: &mut [u8]) -> Result<(), RecordingError> {
        self.input
            .read_exact(buf)
            .map_err(|source| RecordingError::Io {
                path: self.path.clone(),
                source,
            })
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    fn message(at_ms: u64, topic: &str, payload: &[u8]) -> Entry {
        Entry::Message {
            at_ms,
            topic: Bytes::copy_from_slice(topic.as_bytes()),
            payload: Bytes::copy_from_slice(payload),
        }
    }

    fn read_all(path: &Path) -> (Vec<Entry>, Option<Torn>) {
        let mut r = Reader::open(path).unwrap();
        let mut out = Vec::new();
        while let Some(e) = r.next_entry().unwrap() {
            out.push(e);
        }
        (out, r.torn())
    }

    fn sample(dir: &Path) -> (PathBuf, Vec<Entry>) {
        let path = dir.join("a.oeerec");
        let entries = vec![
            Entry::Connected { at_ms: 1 },
            message(2, "spBv1.0/G/NBIRTH/E", b"\x08\x01"),
            message(3, "spBv1.0/G/DDATA/E/D", b""),
            Entry::ConnectionLost { at_ms: 4 },
        ];
        let mut w = Writer::create(&path).unwrap();
        for e in &entries {
            w.append(e).unwrap();
        }
        w.sync().unwrap();
        assert_eq!(w.bytes(), std::fs::metadata(&path).unwrap().len());
        (path, entries)
    }

    #[test]
    fn records_read_back_as_written() {
        let dir = tempfile::tempdir().unwrap();
        let (path, entries) = sample(dir.path());
        let (got, torn) = read_all(&path);
        assert_eq!(got, entries);
        assert_eq!(torn, None);
    }

    #[test]
    fn the_header_and_a_message_are_laid_out_as_documented() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("b.oeerec");
        let mut w = Writer::create(&path).unwrap();
        w.append(&message(0x0102, "t/x", b"PL")).unwrap();
        let raw = std::fs::read(&path).unwrap();
        assert_eq!(&raw[..16], b"OEE-REC\0\x01\x00\x00\x00\x00\x00\x00\x00");
        let body: &[u8] = &[
            1, 0x02, 0x01, 0, 0, 0, 0, 0, 0, 3, 0, b't', b'/', b'x', b'P', b'L',
        ];
        assert_eq!(&raw[16..20], &(body.len() as u32).to_le_bytes());
        assert_eq!(&raw[20..24], &crc32fast::hash(body).to_le_bytes());
        assert_eq!(&raw[24..], body);
    }

    #[test]
    fn a_torn_last_record_is_detected_and_ignored() {
        let dir = tempfile::tempdir().unwrap();
        let (path, entries) = sample(dir.path());
        let whole = std::fs::metadata(&path).unwrap().len();
        // Cut the last record (9 bytes of body + 8 of head) in the middle of its body.
        let f = OpenOptions::new().write(true).open(&path).unwrap();
        f.set_len(whole - 3).unwrap();
        let (got, torn) = read_all(&path);
        assert_eq!(got, entries[..3]);
        assert_eq!(
            torn,
            Some(Torn {
                offset: whole - 17,
                bytes: 14
            })
        );
    }

    #[test]
    fn a_damaged_record_stops_reading_at_its_checksum() {
        let dir = tempfile::tempdir().unwrap();
        let (path, entries) = sample(dir.path());
        let mut raw = std::fs::read(&path).unwrap();
        // Flip a payload byte of the first message (the second record).
        let second = 16 + 8 + 9;
        raw[second + 8 + 9 + 2 + "spBv1.0/G/NBIRTH/E".len()] ^= 0xFF;
        std::fs::write(&path, &raw).unwrap();
        let (got, torn) = read_all(&path);
        assert_eq!(got, entries[..1]);
        assert_eq!(torn.unwrap().offset, second as u64);
    }

    #[test]
    fn other_files_and_versions_are_refused_clearly() {
        let dir = tempfile::tempdir().unwrap();
        let (path, _) = sample(dir.path());
        assert!(matches!(
            Writer::create(&path),
            Err(RecordingError::Exists { .. })
        ));
        let mut raw = std::fs::read(&path).unwrap();
        raw[8] = 9;
        std::fs::write(&path, &raw).unwrap();
        let err = Reader::open(&path).err().unwrap();
        assert!(err.to_string().contains("version 9"), "{err}");
        std::fs::write(&path, b"hello").unwrap();
        assert!(matches!(
            Reader::open(&path),
            Err(RecordingError::NotARecording { .. })
        ));
    }
}
