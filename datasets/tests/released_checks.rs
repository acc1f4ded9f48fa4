//! Released data that would silently corrupt a benchmark is refused, naming the file (and
//! line): FIFOs and devices in place of data files, cut rows, empty documents, short CIFAR
//! batches, images listed twice. Links to regular files and to whole data folders still work.

#![cfg(unix)]

use std::os::unix::fs::symlink;
use std::path::Path;
use std::time::Duration;

use lra_datasets::pathfinder::{read_release, write_release};
use lra_datasets::{aan, cache, cifar, imdb, listops};

const LISTOPS: &str = "Source\tTarget\n( [MAX 2 9 ] )\t9\n[MIN 3 4 ]\t3\n";
const AAN: &str = "1\ta\tb\tfirst paper\tsecond paper\n0\tc\td\tthird\tfourth\n";

fn mkfifo(path: &Path) {
    let name = std::ffi::CString::new(path.to_str().unwrap()).unwrap();
    // SAFETY: mkfifo with a valid, NUL-terminated path.
    assert_eq!(unsafe { libc::mkfifo(name.as_ptr(), 0o600) }, 0);
}

/// Runs `f` on a thread and fails the test if it has not ended within seconds: a read
/// blocked on a FIFO fails the test instead of hanging it.
fn promptly<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> T {
    let (sender, receiver) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let _ = sender.send(f());
    });
    receiver.recv_timeout(Duration::from_secs(10)).expect("the read blocked for 10 s (a FIFO waited on)")
}

/// A CIFAR record of class `label`, every byte of its image `value`.
fn cifar_record(label: u8, value: u8) -> Vec<u8> {
    let mut record = vec![value; cifar::RECORD_BYTES];
    record[0] = label;
    record
}

#[test]
fn a_fifo_in_place_of_a_tsv_or_metadata_is_refused_without_blocking() {
    let dir = tempfile::tempdir().unwrap();
    let fifo = dir.path().join("basic_train.tsv");
    mkfifo(&fifo);
    let error = promptly({
        let f = fifo.clone();
        move || listops::read_tsv(&f)
    })
    .unwrap_err()
    .to_string();
    assert!(error.contains("basic_train.tsv") && error.contains("FIFO"), "{error}");
    let error = promptly({
        let f = fifo.clone();
        move || aan::read_tsv(&f)
    })
    .unwrap_err()
    .to_string();
    assert!(error.contains("FIFO"), "{error}");
    let error = promptly({
        let f = fifo.clone();
        move || aan::read_examples(&f, 10)
    })
    .unwrap_err()
    .to_string();
    assert!(error.contains("FIFO"), "{error}");
    let error = promptly({
        let f = fifo.clone();
        move || cifar::read_batch(&f)
    })
    .unwrap_err()
    .to_string();
    assert!(error.contains("FIFO"), "{error}");

    let release = dir.path().join("curv_baseline");
    write_release(&release, &[(vec![9u8; 16], 1)], 4, 10).unwrap();
    std::fs::remove_file(release.join("metadata/0.npy")).unwrap();
    mkfifo(&release.join("metadata/0.npy"));
    let error = promptly({
        let r = release.clone();
        move || read_release(&r, 4)
    })
    .unwrap_err()
    .to_string();
    assert!(error.contains("0.npy") && error.contains("FIFO"), "{error}");
}

