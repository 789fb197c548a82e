//! The pack layer: round trips, dedup, roll-over, nothing readable before commit, forged
//! repository files.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use age::secrecy::ExposeSecret;

use super::*;
use crate::archive::{Identity, Recipients};
use crate::repo::pending::tests::{files_under, holds};
use crate::secret::Secret;

/// Bytes that compress a little (a marker, a counter, noise), different for each `seed`.
fn chunk(seed: u64, len: usize) -> Vec<u8> {
    let mut out = Vec::with_capacity(len);
    let mut state = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    let mut n = 0u64;
    while out.len() < len {
        out.extend_from_slice(format!("MARKER {seed} line {n} ").as_bytes());
        for _ in 0..4 {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            out.extend_from_slice(&state.to_le_bytes());
        }
        n += 1;
    }
    out.truncate(len);
    out
}

fn id_of(data: &[u8]) -> ChunkId {
    *blake3::hash(data).as_bytes()
}

/// Chunks of a few sizes, up to the largest a pack takes.
fn chunks(count: u64) -> Vec<(ChunkId, Vec<u8>)> {
    (0..count)
        .map(|i| {
            let len = match i % 4 {
                0 => MAX_RAW_LENGTH as usize,
                1 => 70_000,
                2 => 1 + i as usize / 4,
                _ => 300_000,
            };
            let data = chunk(i, len);
            (id_of(&data), data)
        })
        .collect()
}

struct Keys {
    recipients: Recipients,
    identity: Identity,
}

fn new_keys() -> Keys {
    let key = age::x25519::Identity::generate();
    let recipients = Recipients::parse(&[key.to_public().to_string()]).unwrap();
    let text = key.to_string().expose_secret().to_string();
    let identity = Identity::parse(&Secret::from(text), "test key").unwrap();
    Keys {
        recipients,
        identity,
    }
}

/// Writes `data` with a writer of `threads` threads and commits it as `index/<name>.json`.
fn write_and_commit(
    root: &Path,
    recipients: Option<&Recipients>,
    threads: u32,
    data: &[(ChunkId, Vec<u8>)],
    name: &str,
) -> (Vec<PackInfo>, WriterStats) {
    let mut writer = PackWriter::new(root, recipients, 3, threads).unwrap();
    for (id, raw) in data {
        writer.add(*id, raw.clone()).unwrap();
    }
    let pending = writer.finish().unwrap();
    let stats = pending.stats();
    (pending.commit(name).unwrap(), stats)
}

/// Reads every chunk of `data` back through a freshly loaded index.
fn read_all_back(root: &Path, identity: Option<&Identity>, data: &[(ChunkId, Vec<u8>)]) {
    let index = ChunkIndex::load(root).unwrap();
    let mut reader = PackReader::new(root, &index, identity);
    // Backwards too: an encrypted pack's reader seeks back.
    for (id, raw) in data.iter().chain(data.iter().rev()) {
        assert!(index.contains(id));
        let back = reader.read_chunk(id).unwrap();
        assert!(back == *raw, "chunk {} differs", hex(id));
    }
}

