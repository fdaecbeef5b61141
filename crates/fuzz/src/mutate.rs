//! The mutator: byte-level changes (truncation, bit flips, random bytes, interesting integers,
//! chunk duplication and removal, splicing two inputs) and format-aware header changes for every
//! image format colorize decodes (PNG IHDR and chunk fields with the CRC fixed up, JPEG SOF
//! dimensions and segment lengths, GIF screen and frame sizes, BMP header fields, TIFF IFD
//! entries, WebP VP8X canvas and VP8L sizes, EXIF orientation).
//!
//! Everything is driven by a [`Rng`], so a mutation is a pure function of its seed.

use crate::rng::Rng;

/// Integers that tend to break size arithmetic.
const INTERESTING_32: [u32; 16] = [
    0,
    1,
    2,
    0x7f,
    0x80,
    0xff,
    0x100,
    0x7fff,
    0x8000,
    0xffff,
    0x1_0000,
    2000,
    4096,
    0x7fff_ffff,
    0x8000_0000,
    0xffff_ffff,
];

/// An interesting value for a field of `bits` bits that currently holds `current`.
pub fn interesting(rng: &mut Rng, current: u64, bits: u32) -> u64 {
    let mask = if bits >= 64 {
        u64::MAX
    } else {
        (1u64 << bits) - 1
    };
    let v = match rng.below(8) {
        0 => 0,
        1 => 1,
        2 => mask,
        3 => mask >> 1,
        4 => (mask >> 1) + 1,
        5 => current.wrapping_add(1),
        6 => current.wrapping_sub(1),
        _ => match rng.below(4) {
            0 => current.wrapping_mul(2),
            1 => current / 2,
            2 => u64::from(*rng.pick(&INTERESTING_32)),
            _ => rng.next_u64(),
        },
    };
    v & mask
}

fn get_be(data: &[u8], at: usize, n: usize) -> Option<u64> {
    let b = data.get(at..at.checked_add(n)?)?;
    Some(b.iter().fold(0u64, |acc, &x| (acc << 8) | u64::from(x)))
}

fn get_le(data: &[u8], at: usize, n: usize) -> Option<u64> {
    let b = data.get(at..at.checked_add(n)?)?;
    Some(
        b.iter()
            .rev()
            .fold(0u64, |acc, &x| (acc << 8) | u64::from(x)),
    )
}

fn put_be(data: &mut [u8], at: usize, n: usize, v: u64) {
    if let Some(b) = at.checked_add(n).and_then(|end| data.get_mut(at..end)) {
        for (i, x) in b.iter_mut().enumerate() {
            *x = (v >> (8 * (n - 1 - i))) as u8;
        }
    }
}

fn put_le(data: &mut [u8], at: usize, n: usize, v: u64) {
    if let Some(b) = at.checked_add(n).and_then(|end| data.get_mut(at..end)) {
        for (i, x) in b.iter_mut().enumerate() {
            *x = (v >> (8 * i)) as u8;
        }
    }
}

/// Replaces the `n`-byte field at `at` (big- or little-endian) by an interesting value.
fn tweak_field(rng: &mut Rng, data: &mut [u8], at: usize, n: usize, big_endian: bool) {
    let get = if big_endian { get_be } else { get_le };
    let Some(cur) = get(data, at, n) else { return };
    let v = interesting(rng, cur, 8 * n as u32);
    if big_endian {
        put_be(data, at, n, v);
    } else {
        put_le(data, at, n, v);
    }
}

/// CRC-32 (ISO-HDLC, as PNG uses), bitwise: inputs are small.
pub fn crc32(bytes: &[u8]) -> u32 {
    let mut crc = 0xffff_ffffu32;
    for &b in bytes {
        crc ^= u32::from(b);
        for _ in 0..8 {
            crc = if crc & 1 != 0 {
                (crc >> 1) ^ 0xedb8_8320
            } else {
                crc >> 1
            };
        }
    }
    !crc
}

