//! Round trips through the frame encoder and decoder, damage, and foreign frames.

use std::io::{self, Read, Write};
use std::sync::mpsc;

use super::decode::{Next, next_frame};
use super::*;

/// Text that compresses and bytes that do not, `len` of them.
fn sample(len: usize) -> Vec<u8> {
    let mut x = 0x9e37_79b9_7f4a_7c15u64;
    let mut data = Vec::with_capacity(len);
    while data.len() < len {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        if (data.len() / 65536) % 2 == 0 {
            data.extend_from_slice(format!("step={} ok\n", x % 100).as_bytes());
        } else {
            data.extend_from_slice(&x.to_le_bytes());
        }
    }
    data.truncate(len);
    data
}

fn encode(data: &[u8], threads: u32, write: usize) -> Vec<u8> {
    let mut encoder = FrameEncoder::new(Vec::new(), 3, threads);
    for chunk in data.chunks(write) {
        encoder.write_all(chunk).unwrap();
    }
    encoder.finish().unwrap()
}

/// Decodes with [`decode`] on `threads` threads, checking checksums.
fn decode_all(stream: &[u8], threads: usize) -> io::Result<Vec<u8>> {
    decode_checked(stream, threads, true)
}

fn decode_checked(stream: &[u8], threads: usize, checksums: bool) -> io::Result<Vec<u8>> {
    let (tx, rx) = mpsc::sync_channel(2);
    let (_spare_tx, spare) = mpsc::sync_channel(1);
    std::thread::scope(|scope| {
        let collect = scope.spawn(move || {
            let mut out = Vec::new();
            for piece in rx {
                let (buf, n): (Vec<u8>, usize) = piece?;
                out.extend_from_slice(&buf[..n]);
            }
            Ok(out)
        });
        let ended = decode(stream, threads, checksums, &tx, &spare);
        drop(tx);
        let out = collect.join().unwrap();
        assert!(ended?, "the collector does not hang up");
        out
    })
}

/// The frames of a stream: (content size, compressed size) each.
fn frames(mut stream: &[u8]) -> Vec<(usize, usize)> {
    let mut found = Vec::new();
    let mut buf = Vec::new();
    while let Next::Frame(size) = next_frame(&mut stream, &mut buf).unwrap() {
        found.push((size, buf.len()));
    }
    assert!(stream.is_empty(), "every frame states its size");
    found
}

#[test]
fn every_length_round_trips_in_frames_of_frame_bytes() {
    for len in [0, 1, FRAME - 1, FRAME, FRAME + 1, 3 * FRAME + 12_345] {
        let data = sample(len);
        for threads in [0, 1, 2] {
            let stream = encode(&data, threads, 100_000);
            let sizes: Vec<usize> = frames(&stream).iter().map(|f| f.0).collect();
            let mut expected: Vec<usize> = data.chunks(FRAME).map(<[u8]>::len).collect();
            if expected.is_empty() {
                expected.push(0); // an empty stream is one empty frame
            }
            assert_eq!(sizes, expected, "{len} bytes on {threads} threads");
            assert!(decode_all(&stream, 2).unwrap() == data, "{len} bytes");
            // Any zstd decoder reads the frames as one stream.
            assert!(
                zstd::decode_all(stream.as_slice()).unwrap() == data,
                "{len} bytes"
            );
        }
    }
}

#[test]
fn the_frames_are_the_same_whatever_the_threads_and_writes() {
    let data = sample(2 * FRAME + 777);
    let one = encode(&data, 0, FRAME);
    assert_eq!(one, encode(&data, 2, 4096));
    assert_eq!(one, encode(&data, 3, 3 * FRAME));
}

#[test]
fn other_frames_go_to_the_streaming_decoder_in_order() {
    let first = sample(FRAME + 10);
    let middle = sample(300_000);
    let last = sample(5000);
    let mut stream = encode(&first, 2, FRAME);
    // A frame without its content size (what a streaming encoder writes)...
    let mut streaming = zstd::stream::write::Encoder::new(Vec::new(), 3).unwrap();
    streaming.write_all(&middle).unwrap();
    let streaming = streaming.finish().unwrap();
    assert_eq!(streaming[4] >> 6, 0, "no content size");
    stream.extend_from_slice(&streaming);
    // ...a skippable frame, and one of ours again.
    stream.extend_from_slice(&[0x5a, 0x2a, 0x4d, 0x18, 3, 0, 0, 0, 1, 2, 3]);
    stream.extend_from_slice(&encode(&last, 0, FRAME));
    let expected = [first, middle, last].concat();
    assert!(decode_all(&stream, 2).unwrap() == expected);
    assert!(zstd::decode_all(stream.as_slice()).unwrap() == expected);
}