#[test]
fn plain_chunks_round_trip_through_a_committed_pack_and_index_file() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    let data = chunks(8);
    let (infos, stats) = write_and_commit(root, None, 2, &data, "snap-1");
    assert_eq!(stats.chunks, 8);
    assert_eq!(
        stats.raw_bytes,
        data.iter().map(|(_, d)| d.len() as u64).sum::<u64>()
    );
    assert_eq!(infos.len(), 1, "under 16 MiB: one pack");
    assert_eq!(stats.packs, 1);
    let pack = &infos[0];
    assert!(!pack.encrypted);
    assert_eq!(pack.blobs.len(), 8);
    assert_eq!(stats.stored_bytes, pack.size, "a plain pack is its blobs");
    let bytes = fs::read(pack.path(root)).unwrap();
    assert_eq!(blake3::hash(&bytes).to_hex().as_str(), pack.id);
    assert_eq!(bytes.len() as u64, pack.size);
    assert_eq!(
        files_under(root),
        [
            "index/snap-1.json".to_string(),
            format!("packs/{}/{}", &pack.id[..2], pack.id)
        ]
    );
    for file in [
        "index/snap-1.json".to_string(),
        format!("packs/{}/{}", &pack.id[..2], pack.id),
    ] {
        let mode = fs::metadata(root.join(&file)).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600, "{file}");
    }
    for folder in [
        "packs".to_string(),
        format!("packs/{}", &pack.id[..2]),
        "index".into(),
    ] {
        let mode = fs::metadata(root.join(&folder))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o700, "{folder}");
    }
    // The index file, as format2.md shows it.
    let json: serde_json::Value =
        serde_json::from_slice(&fs::read(root.join("index/snap-1.json")).unwrap()).unwrap();
    assert_eq!(json["format"], 2);
    let listed = &json["packs"][0];
    assert_eq!(listed["id"], pack.id.as_str());
    assert_eq!(listed["size"], pack.size);
    assert_eq!(listed["encrypted"], false);
    let first = &listed["blobs"][0];
    let blob = pack.blobs[0];
    assert_eq!(
        *first,
        serde_json::json!([hex(&blob.id), blob.offset, blob.length, blob.raw_length])
    );
    read_all_back(root, None, &data);
    let index = ChunkIndex::load(root).unwrap();
    assert_eq!(index.index_files(), [root.join("index/snap-1.json")]);
    assert_eq!(index.len(), 8);
    assert_eq!(index.packs().count(), 1);
}

#[test]
fn chunks_compressed_on_the_callers_thread_round_trip_too() {
    let dir = tempfile::tempdir().unwrap();
    let data = chunks(5);
    write_and_commit(dir.path(), None, 0, &data, "inline");
    read_all_back(dir.path(), None, &data);
}

#[test]
fn encrypted_packs_round_trip_and_hold_no_plaintext() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    let keys = new_keys();
    let data = chunks(6);
    let (infos, stats) = write_and_commit(root, Some(&keys.recipients), 2, &data, "enc");
    let pack = &infos[0];
    assert!(pack.encrypted);
    let path = pack.path(root);
    assert!(
        path.to_string_lossy().ends_with(".age"),
        "{}",
        path.display()
    );
    let bytes = fs::read(&path).unwrap();
    assert!(bytes.starts_with(b"age-encryption.org/v1\n"));
    assert!(!holds(&bytes, b"MARKER"), "no plaintext in the pack");
    assert_eq!(
        blake3::hash(&bytes).to_hex().as_str(),
        pack.id,
        "id of the .age bytes"
    );
    assert_eq!(bytes.len() as u64, pack.size);
    assert!(
        pack.size > stats.stored_bytes,
        "the size is the file's, as stored"
    );
    read_all_back(root, Some(&keys.identity), &data);

    // Without an identity: a clear error naming the pack.
    let index = ChunkIndex::load(root).unwrap();
    let mut reader = PackReader::new(root, &index, None);
    let err = reader.read_blob(&data[0].0).unwrap_err();
    assert!(matches!(err, Error::Identity { .. }), "{err}");
    assert!(err.to_string().contains("--identity"), "{err}");
    assert!(err.to_string().contains(&pack.id), "{err}");
    // With another identity: an integrity error.
    let other = new_keys();
    let mut reader = PackReader::new(root, &index, Some(&other.identity));
    let err = reader.read_blob(&data[0].0).unwrap_err();
    assert!(matches!(err, Error::Integrity(_)), "{err}");
}

#[test]
fn a_chunk_added_twice_to_a_writer_is_stored_once() {
    let dir = tempfile::tempdir().unwrap();
    let data = chunks(3);
    let twice: Vec<_> = data.iter().chain(data.iter()).cloned().collect();
    let (infos, stats) = write_and_commit(dir.path(), None, 2, &twice, "dup");
    assert_eq!(stats.chunks, 3);
    assert_eq!(
        stats.raw_bytes,
        data.iter().map(|(_, d)| d.len() as u64).sum::<u64>()
    );
    let blobs: Vec<ChunkId> = infos
        .iter()
        .flat_map(|p| p.blobs.iter().map(|b| b.id))
        .collect();
    assert_eq!(blobs.len(), 3);
    let mut unique = blobs.clone();
    unique.sort();
    unique.dedup();
    assert_eq!(unique.len(), 3);
}