/// One byte-level mutation of `data`; `other` is a second input for splicing.
pub fn mutate_bytes(rng: &mut Rng, data: &mut Vec<u8>, other: &[u8]) {
    let len = data.len();
    match rng.below(11) {
        // Truncation, anywhere (often just the last few bytes).
        0 => {
            let keep = if rng.one_in(2) {
                len.saturating_sub(rng.small_len(64))
            } else {
                rng.below(len + 1)
            };
            data.truncate(keep);
        }
        // Bit flips.
        1 => {
            for _ in 0..rng.small_len(8) {
                if !data.is_empty() {
                    let i = rng.below(data.len());
                    data[i] ^= 1 << rng.below(8);
                }
            }
        }
        // Random bytes set.
        2 => {
            for _ in 0..rng.small_len(16) {
                if !data.is_empty() {
                    let i = rng.below(data.len());
                    data[i] = match rng.below(4) {
                        0 => 0,
                        1 => 0xff,
                        2 => *rng.pick(&[0x7f, 0x80, 0x01, 0xfe]),
                        _ => rng.byte(),
                    };
                }
            }
        }
        // An interesting integer somewhere.
        3 => {
            if !data.is_empty() {
                let n = *rng.pick(&[1usize, 2, 4, 8]);
                let at = rng.below(data.len());
                let big = rng.one_in(2);
                tweak_field(rng, data, at, n, big);
            }
        }
        // Chunk duplication.
        4 => {
            if !data.is_empty() {
                let at = rng.below(len);
                let n = rng.small_len(len - at);
                let chunk = data[at..at + n].to_vec();
                let to = rng.below(data.len() + 1);
                let times = if rng.one_in(8) { rng.range(2, 64) } else { 1 };
                for _ in 0..times {
                    data.splice(to..to, chunk.iter().copied());
                }
            }
        }
        // Chunk removal.
        5 => {
            if !data.is_empty() {
                let at = rng.below(len);
                let n = rng.small_len(len - at);
                data.drain(at..at + n);
            }
        }
        // Random bytes inserted.
        6 => {
            let at = rng.below(len + 1);
            let n = rng.small_len(64);
            let bytes: Vec<u8> = (0..n).map(|_| rng.byte()).collect();
            data.splice(at..at, bytes);
        }
        // Splice: a prefix of this input, a suffix of the other.
        7 => {
            if !other.is_empty() {
                let cut = rng.below(len + 1);
                let from = rng.below(other.len());
                data.truncate(cut);
                data.extend_from_slice(&other[from..]);
            }
        }
        // Splice: the other's prefix over this one.
        8 => {
            if !other.is_empty() {
                let n = rng.below(other.len().min(len) + 1);
                data[..n].copy_from_slice(&other[..n]);
            }
        }
        // Overwrite a run with a repeated byte.
        9 => {
            if !data.is_empty() {
                let at = rng.below(len);
                let n = rng.small_len(len - at);
                let b = if rng.one_in(2) { 0 } else { rng.byte() };
                data[at..at + n].fill(b);
            }
        }
        // Copy a chunk over another place (no length change).
        _ => {
            if len > 1 {
                let from = rng.below(len);
                let n = rng.small_len(len - from);
                let to = rng.below(len - n + 1);
                let chunk = data[from..from + n].to_vec();
                data[to..to + n].copy_from_slice(&chunk);
            }
        }
    }
}

/// The image formats the format-aware mutations know.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// PNG.
    Png,
    /// JPEG.
    Jpeg,
    /// GIF.
    Gif,
    /// BMP.
    Bmp,
    /// TIFF (either byte order).
    Tiff,
    /// WebP (RIFF).
    WebP,
}

/// The format of `data` by its magic bytes.
pub fn sniff(data: &[u8]) -> Option<Format> {
    if data.starts_with(b"\x89PNG\r\n\x1a\n") {
        Some(Format::Png)
    } else if data.starts_with(&[0xff, 0xd8]) {
        Some(Format::Jpeg)
    } else if data.starts_with(b"GIF8") {
        Some(Format::Gif)
    } else if data.starts_with(b"BM") {
        Some(Format::Bmp)
    } else if data.starts_with(b"II*\0") || data.starts_with(b"MM\0*") {
        Some(Format::Tiff)
    } else if data.starts_with(b"RIFF") && data.get(8..12) == Some(b"WEBP") {
        Some(Format::WebP)
    } else {
        None
    }
}

