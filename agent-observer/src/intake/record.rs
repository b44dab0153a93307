//! Decoding ring-buffer records. Pure: bytes and a clock in, an [`Event`] out.

use agent_observer_common::{
    EXEC_ARGV_TRUNCATED, EXEC_CANDIDATE, ExecRecord, ExitRecord, ForkRecord, Header, PATH_FAULT,
    PATH_TRUNCATED, kind,
};

use super::{Event, Exec, Exit, Fork, KernelPath, clock::BootClock};
use crate::text::split_nul;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum RecordError {
    #[error("record of {0} bytes is shorter than its header")]
    Short(usize),
    #[error("record kind {kind} needs {need} bytes, got {got}")]
    Truncated { kind: u16, need: usize, got: usize },
    #[error("unknown record kind {0}")]
    UnknownKind(u16),
}

fn fixed<T: Copy>(data: &[u8], kind: u16) -> Result<T, RecordError> {
    if data.len() < size_of::<T>() {
        return Err(RecordError::Truncated { kind, need: size_of::<T>(), got: data.len() });
    }
    // SAFETY: length checked; T is plain old data; read_unaligned needs no alignment.
    Ok(unsafe { std::ptr::read_unaligned(data.as_ptr().cast::<T>()) })
}

/// The variable tail of a record after its fixed part, split into the given lengths.
fn tail<'a, const N: usize>(
    data: &'a [u8],
    fixed_len: usize,
    lens: [usize; N],
    kind: u16,
) -> Result<[&'a [u8]; N], RecordError> {
    let need = fixed_len + lens.iter().sum::<usize>();
    if data.len() < need {
        return Err(RecordError::Truncated { kind, need, got: data.len() });
    }
    let mut at = fixed_len;
    Ok(lens.map(|len| {
        let part = &data[at..at + len];
        at += len;
        part
    }))
}

/// Leaf-first NUL-terminated components, as the kernel walked them, to an absolute path.
pub fn decode_path(bytes: &[u8], flags: u16) -> KernelPath {
    let mut components: Vec<&[u8]> = bytes
        .split(|&b| b == 0)
        .filter(|c| !c.is_empty())
        .collect();
    components.reverse();
    let mut path = Vec::with_capacity(bytes.len() + 1);
    for c in components {
        path.push(b'/');
        path.extend_from_slice(c);
    }
    let fault = flags & PATH_FAULT != 0;
    if path.is_empty() && !fault {
        path.push(b'/');
    }
    KernelPath { bytes: path, truncated: flags & PATH_TRUNCATED != 0, fault }
}

fn comm(raw: &[u8; 16]) -> String {
    let end = raw.iter().position(|&b| b == 0).unwrap_or(raw.len());
    String::from_utf8_lossy(&raw[..end]).into_owned()
}

pub fn parse(data: &[u8], clock: &BootClock) -> Result<Event, RecordError> {
    if data.len() < size_of::<Header>() {
        return Err(RecordError::Short(data.len()));
    }
    let header: Header = fixed(data, 0)?;
    let ts = clock.to_unix(header.ts_ns);
    match header.kind {
        kind::FORK => {
            let r: ForkRecord = fixed(data, header.kind)?;
            Ok(Event::Fork(Fork { ts, parent: r.parent_tgid, child: r.child_tgid }))
        }
        kind::EXEC => {
            let r: ExecRecord = fixed(data, header.kind)?;
            let [filename, argv, cwd] = tail(
                data,
                size_of::<ExecRecord>(),
                [r.filename_len as usize, r.argv_len as usize, r.cwd_len as usize],
                header.kind,
            )?;
            let filename = filename.split(|&b| b == 0).next().unwrap_or_default().to_vec();
            Ok(Event::Exec(Exec {
                ts,
                tgid: header.tgid,
                old_tid: r.old_tid,
                uid: r.uid,
                gid: r.gid,
                candidate: r.flags & EXEC_CANDIDATE != 0,
                filename,
                argv: split_nul(argv),
                argv_truncated: r.flags & EXEC_ARGV_TRUNCATED != 0,
                cwd: decode_path(cwd, r.cwd_flags),
                comm: comm(&r.comm),
            }))
        }
        kind::EXIT => {
            let r: ExitRecord = fixed(data, header.kind)?;
            Ok(Event::Exit(Exit { ts, tgid: header.tgid, status: r.exit_code }))
        }
        other => Err(RecordError::UnknownKind(other)),
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    pub fn bytes_of<T>(v: &T) -> Vec<u8> {
        // SAFETY: reading the bytes of a plain #[repr(C)] value.
        unsafe { std::slice::from_raw_parts((v as *const T).cast::<u8>(), size_of::<T>()).to_vec() }
    }

    fn exec_record(filename: &[u8], argv: &[u8], cwd: &[u8]) -> Vec<u8> {
        let r = ExecRecord {
            header: Header { kind: kind::EXEC, tgid: 42, ts_ns: 1_000, ..Default::default() },
            uid: 1000,
            flags: EXEC_CANDIDATE,
            filename_len: filename.len() as u16,
            argv_len: argv.len() as u16,
            cwd_len: cwd.len() as u16,
            comm: *b"claude\0\0\0\0\0\0\0\0\0\0",
            ..Default::default()
        };
        let mut data = bytes_of(&r);
        data.extend_from_slice(filename);
        data.extend_from_slice(argv);
        data.extend_from_slice(cwd);
        data
    }

    #[test]
    fn exec_records_decode() {
        let data = exec_record(b"/usr/bin/claude\0", b"claude\0-p\0hi there\0", b"proj\0home\0");
        let Event::Exec(e) = parse(&data, &BootClock::with_offset(5)).unwrap() else { panic!() };
        assert_eq!(e.ts, 1_005);
        assert_eq!(e.filename, b"/usr/bin/claude");
        assert_eq!(e.argv, vec![b"claude".to_vec(), b"-p".to_vec(), b"hi there".to_vec()]);
        assert_eq!(e.cwd.bytes, b"/home/proj");
        assert!(e.candidate);
        assert_eq!(e.comm, "claude");
    }

    #[test]
    fn lengths_past_the_record_are_errors() {
        let mut data = exec_record(b"/x\0", b"x\0", b"");
        data.truncate(data.len() - 1);
        assert!(matches!(parse(&data, &BootClock::with_offset(0)), Err(RecordError::Truncated { .. })));
        assert_eq!(parse(&[1, 2], &BootClock::with_offset(0)), Err(RecordError::Short(2)));
        let bogus = bytes_of(&Header { kind: 999, ..Default::default() });
        assert_eq!(parse(&bogus, &BootClock::with_offset(0)), Err(RecordError::UnknownKind(999)));
    }

    #[test]
    fn paths_are_rebuilt_root_first() {
        assert_eq!(decode_path(b"", 0).bytes, b"/");
        assert_eq!(decode_path(b"c\0b\0a\0", 0).bytes, b"/a/b/c");
        assert!(decode_path(b"c\0", PATH_TRUNCATED).truncated);
        assert!(!decode_path(b"", PATH_FAULT).known());
    }
}
