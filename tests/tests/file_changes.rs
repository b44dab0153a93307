//! Issue 3: every file change by an agent session, exact, on the real kernel.

use std::{
    os::unix::ffi::OsStrExt as _,
    path::{Path, PathBuf},
    process::Command,
};

use agent_observer_tests::{
    daemon::{Daemon, watch},
    kernel_lock,
    otlp::{SpanRec, session_in},
    script,
};
use sha2::{Digest as _, Sha256};

const BIG: u64 = 50 * 1024 * 1024;

/// Files the test creates before the agent runs (so their changes are edits, not creations).
fn prepare(dir: &Path) {
    std::fs::write(dir.join("appended.txt"), "first\n").unwrap();
    std::fs::write(dir.join("sed.txt"), "alpha\nbeta\n").unwrap();
    std::fs::write(dir.join("trunc.txt"), "0123456789").unwrap();
    std::fs::write(dir.join("emptied.txt"), "some text").unwrap();
    std::fs::write(dir.join("tomove.txt"), "move me\n").unwrap();
    std::fs::write(dir.join("todelete.txt"), "bye\n").unwrap();
    std::fs::write(dir.join("tool.sh"), "#!/bin/sh\n").unwrap();
    std::fs::create_dir_all(dir.join("sub/inner")).unwrap();
}

/// The agent's script: one line per kind of change the issue lists.
const WORKLOAD: &str = r#"set -e
echo hello > created.txt
echo more >> appended.txt
sed -i s/beta/gamma/ sed.txt
/usr/bin/python3 -c "open('python.txt', 'w').write('from python\n')"
dd if=/dev/zero of=dd.bin bs=1k count=64 status=none
truncate -s 3 trunc.txt
: > emptied.txt
cd sub
mv ../tomove.txt inner/moved.txt
cd ..
rm todelete.txt
chmod 750 tool.sh
dd if=/dev/zero of=big.bin bs=4k count=12800 status=none
echo spaced > "with space.txt"
printf 'raw' > "$(printf 'bad\377name.txt')"
exec 3> inherited.txt
sh -c 'echo from child >&3'
exec 3>&-
"#;

fn sha256_of(path: &Path) -> String {
    hex::encode(Sha256::digest(std::fs::read(path).unwrap()))
}

fn writes_to<'a>(trace: &[&'a SpanRec], path: &Path) -> Vec<&'a SpanRec> {
    let p = path.to_str().unwrap();
    trace.iter().copied().filter(|s| s.name == "file write" && s.str("file.path") == Some(p)).collect()
}

fn one_write<'a>(trace: &[&'a SpanRec], path: &Path) -> &'a SpanRec {
    let w = writes_to(trace, path);
    assert_eq!(w.len(), 1, "expected one write episode for {}: {w:#?}", path.display());
    w[0]
}

fn op<'a>(trace: &[&'a SpanRec], name: &str, path: &Path) -> &'a SpanRec {
    let p = path.to_str().unwrap();
    trace
        .iter()
        .copied()
        .find(|s| s.name == name && s.str("file.path") == Some(p))
        .unwrap_or_else(|| panic!("no `{name}` span for {p}"))
}

/// A write episode's exact bytes, final size and hash against what is on disk now.
fn assert_written(span: &SpanRec, bytes: u64, on_disk: &Path) {
    assert_eq!(span.int("agent_observer.file.bytes_written"), Some(bytes as i64), "{span:#?}");
    let size = std::fs::metadata(on_disk).unwrap().len();
    assert_eq!(span.int("file.size"), Some(size as i64), "{span:#?}");
    assert_eq!(span.str("agent_observer.file.hash_status"), Some("ok"), "{span:#?}");
    assert_eq!(span.str("agent_observer.file.sha256"), Some(sha256_of(on_disk).as_str()), "{span:#?}");
}