/// One format-aware mutation of `data` (falls back to a byte-level one for unknown content).
pub fn mutate_header(rng: &mut Rng, data: &mut Vec<u8>, other: &[u8]) {
    match sniff(data) {
        Some(Format::Png) => png(rng, data),
        Some(Format::Jpeg) => jpeg(rng, data),
        Some(Format::Gif) => gif(rng, data),
        Some(Format::Bmp) => bmp(rng, data),
        Some(Format::Tiff) => {
            let base = 0;
            tiff(rng, data, base)
        }
        Some(Format::WebP) => webp(rng, data),
        None => mutate_bytes(rng, data, other),
    }
}

/// A full mutation: one to several steps, format-aware ones weighted in while the header is
/// recognisable.
pub fn mutate(rng: &mut Rng, data: &mut Vec<u8>, other: &[u8]) {
    let steps = match rng.below(8) {
        0..=3 => 1,
        4..=5 => 2,
        6 => 3,
        _ => rng.range(4, 12),
    };
    for _ in 0..steps {
        if rng.one_in(2) {
            mutate_header(rng, data, other);
        } else {
            mutate_bytes(rng, data, other);
        }
    }
}

/// PNG chunks: `(offset of the length field, data length, chunk type)`.
fn png_chunks(data: &[u8]) -> Vec<(usize, usize, [u8; 4])> {
    let mut out = Vec::new();
    let mut at = 8;
    while let (Some(n), Some(ty)) = (get_be(data, at, 4), data.get(at + 4..at + 8)) {
        let n = n as usize;
        out.push((at, n, [ty[0], ty[1], ty[2], ty[3]]));
        match at.checked_add(12).and_then(|x| x.checked_add(n)) {
            Some(next) if next <= data.len() => at = next,
            _ => break,
        }
    }
    out
}

fn png_fix_crc(data: &mut [u8], at: usize, n: usize) {
    if let Some(body) = data.get(at + 4..at + 8 + n) {
        let crc = crc32(body);
        put_be(data, at + 8 + n, 4, u64::from(crc));
    }
}

fn png(rng: &mut Rng, data: &mut Vec<u8>) {
    let chunks = png_chunks(data);
    let ihdr = chunks.iter().find(|c| &c.2 == b"IHDR").copied();
    match (rng.below(6), ihdr) {
        // IHDR: width, height, bit depth, colour type, compression, filter, interlace.
        (0..=2, Some((at, n, _))) => {
            let d = at + 8;
            match rng.below(7) {
                0 => tweak_field(rng, data, d, 4, true),
                1 => tweak_field(rng, data, d + 4, 4, true),
                2 => {
                    // Width and height together, near the pixel limit or each other's.
                    let w = *rng.pick(&[1u64, 2, 7, 2000, 2001, 4096, 65535, 1 << 20, 0x7fff_ffff]);
                    let h = *rng.pick(&[1u64, 2, 7, 2000, 1999, 4096, 65535, 1 << 20, 0x7fff_ffff]);
                    put_be(data, d, 4, w);
                    put_be(data, d + 4, 4, h);
                }
                3 => put_be(data, d + 8, 1, *rng.pick(&[0u64, 1, 2, 4, 8, 16, 3, 32])),
                4 => put_be(data, d + 9, 1, *rng.pick(&[0u64, 2, 3, 4, 6, 1, 5, 7])),
                5 => {
                    let f = d + 10 + rng.below(3);
                    put_be(data, f, 1, rng.below(3) as u64);
                }
                _ => {
                    let at = d + rng.below(13);
                    tweak_field(rng, data, at, 1, true)
                }
            }
            if !rng.one_in(8) {
                png_fix_crc(data, at, n);
            }
        }
        // Any chunk's length field.
        (3, _) if !chunks.is_empty() => {
            let (at, _, _) = *rng.pick(&chunks);
            tweak_field(rng, data, at, 4, true);
        }
        // Any chunk's data, CRC fixed (so the decoder looks inside).
        (4, _) if !chunks.is_empty() => {
            let (at, n, _) = *rng.pick(&chunks);
            if n > 0 && at + 8 + n <= data.len() {
                for _ in 0..rng.small_len(4) {
                    let i = at + 8 + rng.below(n);
                    data[i] = if rng.one_in(2) {
                        rng.byte()
                    } else {
                        data[i] ^ 0xff
                    };
                }
                png_fix_crc(data, at, n);
            }
        }
        // Drop, duplicate or reorder a whole chunk.
        (_, _) if chunks.len() > 1 => {
            let i = rng.range(1, chunks.len() - 1);
            let (at, n, _) = chunks[i];
            let end = (at + 12 + n).min(data.len());
            let chunk = data[at..end].to_vec();
            match rng.below(3) {
                0 => {
                    data.drain(at..end);
                }
                1 => {
                    data.splice(at..at, chunk);
                }
                _ => {
                    data.drain(at..end);
                    let (to, _, _) = chunks[rng.below(i)];
                    let to = to.max(8).min(data.len());
                    data.splice(to..to, chunk);
                }
            }
        }
        _ => {
            let at = 16 + rng.below(13);
            tweak_field(rng, data, at, 1, true)
        }
    }
}

