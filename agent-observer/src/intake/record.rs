//! Decoding ring-buffer records. Pure: bytes and a clock in, an [`Event`] out.

use agent_observer_common::{
    DATA_LAST, DATA_RECV, DATA_TLS, DATA_TRUNCATED, DataRecord, ExecMapRecord, SOCK_CONNECTED,
    STREAM_TLS, SockCloseRecord, SockRecord, TlsAssocRecord,
    CLOSE_NOT_LAST, CloseRecord, EXEC_ARGV_TRUNCATED, EXEC_CANDIDATE, ExecRecord, ExitRecord, FileOpRecord,
    FileRecord, FileRef, ForkRecord, Header, OP_NAME_A_TRUNCATED, OP_NAME_B_TRUNCATED, PATH_FAULT,
    PATH_TRUNCATED, kind, op,
};

use super::{
    CloseHow, Conn, DataChunk, Direction, Event, Exec, ExecMap, Exit, FileClose, FileHandle, FileOp,
    FileOpKind, FileOpen, FileWriteStart, Fork, KernelPath, OpPath, SockClose, SockCounters, SockOpen,
    TlsAssoc, clock::BootClock,
};
use crate::text::split_nul;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum RecordError {
    #[error("record of {0} bytes is shorter than its header")]
    Short(usize),
    #[error("record kind {kind} needs {need} bytes, got {got}")]
    Truncated { kind: u16, need: usize, got: usize },
    #[error("unknown record kind {0}")]
    UnknownKind(u16),
    #[error("unknown file operation {0}")]
    UnknownOp(u16),
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

/// `file->f_mode` bit the kernel sets when an open created the file (FMODE_CREATED).
pub const FMODE_CREATED: u32 = 0x100000;

fn handle(f: &FileRef) -> FileHandle {
    // The kernel's dev_t is major << 20 | minor; stat(2) encodes it differently.
    let dev = libc::makedev(f.dev >> 20, f.dev & 0xfffff);
    FileHandle { file: f.file, ino: f.ino, dev, fd: f.fd }
}

fn name(bytes: &[u8]) -> Vec<u8> {
    bytes.split(|&b| b == 0).next().unwrap_or_default().to_vec()
}

fn op_kind(code: u16) -> Result<FileOpKind, RecordError> {
    Ok(match code as u8 {
        op::RENAME => FileOpKind::Rename,
        op::UNLINK => FileOpKind::Unlink,
        op::MKDIR => FileOpKind::Mkdir,
        op::RMDIR => FileOpKind::Rmdir,
        op::CHMOD => FileOpKind::Chmod,
        op::SYMLINK => FileOpKind::Symlink,
        op::LINK => FileOpKind::Link,
        op::TRUNCATE => FileOpKind::Truncate,
        op::MMAP => FileOpKind::Mmap,
        _ => return Err(RecordError::UnknownOp(code)),
    })
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
        kind::FILE_OPEN | kind::FILE_WRITE_START => {
            let r: FileRecord = fixed(data, header.kind)?;
            let [path] = tail(data, size_of::<FileRecord>(), [r.path_len as usize], header.kind)?;
            let path = decode_path(path, r.path_flags);
            Ok(if header.kind == kind::FILE_OPEN {
                Event::FileOpen(FileOpen {
                    ts,
                    tgid: header.tgid,
                    handle: handle(&r.file),
                    flags: r.flags,
                    created: r.fmode & FMODE_CREATED != 0,
                    size: r.size,
                    path,
                })
            } else {
                Event::FileWriteStart(FileWriteStart { ts, tgid: header.tgid, handle: handle(&r.file), path })
            })
        }
        kind::FILE_CLOSE => {
            let r: CloseRecord = fixed(data, header.kind)?;
            Ok(Event::FileClose(FileClose {
                ts,
                tgid: header.tgid,
                handle: handle(&r.file),
                bytes: r.bytes,
                writes: r.writes,
                first_write: if r.writes > 0 { clock.to_unix(r.first_ns) } else { 0 },
                last_write: if r.writes > 0 { clock.to_unix(r.last_ns) } else { 0 },
                size: r.size,
                how: match r.op as u8 {
                    _ if r.flags & CLOSE_NOT_LAST != 0 => CloseHow::NotLast,
                    op::DUP_OVER => CloseHow::DupOver,
                    op::WRITE => CloseHow::Unaggregated,
                    _ => CloseHow::Close,
                },
            }))
        }
        kind::FILE_OP => {
            let r: FileOpRecord = fixed(data, header.kind)?;
            let kind = op_kind(r.op)?;
            let [base_a, name_a, base_b, name_b] = tail(
                data,
                size_of::<FileOpRecord>(),
                [r.base_a_len as usize, r.name_a_len as usize, r.base_b_len as usize, r.name_b_len as usize],
                header.kind,
            )?;
            let path = |base: &[u8], flags: u16, raw: &[u8], cut: bool| OpPath {
                base: if base.is_empty() { KernelPath::default() } else { decode_path(base, flags) },
                name: name(raw),
                name_truncated: cut,
            };
            let a = path(base_a, r.base_a_flags, name_a, r.name_flags & OP_NAME_A_TRUNCATED != 0);
            let has_b = r.name_b_len > 0 || r.base_b_len > 0;
            let b = has_b.then(|| path(base_b, r.base_b_flags, name_b, r.name_flags & OP_NAME_B_TRUNCATED != 0));
            Ok(Event::FileOp(FileOp {
                ts,
                tgid: header.tgid,
                kind,
                a,
                b,
                flags: r.flags,
                value: r.value,
                handle: (r.file.file != 0).then(|| handle(&r.file)),
            }))
        }
        kind::EXEC_MAP => {
            let r: ExecMapRecord = fixed(data, header.kind)?;
            let [path] = tail(data, size_of::<ExecMapRecord>(), [r.path_len as usize], header.kind)?;
            Ok(Event::ExecMap(ExecMap { ts, tgid: header.tgid, handle: handle(&r.file), path: decode_path(path, r.path_flags) }))
        }
        kind::SOCK_OPEN => {
            let r: SockRecord = fixed(data, header.kind)?;
            Ok(Event::SockOpen(SockOpen {
                ts,
                tgid: header.tgid,
                sk: r.sk,
                fd: r.fd,
                connected: r.flags & SOCK_CONNECTED != 0,
                local: socket_addr(r.family, &r.saddr, r.sport),
                remote: socket_addr(r.family, &r.daddr, r.dport),
            }))
        }
        kind::SOCK_CLOSE => {
            let r: SockCloseRecord = fixed(data, header.kind)?;
            Ok(Event::SockClose(SockClose {
                ts,
                tgid: header.tgid,
                sk: r.sk,
                counters: sock_counters(&r.stats, clock),
                at_exit: false,
            }))
        }
        kind::DATA => {
            let r: DataRecord = fixed(data, header.kind)?;
            let [bytes] = tail(data, size_of::<DataRecord>(), [r.len as usize], header.kind)?;
            let tls = r.flags & DATA_TLS != 0;
            Ok(Event::Data(DataChunk {
                ts,
                tgid: header.tgid,
                tid: header.tid,
                conn: if tls { Conn::Tls(r.conn) } else { Conn::Socket(r.conn) },
                dir: if r.flags & DATA_RECV != 0 { Direction::Recv } else { Direction::Send },
                library: r.library,
                call_len: r.call_len,
                offset: u64::from(r.offset),
                bytes: bytes.to_vec(),
                last: r.flags & DATA_LAST != 0,
                truncated: r.flags & DATA_TRUNCATED != 0,
            }))
        }
        kind::TLS_ASSOC => {
            let r: TlsAssocRecord = fixed(data, header.kind)?;
            Ok(Event::TlsAssoc(TlsAssoc { ts, tgid: header.tgid, tls: r.tls, sk: r.sk, inside_call: r.inside_call != 0 }))
        }
        other => Err(RecordError::UnknownKind(other)),
    }
}

