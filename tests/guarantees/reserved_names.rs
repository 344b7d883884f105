//! Names of the tool's own files are not run names (issue 25, item 8), and a folder of the
//! user's that bears one is never moved by a run (item 11: `.U.swap`).

use crate::capped::{ok, refused, run, snapshot, tiny, tiny_data, tiny_train, trained, with};

// `--out .V.new-run` (then `--out V` would clear it as a leftover), and the other reserved
// forms, for train, a resume, compare and plot: refused in one line, nothing written.
#[test]
fn reserved_names_are_refused_as_run_folders() {
    let d = tempfile::tempdir().unwrap();
    let data = tiny_data(d.path());
    let before = snapshot(d.path());
    for name in [
        ".V.new-run",
        ".V.lock",
        ".V.swap",
        ".V.swapping",
        ".rl-tmp-1-0",
    ] {
        let args = tiny_train("rprop-plus", &data, 2, &["--out", name]);
        refused(&run(d.path(), &args), "this tool's own files");
        let nested = format!("sub/{name}");
        let args = tiny_train("rprop-plus", &data, 2, &["--out", &nested]);
        refused(&run(d.path(), &args), "this tool's own files");
    }
    let cmp = with(&["compare", "--out", ".C.new-run"], &tiny(&data, 2));
    refused(&run(d.path(), &cmp), "this tool's own files");
    assert!(
        snapshot(d.path()) == before,
        "a refused run wrote something"
    );
    let names: Vec<String> = std::fs::read_dir(d.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(names, ["data"], "a refused run created a folder");
    // A folder so named by hand (an older version allowed it) is not resumed either.
    trained(d.path(), &data, "V");
    std::fs::rename(d.path().join("V"), d.path().join(".W.new-run")).unwrap();
    let resume = ["train", "--resume", ".W.new-run", "--epochs", "3", "-q"];
    refused(&run(d.path(), &resume), "this tool's own files");
    // A chart named like a temp file, which a run's clean-up would take for one.
    let plot = [
        "plot",
        ".W.new-run/metrics.json",
        "--out",
        ".rl-tmp-7-0.png",
    ];
    refused(&run(d.path(), &plot), "this tool's own files");
}

// A user's folder `.U.swap` (the name of the fallback swap's aside folder) is left alone by
// runs of U, whether U exists or not; only a folder the marker names is put back.
#[test]
fn a_users_swap_named_folder_is_never_moved() {
    let d = tempfile::tempdir().unwrap();
    let data = tiny_data(d.path());
    let mine = d.path().join(".U.swap");
    std::fs::create_dir(&mine).unwrap();
    std::fs::write(mine.join("notes.txt"), "mine").unwrap();
    let before = snapshot(&mine);
    trained(d.path(), &data, "U");
    let args = tiny_train("irprop-plus", &data, 2, &["--out", "U", "--force"]);
    ok(&run(d.path(), &args));
    assert!(snapshot(&mine) == before, ".U.swap changed");
    assert!(d.path().join("U/optimizer.safetensors").is_file());
}

// A crash inside the fallback swap (no RENAME_EXCHANGE) leaves the old run aside as
// `.U.swap` with the marker naming it: the next run of U puts it back first.
#[test]
fn a_run_left_aside_by_a_crashed_swap_is_put_back() {
    use std::os::unix::fs::MetadataExt;
    let d = tempfile::tempdir().unwrap();
    let data = tiny_data(d.path());
    trained(d.path(), &data, "U");
    let before = snapshot(&d.path().join("U"));
    let aside = d.path().join(".U.swap");
    std::fs::rename(d.path().join("U"), &aside).unwrap();
    let m = std::fs::metadata(&aside).unwrap();
    let marker = d.path().join(".U.swapping");
    std::fs::write(&marker, format!("{} {}", m.dev(), m.ino())).unwrap();
    // Without --force the new run is refused: U holds a run again.
    let args = tiny_train("irprop-plus", &data, 2, &["--out", "U"]);
    refused(&run(d.path(), &args), "already holds a run");
    assert!(
        snapshot(&d.path().join("U")) == before,
        "U is not the old run"
    );
    assert!(!aside.exists() && !marker.exists());
    // A marker naming another folder moves nothing.
    std::fs::create_dir(&aside).unwrap();
    std::fs::write(&marker, "1 2").unwrap();
    std::fs::remove_dir_all(d.path().join("U")).unwrap();
    ok(&run(d.path(), &args));
    assert!(aside.is_dir() && d.path().join("U/optimizer.safetensors").is_file());
}