/// JPEG marker segments: `(offset of the marker, marker byte, segment length)`.
fn jpeg_segments(data: &[u8]) -> Vec<(usize, u8, usize)> {
    let mut out = Vec::new();
    let mut at = 2;
    while at + 4 <= data.len() && data[at] == 0xff {
        let marker = data[at + 1];
        let n = get_be(data, at + 2, 2).unwrap_or(0) as usize;
        out.push((at, marker, n));
        if marker == 0xda {
            break; // entropy-coded data follows
        }
        at += 2 + n;
    }
    out
}

fn jpeg(rng: &mut Rng, data: &mut [u8]) {
    let segs = jpeg_segments(data);
    let sof = segs
        .iter()
        .find(|s| matches!(s.1, 0xc0..=0xcf) && !matches!(s.1, 0xc4 | 0xc8 | 0xcc))
        .copied();
    match (rng.below(6), sof) {
        // SOF: precision, height, width, component count, per-component sampling and tables.
        (0..=2, Some((at, _, n))) => match rng.below(6) {
            0 => tweak_field(rng, data, at + 5, 2, true),
            1 => tweak_field(rng, data, at + 7, 2, true),
            2 => {
                put_be(data, at + 5, 2, *rng.pick(&[0u64, 1, 2000, 4096, 65535]));
                put_be(data, at + 7, 2, *rng.pick(&[0u64, 1, 2000, 4096, 65535]));
            }
            3 => put_be(data, at + 4, 1, *rng.pick(&[8u64, 12, 16, 0, 255])),
            4 => put_be(data, at + 9, 1, *rng.pick(&[0u64, 1, 2, 3, 4, 255])),
            _ => {
                if n > 8 {
                    let i = at + 10 + rng.below(n - 8);
                    tweak_field(rng, data, i, 1, true);
                }
            }
        },
        // The marker of a segment (SOF0 -> progressive, DHT -> DQT, ...).
        (3, _) if !segs.is_empty() => {
            let (at, _, _) = *rng.pick(&segs);
            data[at + 1] = *rng.pick(&[
                0xc0, 0xc1, 0xc2, 0xc3, 0xc4, 0xdb, 0xdd, 0xda, 0xe1, 0xfe, 0xd9,
            ]);
        }
        // A segment's length field.
        (4, _) if !segs.is_empty() => {
            let (at, _, _) = *rng.pick(&segs);
            tweak_field(rng, data, at + 2, 2, true);
        }
        // A byte inside a segment (tables, EXIF, the scan header).
        (_, _) if !segs.is_empty() => {
            let (at, marker, n) = *rng.pick(&segs);
            if marker == 0xe1
                && rng.one_in(2)
                && let Some(tiff_at) = find(data, b"Exif\0\0").map(|p| p + 6)
            {
                tiff(rng, data, tiff_at);
                return;
            }
            if n > 2 {
                let i = at + 4 + rng.below(n - 2);
                tweak_field(rng, data, i, 1, true);
            }
        }
        _ => {
            let at = rng.below(data.len().min(32));
            tweak_field(rng, data, at, 1, true)
        }
    }
}

fn find(data: &[u8], needle: &[u8]) -> Option<usize> {
    data.windows(needle.len()).position(|w| w == needle)
}