#[test]
fn a_skippable_frame_between_frames_is_skipped() {
    let data = sample(FRAME + 3);
    let stream = encode(&data, 2, FRAME);
    let (one, two) = stream.split_at(frames(&stream)[0].1);
    let skipped = [&[0x50, 0x2a, 0x4d, 0x18, 2, 0, 0, 0, 9, 9][..]].concat();
    let joined = [one, &skipped, two].concat();
    assert!(decode_all(&joined, 2).unwrap() == data);
}

#[test]
fn damage_is_an_error_not_short_output() {
    let data = sample(2 * FRAME + 100);
    let stream = encode(&data, 2, FRAME);
    let first = frames(&stream)[0].1;
    // Cut inside the first frame, inside the second, and inside a frame header.
    for cut in [first / 2, first + 100, first + 2, stream.len() - 1] {
        let err = decode_all(&stream[..cut], 2).unwrap_err();
        assert_eq!(
            err.kind(),
            io::ErrorKind::UnexpectedEof,
            "cut at {cut}: {err}"
        );
    }
    // A flipped byte in a block (the checksum or the decoder catches it), in the content
    // size, and bytes that are not a frame after the last one.
    let mut flipped = stream.clone();
    flipped[first / 2] ^= 0x40;
    assert!(decode_all(&flipped, 2).is_err());
    let mut size = stream.clone();
    size[6] ^= 0x01; // the content size follows the magic, descriptor and window bytes
    assert!(decode_all(&size, 2).is_err());
    let mut trailing = stream.clone();
    trailing.extend_from_slice(b"not a frame");
    assert!(decode_all(&trailing, 2).is_err());
}

#[test]
fn a_frame_that_states_a_huge_size_is_not_buffered() {
    // A header that claims 1 TiB: the frame goes to the streaming decoder, which fails
    // on the missing blocks without allocating for the claim.
    let mut stream = vec![0x28, 0xb5, 0x2f, 0xfd, 0xc0, 0x50];
    stream.extend_from_slice(&(1u64 << 40).to_le_bytes());
    let mut buf = Vec::new();
    assert_eq!(
        next_frame(&mut stream.as_slice(), &mut buf).unwrap(),
        Next::Other
    );
    assert!(decode_all(&stream, 2).is_err());
}

#[test]
fn checksums_are_checked_unless_the_caller_checks_the_whole_stream() {
    let data = sample(FRAME + 1000);
    let stream = encode(&data, 2, FRAME);
    let first = frames(&stream)[0].1;
    // The first frame's checksum is its last 4 bytes.
    let mut bad = stream.clone();
    bad[first - 2] ^= 0x10;
    let err = decode_checked(&bad, 2, true).unwrap_err();
    assert!(err.to_string().contains("checksum"), "{err}");
    assert!(decode_checked(&bad, 2, false).unwrap() == data);
    assert!(decode_checked(&stream, 2, false).unwrap() == data);
}

#[test]
fn reading_into_the_frame_makes_the_same_frames_and_shows_every_byte_once() {
    let data = sample(2 * FRAME + 4321);
    let mut encoder = FrameEncoder::new(Vec::new(), 3, 2);
    let mut seen = Vec::new();
    // As the archive writer does: headers written, contents read into the frame.
    let mut source = &data[..];
    for k in 0.. {
        if source.is_empty() {
            break;
        }
        if k % 2 == 0 {
            let n = 1000.min(source.len());
            encoder.write_all(&source[..n]).unwrap();
            seen.extend_from_slice(&source[..n]);
            source = &source[n..];
        } else {
            let mut content = (&mut source).take(700_000);
            let mut observe = |piece: &[u8]| {
                seen.extend_from_slice(piece);
                Ok(())
            };
            while encoder.write_from(&mut content, &mut observe).unwrap() > 0 {}
        }
    }
    assert!(seen == data);
    assert_eq!(encoder.finish().unwrap(), encode(&data, 0, FRAME));
}
