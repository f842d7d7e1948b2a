//! The text of a record file, decompressed where it is compressed. Hub datasets ship JSONL as
//! `.jsonl.gz` and large corpora as `.jsonl.zst`; users should not have to unpack them first.
//! The compression is told by the file's first bytes, not its name, so a file is read as what it
//! holds; the name before `.gz`/`.zst` still tells JSONL from a JSON array.

use std::path::Path;

use crate::error::{Error, Result};

/// A compression a record file can be in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Compression {
    Gzip,
    Zstd,
}

/// The first bytes of each format (RFC 1952; RFC 8878's frame magic number, little-endian).
const GZIP_MAGIC: &[u8] = &[0x1f, 0x8b];
const ZSTD_MAGIC: &[u8] = &[0x28, 0xb5, 0x2f, 0xfd];
/// A Parquet file starts with this; named otherwise it would read as text that is not UTF-8.
const PARQUET_MAGIC: &[u8] = b"PAR1";

impl Compression {
    /// The compression whose magic number `bytes` start with, if any. No JSON text starts with
    /// either: both begin with a byte that is not valid as the first byte of UTF-8 JSON.
    pub fn sniff(bytes: &[u8]) -> Option<Compression> {
        if bytes.starts_with(GZIP_MAGIC) {
            Some(Compression::Gzip)
        } else if bytes.starts_with(ZSTD_MAGIC) {
            Some(Compression::Zstd)
        } else {
            None
        }
    }

    /// As messages say it.
    pub fn name(self) -> &'static str {
        match self {
            Compression::Gzip => "gzip",
            Compression::Zstd => "zstd",
        }
    }

    /// Whether `path`'s extension names a compressed file (`.gz`, `.zst`, `.zstd`, in any case):
    /// the format is then told by the extension before it.
    pub fn named(path: &Path) -> bool {
        let extension = path.extension().and_then(|e| e.to_str()).map(str::to_ascii_lowercase);
        matches!(extension.as_deref(), Some("gz" | "zst" | "zstd"))
    }
}

/// The text of `path`: decompressed if it is gzip or zstd, decoded as UTF-8, without a leading
/// byte-order mark (Windows editors write one; it is no part of the first record). Text that is
/// not UTF-8 is an error naming the line it stops being so.
pub(crate) fn read_text(path: &Path) -> Result<String> {
    let raw = std::fs::read(path).map_err(|e| Error::io(path, e))?;
    let bytes = match Compression::sniff(&raw) {
        Some(compression) => decompress(path, compression, &raw)?,
        None => raw,
    };
    let mut text = String::from_utf8(bytes).map_err(|e| {
        let bytes = e.as_bytes();
        let valid = e.utf8_error().valid_up_to();
        let line = bytes[..valid].iter().filter(|&&b| b == b'\n').count() + 1;
        let what = if bytes.starts_with(PARQUET_MAGIC) {
            "this is a Parquet file: name it .parquet".to_string()
        } else {
            format!("not UTF-8 text (byte {valid} of the file); records are read as UTF-8 JSON")
        };
        Error::Record { path: path.into(), line, message: what }
    })?;
    if text.starts_with('\u{feff}') {
        text.drain(..'\u{feff}'.len_utf8());
    }
    Ok(text)
}

/// Whole multi-member gzip streams (as `cat a.gz b.gz` or bgzip writes them) and every frame of
/// a zstd file.
#[cfg(not(target_family = "wasm"))]
fn decompress(path: &Path, compression: Compression, raw: &[u8]) -> Result<Vec<u8>> {
    use std::io::Read;
    let mut out = Vec::with_capacity(raw.len() * 4);
    let read = match compression {
        Compression::Gzip => flate2::read::MultiGzDecoder::new(raw).read_to_end(&mut out),
        Compression::Zstd => zstd::stream::read::Decoder::new(raw).and_then(|mut d| d.read_to_end(&mut out)),
    };
    read.map_err(|e| Error::format(path, format!("a {} file that does not decompress: {e}", compression.name())))?;
    Ok(out)
}