#[test]
fn links_to_regular_files_and_to_whole_data_folders_are_followed() {
    let dir = tempfile::tempdir().unwrap();
    let real = dir.path().join("real");
    std::fs::create_dir_all(&real).unwrap();
    std::fs::write(real.join("basic_train.tsv"), LISTOPS).unwrap();
    std::fs::write(real.join("pairs.tsv"), AAN).unwrap();
    let batch: Vec<u8> = (0..cifar::RECORDS_PER_BATCH).flat_map(|i| cifar_record((i % 10) as u8, 7)).collect();
    std::fs::write(real.join("test_batch.bin"), batch).unwrap();
    write_release(&real.join("pf"), &[(vec![9u8; 16], 1), (vec![5u8; 16], 0)], 4, 10).unwrap();
    // A linked folder, and links to files inside an ordinary one.
    let linked = dir.path().join("linked");
    symlink(&real, &linked).unwrap();
    let files = dir.path().join("files");
    std::fs::create_dir_all(&files).unwrap();
    symlink(real.join("basic_train.tsv"), files.join("basic_train.tsv")).unwrap();
    for root in [&linked, &files] {
        assert_eq!(listops::read_tsv(&root.join("basic_train.tsv")).unwrap().len(), 2);
    }
    assert_eq!(aan::read_tsv(&linked.join("pairs.tsv")).unwrap().len(), 2);
    assert_eq!(cifar::read_batch(&linked.join("test_batch.bin")).unwrap().len(), cifar::RECORDS_PER_BATCH);
    assert_eq!(read_release(&linked.join("pf"), 4).unwrap().images.len(), 2);

    // An IMDb tree whose reviews are links to regular files.
    let imdb = dir.path().join("aclImdb");
    for folder in ["pos", "neg"] {
        let reviews = dir.path().join(format!("reviews-{folder}"));
        std::fs::create_dir_all(&reviews).unwrap();
        std::fs::write(reviews.join("0_7.txt"), format!("a {folder} review")).unwrap();
        std::fs::create_dir_all(imdb.join("train").join(folder)).unwrap();
        symlink(reviews.join("0_7.txt"), imdb.join("train").join(folder).join("0_7.txt")).unwrap();
    }
    assert_eq!(imdb::read_split(&imdb, "train", 100).unwrap().len(), 2);
}

#[test]
fn a_tsv_cut_inside_its_last_row_is_refused_naming_file_and_line() {
    let dir = tempfile::tempdir().unwrap();
    let listops_path = dir.path().join("basic_val.tsv");
    // Cut inside the last row's source: without the check, `[MIN 3` would fail to parse,
    // but a cut after a whole expression (`[MIN 3 4 ]\t3` minus its newline) would not.
    std::fs::write(&listops_path, LISTOPS.trim_end_matches('\n')).unwrap();
    let error = listops::read_tsv(&listops_path).unwrap_err().to_string();
    assert!(error.contains("basic_val.tsv:3:") && error.contains("no final newline"), "{error}");

    let aan_path = dir.path().join("new_aan_pairs.eval.tsv");
    // Cut inside the second text of the last row: it would be read as the text `fou`.
    std::fs::write(&aan_path, &AAN[..AAN.len() - 4]).unwrap();
    let error = aan::read_tsv(&aan_path).unwrap_err().to_string();
    assert!(error.contains("new_aan_pairs.eval.tsv:2:") && error.contains("no final newline"), "{error}");
    let error = aan::read_examples(&aan_path, 10).unwrap_err().to_string();
    assert!(error.contains(":2:") && error.contains("no final newline"), "{error}");
}

#[test]
fn empty_aan_documents_are_refused_naming_file_line_and_column() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("new_aan_pairs.train.tsv");
    std::fs::write(&path, "1\ta\tb\tfirst\tsecond\n0\tc\td\t \tfourth\n").unwrap();
    let error = aan::read_examples(&path, 10).unwrap_err().to_string();
    assert!(error.contains("new_aan_pairs.train.tsv:2:") && error.contains("text1 (column 4) is empty"), "{error}");
    std::fs::write(&path, "1\ta\tb\tfirst\t\n").unwrap();
    let error = aan::read_tsv(&path).unwrap_err().to_string();
    assert!(error.contains(":1:") && error.contains("text2 (column 5) is empty"), "{error}");
}