fn socket_addr(family: u16, addr: &[u8; 16], port: u16) -> std::net::SocketAddr {
    use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
    let ip = if family == 10 {
        let v6 = Ipv6Addr::from(*addr);
        // An IPv4 peer on an IPv6 socket shows as ::ffff:a.b.c.d; report it as IPv4.
        v6.to_ipv4_mapped().map_or(IpAddr::V6(v6), IpAddr::V4)
    } else {
        IpAddr::V4(Ipv4Addr::new(addr[0], addr[1], addr[2], addr[3]))
    };
    std::net::SocketAddr::new(ip, port)
}

/// Kernel counters of a connection in the daemon's terms.
pub fn sock_counters(s: &agent_observer_common::SockStats, clock: &BootClock) -> SockCounters {
    SockCounters {
        bytes_sent: s.bytes_sent,
        bytes_recv: s.bytes_recv,
        sends: s.sends,
        recvs: s.recvs,
        first: clock.to_unix(s.first_ns),
        last: clock.to_unix(s.last_ns),
        tls: s.flags & STREAM_TLS != 0,
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
    fn file_records_decode() {
        let r = FileRecord {
            header: Header { kind: kind::FILE_OPEN, tgid: 7, ..Default::default() },
            file: FileRef { file: 0xffff_8880_0000_1000, ino: 12, dev: 3, fd: 4 },
            flags: 0o1101,
            fmode: FMODE_CREATED | 2,
            size: 0,
            path_len: 10,
            ..Default::default()
        };
        let mut data = bytes_of(&r);
        data.extend_from_slice(b"f\0dir\0tmp\0");
        let Event::FileOpen(open) = parse(&data, &BootClock::with_offset(0)).unwrap() else { panic!() };
        assert!(open.created);
        assert_eq!(open.path.bytes, b"/tmp/dir/f");
        assert_eq!(open.handle.fd, 4);

        let op = FileOpRecord {
            header: Header { kind: kind::FILE_OP, tgid: 7, ..Default::default() },
            op: op::RENAME as u16,
            base_a_len: 4,
            name_a_len: 6,
            base_b_len: 0,
            name_b_len: 7,
            ..Default::default()
        };
        let mut data = bytes_of(&op);
        data.extend_from_slice(b"tmp\0a.txt\0/b.txt\0");
        let Event::FileOp(op) = parse(&data, &BootClock::with_offset(0)).unwrap() else { panic!() };
        assert_eq!(op.kind, FileOpKind::Rename);
        assert_eq!(op.a.base.bytes, b"/tmp");
        assert_eq!(op.a.name, b"a.txt");
        let b = op.b.unwrap();
        assert!(b.base.bytes.is_empty());
        assert_eq!(b.name, b"/b.txt");
    }

    #[test]
    fn unknown_file_ops_are_errors() {
        let op = FileOpRecord { header: Header { kind: kind::FILE_OP, ..Default::default() }, op: 99, ..Default::default() };
        assert_eq!(parse(&bytes_of(&op), &BootClock::with_offset(0)), Err(RecordError::UnknownOp(99)));
    }

    #[test]
    fn paths_are_rebuilt_root_first() {
        assert_eq!(decode_path(b"", 0).bytes, b"/");
        assert_eq!(decode_path(b"c\0b\0a\0", 0).bytes, b"/a/b/c");
        assert!(decode_path(b"c\0", PATH_TRUNCATED).truncated);
        assert!(!decode_path(b"", PATH_FAULT).known());
    }
}