#[test]
fn a_pack_is_closed_once_it_holds_the_target_and_another_opened() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    let target = 200_000;
    let data: Vec<_> = (0..30u64)
        .map(|i| {
            let d = chunk(i, 50_000);
            (id_of(&d), d)
        })
        .collect();
    let mut writer = PackWriter::new(root, None, 3, 2).unwrap();
    writer.target = target;
    for (id, raw) in &data {
        writer.add(*id, raw.clone()).unwrap();
    }
    let pending = writer.finish().unwrap();
    let stats = pending.stats();
    let infos = pending.commit("roll").unwrap();
    assert!(infos.len() > 2, "{} packs", infos.len());
    assert_eq!(stats.packs, infos.len() as u64);
    let (last, full) = infos.split_last().unwrap();
    for pack in full {
        let stored: u64 = pack.blobs.iter().map(|b| u64::from(b.length)).sum();
        let without_last = stored - u64::from(pack.blobs.last().unwrap().length);
        assert!(stored >= target, "closed at the target: {stored}");
        assert!(without_last < target, "not later: {without_last}");
    }
    assert!(last.blobs.iter().map(|b| u64::from(b.length)).sum::<u64>() > 0);
    assert_eq!(
        infos.iter().map(|p| p.blobs.len()).sum::<usize>(),
        data.len()
    );
    assert_eq!(
        files_under(&root.join("packs")).len(),
        infos.len(),
        "one file per pack"
    );
    read_all_back(root, None, &data);
}

/// Writes chunks the `way` asked for and finishes; checks that nothing is readable yet.
fn pending_packs(root: &Path, way: Way) -> PendingPacks {
    let mut writer = PackWriter::new(root, None, 3, 2).unwrap();
    writer.way = way;
    writer.target = 100_000;
    for (id, raw) in chunks(8) {
        writer.add(id, raw).unwrap();
    }
    let pending = writer.finish().unwrap();
    assert!(pending.infos().len() > 1);
    assert!(files_under(&root.join("packs")).is_empty());
    assert!(files_under(&root.join("index")).is_empty());
    for name in files_under(&root.join("tmp")) {
        assert!(name.ends_with(".sealed"), "{name}");
        let on_disk = fs::read(root.join("tmp").join(&name)).unwrap();
        assert!(!holds(&on_disk, b"MARKER"), "no plaintext in {name}");
    }
    pending
}

#[test]
fn nothing_is_under_packs_or_index_before_commit_nor_after_a_drop() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    let pending = pending_packs(root, Way::Unnamed);
    assert!(files_under(&root.join("tmp")).is_empty(), "unnamed files");
    drop(pending);
    assert!(files_under(root).is_empty());
    // A writer dropped before finish leaves nothing either.
    let mut writer = PackWriter::new(root, None, 3, 2).unwrap();
    for (id, raw) in chunks(3) {
        writer.add(id, raw).unwrap();
    }
    drop(writer);
    assert!(files_under(root).is_empty());
}