#[test]
fn a_cifar_batch_must_hold_exactly_ten_thousand_records() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("data_batch_3.bin");
    std::fs::write(&path, b"").unwrap();
    let error = cifar::read_batch(&path).unwrap_err().to_string();
    assert!(error.contains("data_batch_3.bin") && error.contains("holds 0 records"), "{error}");
    let short: Vec<u8> = (0..9_999).flat_map(|_| cifar_record(1, 2)).collect();
    std::fs::write(&path, short).unwrap();
    let error = cifar::read_batch(&path).unwrap_err().to_string();
    assert!(error.contains("holds 9999 records") && error.contains("exactly 10000"), "{error}");
}

#[test]
fn imdb_reviews_that_are_empty_dangling_or_devices_are_refused_naming_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("aclImdb");
    for folder in ["pos", "neg"] {
        std::fs::create_dir_all(root.join("train").join(folder)).unwrap();
        std::fs::write(root.join("train").join(folder).join("0_7.txt"), "fine").unwrap();
    }
    let neg = root.join("train/neg");
    type Plant<'a> = &'a dyn Fn(&Path);
    let cases: [(&str, Plant); 4] = [
        ("empty review", &|p| std::fs::write(p, " \n").unwrap()),
        ("No such file", &|p| symlink(dir.path().join("nowhere"), p).unwrap()),
        ("character device", &|p| symlink("/dev/zero", p).unwrap()),
        ("folder", &|p| std::fs::create_dir(p).unwrap()),
    ];
    for (expected, plant) in cases {
        let bad = neg.join("1_3.txt");
        plant(&bad);
        let error = imdb::read_split(&root, "train", 100).unwrap_err().to_string();
        assert!(error.contains("train/neg/1_3.txt") && error.contains(expected), "{expected}: {error}");
        if bad.is_dir() && !bad.is_symlink() {
            std::fs::remove_dir(&bad).unwrap();
        } else {
            std::fs::remove_file(&bad).unwrap();
        }
    }
    // Entries not named *.txt are not reviews and are left out, by design.
    std::fs::write(neg.join("notes.md"), "").unwrap();
    assert_eq!(imdb::read_split(&root, "train", 100).unwrap().len(), 2);
}

#[test]
fn pathfinder_metadata_listing_an_image_twice_is_refused_naming_both_lines() {
    let dir = tempfile::tempdir().unwrap();
    let images: Vec<(Vec<u8>, u8)> = (0..4u8).map(|i| (vec![i + 1; 16], i % 2)).collect();
    write_release(dir.path(), &images, 4, 2).unwrap();
    // Batch 1 lists batch 0's first image again, first with its label, then with the other.
    let second = dir.path().join("metadata/1.npy");
    let original = std::fs::read_to_string(&second).unwrap();
    std::fs::write(&second, format!("{original}imgs/0 sample_0.png 0 0\n")).unwrap();
    let error = read_release(dir.path(), 4).unwrap_err().to_string();
    assert!(error.contains("1.npy:3:") && error.contains("imgs/0/sample_0.png") && error.contains("0.npy:1"), "{error}");
    assert!(error.contains("the same image again"), "{error}");
    std::fs::write(&second, format!("{original}imgs/0/ sample_0.png 0 1\n")).unwrap();
    let error = read_release(dir.path(), 4).unwrap_err().to_string();
    assert!(error.contains("1.npy:3:") && error.contains("0.npy:1") && error.contains("with label 1 (label 0 there)"), "{error}");
}

#[test]
fn a_cache_that_is_a_fifo_is_refused_without_blocking_and_a_dangling_one_is_absent() {
    let dir = tempfile::tempdir().unwrap();
    let fifo = dir.path().join("listops.bin");
    mkfifo(&fifo);
    let error = promptly({
        let f = fifo.clone();
        move || cache::load(&f, "p")
    })
    .unwrap_err()
    .to_string();
    assert!(error.contains("listops.bin") && error.contains("FIFO"), "{error}");
    let dangling = dir.path().join("image.bin");
    symlink(dir.path().join("nowhere"), &dangling).unwrap();
    assert!(cache::load(&dangling, "p").unwrap().is_none());
}
