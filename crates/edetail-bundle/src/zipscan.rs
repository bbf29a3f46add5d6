//! A minimal, read-only walk of a zip central directory that returns every raw entry name.
//!
//! The zip crate folds entries with equal names into one map slot, so it can say *that* an
//! archive has duplicates but not *which*. Duplicates are a classic smuggling trick (two
//! extractors pick different copies), and an author needs the name, so we list names ourselves.

use std::io::{self, Read, Seek, SeekFrom};

const EOCD_SIG: u32 = 0x0605_4b50;
const ZIP64_LOCATOR_SIG: u32 = 0x0706_4b50;
const ZIP64_EOCD_SIG: u32 = 0x0606_4b50;
const CENTRAL_SIG: u32 = 0x0201_4b50;
/// EOCD record (22) plus the largest comment (65535).
const MAX_EOCD_SEARCH: u64 = 22 + 65_535;

fn le16(b: &[u8], at: usize) -> u16 {
    u16::from_le_bytes([b[at], b[at + 1]])
}
fn le32(b: &[u8], at: usize) -> u32 {
    u32::from_le_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}
fn le64(b: &[u8], at: usize) -> u64 {
    let mut a = [0u8; 8];
    a.copy_from_slice(&b[at..at + 8]);
    u64::from_le_bytes(a)
}

fn bad(msg: &str) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, msg.to_string())
}

/// Raw names of all central-directory entries, in directory order. Stops after `max_entries`
/// names (the caller reports the excess).
pub fn central_directory_names<R: Read + Seek>(r: &mut R, max_entries: usize) -> io::Result<Vec<Vec<u8>>> {
    let len = r.seek(SeekFrom::End(0))?;
    let search = len.min(MAX_EOCD_SEARCH);
    r.seek(SeekFrom::Start(len - search))?;
    let mut tail = vec![0u8; search as usize];
    r.read_exact(&mut tail)?;
    let eocd = (0..tail.len().saturating_sub(21))
        .rev()
        .find(|&i| le32(&tail, i) == EOCD_SIG)
        .ok_or_else(|| bad("no end of central directory record"))?;
    let eocd_pos = len - search + eocd as u64;
    let mut count = u64::from(le16(&tail, eocd + 10));
    let mut cd_size = u64::from(le32(&tail, eocd + 12));
    let mut cd_offset = u64::from(le32(&tail, eocd + 16));
    if (count == 0xffff || cd_offset == 0xffff_ffff || cd_size == 0xffff_ffff) && eocd_pos >= 20 {
        r.seek(SeekFrom::Start(eocd_pos - 20))?;
        let mut loc = [0u8; 20];
        r.read_exact(&mut loc)?;
        if le32(&loc, 0) == ZIP64_LOCATOR_SIG {
            let z64 = le64(&loc, 8);
            r.seek(SeekFrom::Start(z64))?;
            let mut rec = [0u8; 56];
            r.read_exact(&mut rec)?;
            if le32(&rec, 0) != ZIP64_EOCD_SIG {
                return Err(bad("bad zip64 end of central directory"));
            }
            count = le64(&rec, 32);
            cd_size = le64(&rec, 40);
            cd_offset = le64(&rec, 48);
        }
    }
    if cd_offset.checked_add(cd_size).is_none_or(|end| end > len) {
        return Err(bad("central directory lies outside the file"));
    }
    r.seek(SeekFrom::Start(cd_offset))?;
    let mut cd = vec![0u8; cd_size as usize];
    r.read_exact(&mut cd)?;
    let mut names = Vec::new();
    let mut at = 0usize;
    while at + 46 <= cd.len() && (names.len() as u64) < count && names.len() < max_entries {
        if le32(&cd, at) != CENTRAL_SIG {
            return Err(bad("bad central directory entry signature"));
        }
        let name_len = le16(&cd, at + 28) as usize;
        let extra_len = le16(&cd, at + 30) as usize;
        let comment_len = le16(&cd, at + 32) as usize;
        let name_end = at + 46 + name_len;
        if name_end > cd.len() {
            return Err(bad("central directory entry name runs past the directory"));
        }
        names.push(cd[at + 46..name_end].to_vec());
        at = name_end + extra_len + comment_len;
    }
    Ok(names)
}