#[test]
fn sealed_packs_are_unreadable_until_commit_and_removed_when_dropped() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    let pending = pending_packs(root, Way::Sealed);
    assert_eq!(
        files_under(&root.join("tmp")).len(),
        pending.infos().len(),
        "one sealed file per pack"
    );
    drop(pending);
    assert!(files_under(root).is_empty());
    // A writer dropped before finish, its pack still open, leaves nothing either (compressing
    // on the caller's thread, so that the pack is open once `add` returns).
    let mut writer = PackWriter::new(root, None, 3, 0).unwrap();
    writer.way = Way::Sealed;
    for (id, raw) in chunks(3) {
        writer.add(id, raw).unwrap();
    }
    assert!(!files_under(&root.join("tmp")).is_empty());
    drop(writer);
    assert!(files_under(root).is_empty());

    let pending = pending_packs(root, Way::Sealed);
    let infos = pending.commit("sealed").unwrap();
    assert!(files_under(&root.join("tmp")).is_empty());
    for pack in &infos {
        let bytes = fs::read(pack.path(root)).unwrap();
        assert_eq!(blake3::hash(&bytes).to_hex().as_str(), pack.id);
    }
    read_all_back(root, None, &chunks(8));
}

#[test]
fn a_pack_already_in_the_repository_is_kept_and_its_index_file_never_replaced() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    let data = chunks(2);
    // Plain packs of the same chunks, written the same way: the same bytes, the same id.
    let (first, _) = write_and_commit(root, None, 0, &data, "one");
    let (second, _) = write_and_commit(root, None, 0, &data, "two");
    assert_eq!(first, second);
    assert_eq!(files_under(&root.join("packs")).len(), 1);
    let index = ChunkIndex::load(root).unwrap();
    assert_eq!(index.index_files().len(), 2);
    assert_eq!(index.len(), 2);
    assert_eq!(index.packs().count(), 2, "listed twice; any copy serves");

    let before = fs::read(root.join("index/one.json")).unwrap();
    let err = write_index_file(root, "one", &[]).unwrap_err();
    assert!(err.to_string().contains("one.json"), "{err}");
    assert_eq!(fs::read(root.join("index/one.json")).unwrap(), before);
    for bad in ["", "../x", ".hidden", "a/b"] {
        assert!(write_index_file(root, bad, &[]).is_err(), "{bad:?}");
    }
}

/// A well-formed index file listing one pack of `size` with the blob `blob`.
fn index_json(pack_id: &str, size: &str, blob: &str) -> String {
    format!(
        r#"{{"format": 2, "packs": [{{"id": "{pack_id}", "size": {size}, "encrypted": false, "blobs": [{blob}]}}]}}"#
    )
}