fn gif(rng: &mut Rng, data: &mut [u8]) {
    // Image descriptors: 0x2c followed by left, top, width, height (u16 LE) and a packed byte.
    // Found by scanning, which also hits 0x2c inside data: harmless.
    let descriptors: Vec<usize> = (13..data.len().saturating_sub(10))
        .filter(|&i| data[i] == 0x2c)
        .take(8)
        .collect();
    match rng.below(6) {
        0 => tweak_field(rng, data, 6, 2, false),
        1 => tweak_field(rng, data, 8, 2, false),
        // The global colour table flag and size.
        2 => tweak_field(rng, data, 10, 1, false),
        _ if !descriptors.is_empty() => {
            let at = *rng.pick(&descriptors);
            let field = *rng.pick(&[1usize, 3, 5, 7, 9, 10]);
            let n = if field >= 9 { 1 } else { 2 };
            tweak_field(rng, data, at + field, n, false);
        }
        _ => {
            put_le(data, 6, 2, *rng.pick(&[0u64, 1, 2000, 65535]));
            put_le(data, 8, 2, *rng.pick(&[0u64, 1, 2000, 65535]));
        }
    }
}

fn bmp(rng: &mut Rng, data: &mut [u8]) {
    // File header: size (2), pixel data offset (10). DIB header: size (14), width (18, i32),
    // height (22, i32, negative = top-down), planes (26), bits per pixel (28), compression (30),
    // image size (34), colours used (46), bit masks (54...).
    let fields: [(usize, usize); 10] = [
        (2, 4),
        (10, 4),
        (14, 4),
        (18, 4),
        (22, 4),
        (26, 2),
        (28, 2),
        (30, 4),
        (34, 4),
        (46, 4),
    ];
    match rng.below(5) {
        0 => {
            // Width and height together, signs included.
            let pick = |rng: &mut Rng| {
                *rng.pick(&[
                    1i64,
                    2,
                    -1,
                    -2000,
                    2000,
                    2001,
                    65536,
                    -65536,
                    i32::MAX as i64,
                    i32::MIN as i64,
                ])
            };
            let (w, h) = (pick(rng), pick(rng));
            put_le(data, 18, 4, w as u64);
            put_le(data, 22, 4, h as u64);
        }
        1 => put_le(
            data,
            28,
            2,
            *rng.pick(&[0u64, 1, 2, 4, 8, 16, 24, 32, 64, 3]),
        ),
        2 => put_le(data, 30, 4, *rng.pick(&[0u64, 1, 2, 3, 4, 5, 6, 11])),
        _ => {
            let (at, n) = *rng.pick(&fields);
            tweak_field(rng, data, at, n, false);
        }
    }
}

/// A mutation of a TIFF structure starting at `base` (a TIFF file, or EXIF inside a JPEG).
fn tiff(rng: &mut Rng, data: &mut [u8], base: usize) {
    let big = data.get(base..base + 2) == Some(b"MM");
    let get = |d: &[u8], at: usize, n: usize| {
        if big {
            get_be(d, at, n)
        } else {
            get_le(d, at, n)
        }
    };
    let Some(ifd) = get(data, base + 4, 4) else {
        return;
    };
    let ifd = base.saturating_add(ifd as usize);
    let count = get(data, ifd, 2).unwrap_or(0) as usize;
    if count == 0 || rng.one_in(8) {
        // The IFD offset itself, or the entry count.
        if rng.one_in(2) {
            tweak_field(rng, data, base + 4, 4, big);
        } else {
            tweak_field(rng, data, ifd, 2, big);
        }
        return;
    }
    let entry = ifd + 2 + 12 * rng.below(count.min(64));
    // Prefer the entries that size things: width, length, bits, compression, photometric,
    // strip offsets, samples, rows per strip, strip byte counts, orientation.
    let wanted = [
        256u64, 257, 258, 259, 262, 273, 274, 277, 278, 279, 284, 317, 339,
    ];
    let entry = if rng.one_in(2) {
        (0..count.min(64))
            .map(|i| ifd + 2 + 12 * i)
            .filter(|&e| get(data, e, 2).is_some_and(|t| wanted.contains(&t)))
            .nth(rng.below(4))
            .unwrap_or(entry)
    } else {
        entry
    };
    match rng.below(6) {
        // Type (SHORT, LONG, RATIONAL, ... and invalid ones).
        0 => {
            let v = *rng.pick(&[0u64, 1, 2, 3, 4, 5, 7, 12, 13, 16, 17, 255]);
            if big {
                put_be(data, entry + 2, 2, v)
            } else {
                put_le(data, entry + 2, 2, v)
            }
        }
        // Count.
        1 => tweak_field(rng, data, entry + 4, 4, big),
        // The tag.
        2 => tweak_field(rng, data, entry, 2, big),
        // The value (or offset), as a SHORT or a LONG.
        3 => tweak_field(rng, data, entry + 8, 2, big),
        _ => tweak_field(rng, data, entry + 8, 4, big),
    }
}