fn check(spans: &[SpanRec], dir: &Path, big_is_hashed: bool) {
    let (root, trace) = session_in(spans, dir);
    let d = |name: &str| dir.join(name);

    // Shell redirection, in the agent's own process.
    let created = one_write(&trace, &d("created.txt"));
    assert_written(created, 6, &d("created.txt"));
    assert_eq!(created.bool("agent_observer.file.created"), Some(true));
    assert_eq!(created.parent, root.span_id);
    assert_eq!(created.str("file.name"), Some("created.txt"));
    assert_eq!(created.str("file.directory"), dir.to_str());

    let appended = one_write(&trace, &d("appended.txt"));
    assert_written(appended, 5, &d("appended.txt"));
    assert_eq!(appended.bool("agent_observer.file.created"), Some(false));
    assert!(format!("{:?}", appended.attrs.get("agent_observer.file.open_flags")).contains("O_APPEND"));
    assert_eq!(std::fs::read_to_string(d("appended.txt")).unwrap(), "first\nmore\n");

    // sed -i: a temp file written, then renamed over the target.
    let target = d("sed.txt");
    let rename = trace
        .iter()
        .find(|s| s.name == "file rename" && s.str("agent_observer.file.target_path") == target.to_str())
        .expect("sed's rename over sed.txt");
    let temp = PathBuf::from(rename.str("file.path").unwrap());
    assert_eq!(temp.parent(), Some(dir));
    let temp_write = one_write(&trace, &temp);
    assert_eq!(temp_write.str("agent_observer.file.renamed_to"), target.to_str());
    assert_written(temp_write, 12, &target);
    assert_eq!(std::fs::read_to_string(&target).unwrap(), "alpha\ngamma\n");

    let py = one_write(&trace, &d("python.txt"));
    assert_written(py, 12, &d("python.txt"));
    let py_exec = trace.iter().find(|s| s.span_id == py.parent).expect("parent span");
    assert!(py_exec.name.starts_with("exec python"), "{}", py_exec.name);

    let dd = one_write(&trace, &d("dd.bin"));
    assert_written(dd, 65536, &d("dd.bin"));
    assert_eq!(dd.int("agent_observer.file.write_count"), Some(64));
    assert_eq!(trace.iter().find(|s| s.span_id == dd.parent).unwrap().name, "exec dd");

    // Truncation: ftruncate by truncate(1), and O_TRUNC by the shell.
    let trunc = one_write(&trace, &d("trunc.txt"));
    assert_eq!(trunc.int("agent_observer.file.truncated_to"), Some(3));
    assert_written(trunc, 0, &d("trunc.txt"));
    let emptied = one_write(&trace, &d("emptied.txt"));
    assert!(format!("{:?}", emptied.attrs.get("agent_observer.file.open_flags")).contains("O_TRUNC"));
    assert_written(emptied, 0, &d("emptied.txt"));

    // A rename with relative paths, after cd.
    let moved = op(&trace, "file rename", &d("tomove.txt"));
    assert_eq!(moved.str("agent_observer.file.target_path"), d("sub/inner/moved.txt").to_str());

    op(&trace, "file delete", &d("todelete.txt"));
    let chmod = op(&trace, "file chmod", &d("tool.sh"));
    assert_eq!(chmod.str("agent_observer.file.mode"), Some("0750"));

    // 50 MB in 4 KiB writes: one span, exact counters.
    let big = one_write(&trace, &d("big.bin"));
    assert_eq!(big.int("agent_observer.file.bytes_written"), Some(BIG as i64));
    assert_eq!(big.int("agent_observer.file.write_count"), Some(12800));
    assert_eq!(big.int("file.size"), Some(BIG as i64));
    if big_is_hashed {
        assert_written(big, BIG, &d("big.bin"));
    } else {
        assert_eq!(big.str("agent_observer.file.hash_status"), Some("too-large"));
        assert!(big.str("agent_observer.file.sha256").is_none());
    }

    let spaced = one_write(&trace, &d("with space.txt"));
    assert_written(spaced, 7, &d("with space.txt"));

    // A path that is not UTF-8: escaped in file.path, exact in hex.
    let raw_name = std::ffi::OsStr::from_bytes(b"bad\xffname.txt");
    let raw_path = dir.join(raw_name);
    let nonutf8: Vec<&&SpanRec> = trace
        .iter()
        .filter(|s| s.name == "file write" && s.str("agent_observer.file.path_hex") == Some(&hex::encode(raw_path.as_os_str().as_bytes())))
        .collect();
    assert_eq!(nonutf8.len(), 1);
    assert_eq!(nonutf8[0].str("file.path"), Some(format!("{}/bad\\xffname.txt", dir.display()).as_str()));
    assert_written(nonutf8[0], 3, &raw_path);

    // A child writing through an inherited fd: its own episode, under its own span.
    let inherited = writes_to(&trace, &d("inherited.txt"));
    let child_write = inherited
        .iter()
        .find(|s| s.bool("agent_observer.file.inherited_fd") == Some(true))
        .expect("the child's write episode");
    assert_eq!(child_write.int("agent_observer.file.bytes_written"), Some(11));
    let child = trace.iter().find(|s| s.span_id == child_write.parent).unwrap();
    assert_eq!(child.name, "exec sh");
    assert_eq!(child_write.pid(), child.pid());
    assert_ne!(child.pid(), root.pid());

    // Session summary. Created: created, sed's temp, python, dd, big, spaced, non-UTF-8,
    // inherited. Modified: appended, sed.txt, trunc, emptied, moved.txt, tool.sh.
    assert_eq!(root.int("agent_observer.files.created"), Some(8), "{root:#?}");
    assert_eq!(root.int("agent_observer.files.modified"), Some(6), "{root:#?}");
    assert_eq!(root.int("agent_observer.files.deleted"), Some(1));
    let bytes = 6 + 5 + 12 + 12 + 65536 + BIG + 7 + 3 + 11;
    assert_eq!(root.int("agent_observer.files.bytes_written"), Some(bytes as i64));
}