// The browser page reads no files; zstd's decoder is C, which does not build for wasm.
#[cfg(target_family = "wasm")]
fn decompress(path: &Path, compression: Compression, _: &[u8]) -> Result<Vec<u8>> {
    Err(Error::format(path, format!("{} files cannot be read by the browser build", compression.name())))
}

#[cfg(test)]
mod tests {
    use std::io::Write;

    use super::*;

    const JSONL: &str = "{\"prompt\":\"p\",\"completion\":\"c\"}\n\n{\"prompt\":\"q\",\"completion\":\"é\"}\n";

    fn write(dir: &Path, name: &str, bytes: &[u8]) -> std::path::PathBuf {
        let path = dir.join(name);
        std::fs::write(&path, bytes).unwrap();
        path
    }

    fn gzip(bytes: &[u8]) -> Vec<u8> {
        let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        encoder.write_all(bytes).unwrap();
        encoder.finish().unwrap()
    }

    #[test]
    fn compressed_files_read_as_their_text() {
        let dir = tempfile::tempdir().unwrap();
        let plain = read_text(&write(dir.path(), "a.jsonl", JSONL.as_bytes())).unwrap();
        assert_eq!(plain, JSONL);
        let gz = write(dir.path(), "a.jsonl.gz", &gzip(JSONL.as_bytes()));
        assert_eq!(read_text(&gz).unwrap(), JSONL);
        // Two gzip members, as concatenated files are: both halves, in order.
        let (head, tail) = JSONL.split_at(20);
        let members = [gzip(head.as_bytes()), gzip(tail.as_bytes())].concat();
        assert_eq!(read_text(&write(dir.path(), "b.jsonl.gz", &members)).unwrap(), JSONL);
        let zst = write(dir.path(), "a.jsonl.zst", &zstd::stream::encode_all(JSONL.as_bytes(), 3).unwrap());
        assert_eq!(read_text(&zst).unwrap(), JSONL);
        // Told by content: a compressed file under a plain name reads the same.
        let renamed = write(dir.path(), "c.jsonl", &gzip(JSONL.as_bytes()));
        assert_eq!(read_text(&renamed).unwrap(), JSONL);
    }

    #[test]
    fn a_byte_order_mark_is_not_part_of_the_first_record() {
        let dir = tempfile::tempdir().unwrap();
        let with_bom = [b"\xef\xbb\xbf".as_slice(), JSONL.as_bytes()].concat();
        assert_eq!(read_text(&write(dir.path(), "a.jsonl", &with_bom)).unwrap(), JSONL);
        assert_eq!(read_text(&write(dir.path(), "a.jsonl.gz", &gzip(&with_bom))).unwrap(), JSONL);
    }

    #[test]
    fn bad_bytes_name_the_file_and_line() {
        let dir = tempfile::tempdir().unwrap();
        let latin1 = write(dir.path(), "latin1.jsonl", b"{\"prompt\":\"a\"}\n{\"prompt\":\"caf\xe9\"}\n");
        let err = read_text(&latin1).unwrap_err().to_string();
        assert!(err.contains("latin1.jsonl:2") && err.contains("not UTF-8") && err.contains("byte 29"), "{err}");
        let truncated = gzip(JSONL.as_bytes());
        let cut = write(dir.path(), "cut.jsonl.gz", &truncated[..truncated.len() - 12]);
        let err = read_text(&cut).unwrap_err().to_string();
        assert!(err.contains("cut.jsonl.gz") && err.contains("a gzip file that does not decompress"), "{err}");
        let parquet = write(dir.path(), "rows.jsonl", b"PAR1\x15\x04\x15\xff\xff");
        let err = read_text(&parquet).unwrap_err().to_string();
        assert!(err.contains("rows.jsonl:1") && err.contains("name it .parquet"), "{err}");
    }
}