#[test]
fn forged_index_files_are_errors_that_name_the_file() {
    let good_id = "ab".repeat(32);
    let blob = |offset: &str, length: &str, raw: &str| {
        format!(r#"["{}", {offset}, {length}, {raw}]"#, "cd".repeat(32))
    };
    let ok = index_json(&good_id, "100", &blob("0", "100", "5"));
    let mut forged = vec![
        ("not json", "garbage".to_string()),
        ("trailing", format!("{ok} x")),
        ("format", ok.replace("\"format\": 2", "\"format\": 3")),
        ("short blob", index_json(&good_id, "100", r#"["cd", 0]"#)),
        (
            "chunk hex",
            index_json(&good_id, "100", r#"["zz", 0, 10, 5]"#),
        ),
    ];
    for (what, id) in [
        ("path in id", "../../../../etc/passwd".to_string()),
        ("upper hex", "AB".repeat(32)),
        ("short id", "abcd".to_string()),
    ] {
        forged.push((what, index_json(&id, "100", &blob("0", "10", "5"))));
    }
    // [what, pack size, offset, length, raw length]
    for [what, size, offset, length, raw] in [
        ["overflow", "100", "18446744073709551615", "10", "5"],
        ["past size", "100", "95", "10", "5"],
        ["zero length", "100", "0", "0", "5"],
        ["huge length", "99999999999", "0", "4194305", "5"],
        ["huge raw", "100", "0", "10", "1048577"],
        ["negative", "100", "-1", "10", "5"],
        ["too big", "100", "0", "10", "99999999999999999999999"],
    ] {
        forged.push((what, index_json(&good_id, size, &blob(offset, length, raw))));
    }
    for (what, text) in forged {
        let dir = tempfile::tempdir().unwrap();
        fs::create_dir(dir.path().join("index")).unwrap();
        fs::write(dir.path().join("index/forged.json"), &text).unwrap();
        let err = ChunkIndex::load(dir.path()).unwrap_err();
        assert!(matches!(err, Error::Integrity(_)), "{what}: {err}");
        assert!(err.to_string().contains("forged.json"), "{what}: {err}");
    }
    // The well-formed one loads (so each refusal above is for its own flaw).
    let dir = tempfile::tempdir().unwrap();
    fs::create_dir(dir.path().join("index")).unwrap();
    fs::write(dir.path().join("index/fine.json"), &ok).unwrap();
    let index = ChunkIndex::load(dir.path()).unwrap();
    assert_eq!(index.len(), 1);
}

#[test]
fn a_missing_or_damaged_pack_is_an_error_naming_it() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    let data = chunks(3);
    let (infos, _) = write_and_commit(root, None, 2, &data, "one");
    let path = infos[0].path(root);
    let index = ChunkIndex::load(root).unwrap();

    // A flipped byte inside a blob: its frame's checksum (or its structure) catches it.
    let pristine = fs::read(&path).unwrap();
    let blob = infos[0].blobs.iter().find(|b| b.id == data[0].0).unwrap();
    let mut flipped = pristine.clone();
    flipped[(blob.offset + u64::from(blob.length) / 2) as usize] ^= 0x55;
    fs::write(&path, &flipped).unwrap();
    let err = PackReader::new(root, &index, None)
        .read_chunk(&data[0].0)
        .unwrap_err();
    assert!(matches!(err, Error::Integrity(_)), "{err}");
    assert!(err.to_string().contains(&infos[0].id), "{err}");

    // Truncated: the size differs from the index's.
    fs::write(&path, &pristine[..pristine.len() - 1]).unwrap();
    let err = PackReader::new(root, &index, None)
        .read_blob(&data[1].0)
        .unwrap_err();
    assert!(
        err.to_string().contains(&path.display().to_string()),
        "{err}"
    );
    assert!(err.to_string().contains("the index says"), "{err}");

    fs::remove_file(&path).unwrap();
    let err = PackReader::new(root, &index, None)
        .read_blob(&data[1].0)
        .unwrap_err();
    assert!(matches!(err, Error::Integrity(_)), "{err}");
    assert!(
        err.to_string().contains(&path.display().to_string()),
        "{err}"
    );
    assert!(err.to_string().contains("missing"), "{err}");

    let unknown = [7u8; 32];
    let err = PackReader::new(root, &index, None)
        .read_blob(&unknown)
        .unwrap_err();
    assert!(err.to_string().contains(&hex(&unknown)), "{err}");
}

#[test]
fn a_blob_past_the_end_of_an_encrypted_pack_is_a_short_read() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    let keys = new_keys();
    let data = chunks(2);
    let (mut infos, _) = write_and_commit(root, Some(&keys.recipients), 0, &data, "one");
    // An index whose blob lies past the plaintext (within the ciphertext's size).
    let pack = &mut infos[0];
    let plain: u64 = pack.blobs.iter().map(|b| u64::from(b.length)).sum();
    pack.blobs[0].offset = plain;
    pack.blobs[0].length = (pack.size - plain) as u32;
    let mut index = ChunkIndex::empty();
    index.insert_pack(pack.clone());
    let err = PackReader::new(root, &index, Some(&keys.identity))
        .read_blob(&pack.blobs[0].id)
        .unwrap_err();
    assert!(err.to_string().contains("short read"), "{err}");
    assert!(err.to_string().contains(&pack.id), "{err}");
}

#[test]
fn stock_zstd_decodes_a_blob_cut_out_of_a_pack() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    let data = chunks(4);
    let (infos, _) = write_and_commit(root, None, 2, &data, "one");
    let pack = fs::read(infos[0].path(root)).unwrap();
    for (id, raw) in &data {
        let blob = infos[0].blobs.iter().find(|b| b.id == *id).unwrap();
        let start = blob.offset as usize;
        let cut = dir.path().join("blob.zst");
        fs::write(&cut, &pack[start..start + blob.length as usize]).unwrap();
        let out = std::process::Command::new("zstd")
            .args(["-d", "-c", "-q"])
            .arg(&cut)
            .output()
            .expect("the zstd binary runs");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(out.stdout == *raw, "chunk {} differs", hex(id));
    }
}

#[test]
fn a_chunk_larger_than_a_pack_takes_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let mut writer = PackWriter::new(dir.path(), None, 3, 1).unwrap();
    let big = vec![0u8; MAX_RAW_LENGTH as usize + 1];
    let err = writer.add(id_of(&big), big).unwrap_err();
    assert!(err.to_string().contains("more than the largest"), "{err}");
    assert_eq!(writer.stats().chunks, 0);
}