fn webp(rng: &mut Rng, data: &mut [u8]) {
    // RIFF size at 4; chunks from 12: fourcc, u32 LE size, data (padded to even).
    let mut chunks = Vec::new();
    let mut at = 12;
    while let (Some(cc), Some(n)) = (data.get(at..at + 4), get_le(data, at + 4, 4)) {
        chunks.push((at, [cc[0], cc[1], cc[2], cc[3]], n as usize));
        match at.checked_add(8 + n as usize + (n as usize & 1)) {
            Some(next) if next < data.len() => at = next,
            _ => break,
        }
    }
    let vp8x = chunks.iter().find(|c| &c.1 == b"VP8X").copied();
    let vp8l = chunks.iter().find(|c| &c.1 == b"VP8L").copied();
    match rng.below(6) {
        0 => tweak_field(rng, data, 4, 4, false),
        // VP8X: flags, canvas width - 1 and height - 1 (24 bits each).
        1 | 2 if vp8x.is_some() => {
            let d = vp8x.map_or(0, |c| c.0 + 8);
            match rng.below(3) {
                0 => tweak_field(rng, data, d, 1, false),
                1 => tweak_field(rng, data, d + 4, 3, false),
                _ => tweak_field(rng, data, d + 7, 3, false),
            }
        }
        // VP8L: signature byte, then 14-bit width - 1, 14-bit height - 1, alpha, version.
        3 if vp8l.is_some() => {
            let d = vp8l.map_or(0, |c| c.0 + 8);
            if let Some(bits) = get_le(data, d + 1, 4) {
                let field = rng.below(3);
                let (shift, width) = [(0, 14), (14, 14), (29, 3)][field];
                let mask = ((1u64 << width) - 1) << shift;
                let cur = (bits & mask) >> shift;
                let v = interesting(rng, cur, width) << shift;
                put_le(data, d + 1, 4, (bits & !mask) | v);
            }
        }
        // Any chunk's size field or fourcc.
        _ if !chunks.is_empty() => {
            let (at, _, _) = *rng.pick(&chunks);
            if rng.one_in(3) {
                let cc = *rng.pick(&[
                    b"VP8 ", b"VP8L", b"VP8X", b"ALPH", b"ANIM", b"ANMF", b"EXIF", b"ICCP",
                ]);
                data[at..at + 4].copy_from_slice(cc);
            } else {
                tweak_field(rng, data, at + 4, 4, false);
            }
        }
        _ => {
            let at = rng.below(data.len().min(40));
            tweak_field(rng, data, at, 1, false)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn crc_matches_the_png_reference() {
        // The CRC of "IEND" with no data, as in every PNG file.
        assert_eq!(crc32(b"IEND"), 0xae42_6082);
    }

    #[test]
    fn mutations_are_deterministic_and_never_panic() {
        let seeds: [&[u8]; 7] = [
            b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR\0\0\0\x10\0\0\0\x10\x08\x00\0\0\0",
            b"\xff\xd8\xff\xc0\0\x11\x08\0\x10\0\x10\x03\x01\x22\0\x02\x11\x01\x03\x11\x01\xff\xda",
            b"GIF89a\x10\0\x10\0\0\0\0\x2c\0\0\0\0\x10\0\x10\0\0",
            b"BM\0\0\0\0\0\0\0\0\x36\0\0\0\x28\0\0\0\x10\0\0\0\x10\0\0\0\x01\0\x18\0",
            b"II*\0\x08\0\0\0\x01\0\x00\x01\x03\0\x01\0\0\0\x10\0\0\0",
            b"RIFF\0\0\0\0WEBPVP8X\x0a\0\0\0\0\0\0\0\x0f\0\0\x0f\0\0",
            b"",
        ];
        for seed in seeds {
            for i in 0..2000 {
                let mut a = seed.to_vec();
                let mut b = seed.to_vec();
                mutate(&mut Rng::for_exec(1, i), &mut a, seeds[1]);
                mutate(&mut Rng::for_exec(1, i), &mut b, seeds[1]);
                assert_eq!(a, b);
            }
        }
    }
}