/// Runs an untracked writer beside `f`; none of its files may appear.
fn with_outside_writer<T>(f: impl FnOnce() -> T) -> (T, PathBuf, tempfile::TempDir) {
    let other = tempfile::tempdir().unwrap();
    let mut writer = Command::new("sh")
        .current_dir(other.path())
        .args(["-c", "i=0; while [ $i -lt 50 ]; do echo $i > outsider-$i.txt; mv outsider-$i.txt moved-$i.txt; i=$((i+1)); done"])
        .spawn()
        .unwrap();
    let result = f();
    assert!(writer.wait().unwrap().success());
    let path = other.path().to_path_buf();
    (result, path, other)
}

fn assert_nothing_from(spans: &[SpanRec], dir: &Path) {
    let d = dir.to_str().unwrap();
    let leaked: Vec<&SpanRec> = spans
        .iter()
        .filter(|s| s.str("file.path").is_some_and(|p| p.starts_with(d)))
        .collect();
    assert!(leaked.is_empty(), "a non-agent process's files were traced: {leaked:#?}");
}

#[test]
fn an_agents_file_changes_are_exact() {
    let _k = kernel_lock();
    let config = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(config.path(), "[files]\nhash_max_bytes = 67108864\n").unwrap();
    let daemon = Daemon::start(&["--config", config.path().to_str().unwrap()]);
    let dir = tempfile::tempdir().unwrap();
    prepare(dir.path());
    let agent = dir.path().join("claude");
    script(&agent, WORKLOAD);
    let (status, outside, _keep) =
        with_outside_writer(|| Command::new(&agent).current_dir(dir.path()).status().unwrap());
    assert!(status.success());
    let out = daemon.stop();
    assert!(out.status.success(), "{}", out.log);
    check(&out.spans, dir.path(), true);
    assert_nothing_from(&out.spans, &outside);
    assert_eq!(out.stats["events_lost"], 0, "{}", out.stats);
}

#[test]
fn watch_sees_the_same_file_changes() {
    let _k = kernel_lock();
    let dir = tempfile::tempdir().unwrap();
    prepare(dir.path());
    let tool = dir.path().join("refactor-bot");
    script(&tool, WORKLOAD);
    let (w, outside, _keep) = with_outside_writer(|| watch(dir.path(), &[], &[tool.as_os_str()]));
    assert_eq!(w.status.code(), Some(0), "{}", w.stderr);
    check(&w.spans, dir.path(), false);
    assert_nothing_from(&w.spans, &outside);
}