#[test]
fn the_configuration_is_made_once_and_a_forged_one_is_an_error_naming_it() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    assert_eq!(RepoConfig::load(root).unwrap(), None);
    let made = RepoConfig::load_or_create(root).unwrap();
    assert_eq!(made.format, 2);
    assert_eq!(made.id.len(), 32);
    assert_eq!(made.chunker, ChunkerParams::default());
    assert_eq!(
        made.chunker,
        ChunkerParams {
            min: 65536,
            avg: 262144,
            max: 1048576
        }
    );
    let path = root.join("config.json");
    assert_eq!(
        fs::metadata(&path).unwrap().permissions().mode() & 0o777,
        0o600
    );
    assert_eq!(RepoConfig::load_or_create(root).unwrap(), made, "kept");
    assert!(files_under(&root.join("tmp")).is_empty());

    let text = fs::read_to_string(&path).unwrap();
    let forged = [
        text.replace("\"format\": 2", "\"format\": 1"),
        text.replace(&made.id, "xyz"),
        text.replace("65536", "0"),
        text.replace("1048576", "4194304"),
        text.replace("262144", "2000000"),
        "{".to_string(),
    ];
    for bad in forged {
        fs::remove_file(&path).unwrap();
        fs::write(&path, &bad).unwrap();
        let err = RepoConfig::load(root).unwrap_err();
        assert!(err.to_string().contains("config.json"), "{bad}: {err}");
        assert!(RepoConfig::load_or_create(root).is_err(), "{bad}");
    }
}

#[test]
fn chunk_ids_are_64_lowercase_hex() {
    let id: ChunkId = std::array::from_fn(|i| i as u8 * 7);
    let text = hex(&id);
    assert_eq!(text.len(), 64);
    assert_eq!(parse_hex(&text), Some(id));
    assert_eq!(parse_hex(&text.to_uppercase()), None);
    assert_eq!(parse_hex(&text[1..]), None);
    assert_eq!(parse_hex(&format!("{}g", &text[1..])), None);
    assert_eq!(parse_hex(""), None);
}

#[test]
fn a_chunk_is_read_from_another_copy_when_the_first_listed_pack_is_gone() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    let data = chunks(4);
    let (first, _) = write_and_commit(root, None, 0, &data, "a");
    // The same chunks and one more: another pack, listed by a later index file.
    let mut more = data.clone();
    let extra = chunk(99, 5000);
    more.push((id_of(&extra), extra));
    let (second, _) = write_and_commit(root, None, 0, &more, "b");
    assert_ne!(first[0].id, second[0].id);
    fs::remove_file(first[0].path(root)).unwrap();
    let index = ChunkIndex::load(root).unwrap();
    assert_eq!(
        index.locate(&data[0].0).unwrap().0.id,
        first[0].id,
        "the first copy listed is the one whose pack is gone"
    );
    let mut reader = PackReader::new(root, &index, None);
    for (id, raw) in &data {
        assert_eq!(&reader.read_chunk(id).unwrap(), raw);
    }
    // With no copy left, the first copy's error is what is said.
    fs::remove_file(second[0].path(root)).unwrap();
    let err = PackReader::new(root, &index, None)
        .read_chunk(&data[0].0)
        .unwrap_err()
        .to_string();
    assert!(err.contains(&first[0].id), "{err}");
}
