//! The syscall sensors: which syscall numbers go to which kernel handler, and how each one's
//! arguments are read. The kernel side is arch-neutral; this table is per architecture.
//!
//! # Cost
//! Attaching `sys_enter`/`sys_exit` sends every syscall of every task through the kernel's
//! syscall slow path (about 0.3 µs per syscall measured on a 2-core VM). Untracked tasks then
//! cost one map lookup. See [`Arming`] for running the hooks only while sessions are live.

use agent_observer_common::{REG_NONE, SyscallSpec, op};

/// Which kernel program handles a syscall, at entry or at exit.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Handler {
    /// At exit: opens for writing.
    FileOpen,
    /// At exit: data written (files, and sockets for the network sensor).
    FileWrite,
    /// At entry: closes (and dup2/dup3 over an open fd).
    FileClose,
    /// At exit: namespace and metadata changes.
    FileOp,
}

impl Handler {
    pub fn program(self) -> &'static str {
        match self {
            Handler::FileOpen => "file_open",
            Handler::FileWrite => "file_write",
            Handler::FileClose => "file_close",
            Handler::FileOp => "file_op",
        }
    }

    pub fn at_entry(self) -> bool {
        matches!(self, Handler::FileClose)
    }
}

/// When the syscall hooks are attached.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Arming {
    /// From start-up to exit: nothing a session does is missed.
    #[default]
    Always,
    /// Only while at least one session is live. Untracked processes pay nothing when no agent
    /// runs, but the first milliseconds of a session found at exec (before the daemon reacts)
    /// are not observed; the gap is reported on the session span.
    OnDemand,
}

/// Which argument (0-5, in C order) holds what, for one syscall.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Layout {
    pub op: u8,
    pub fd: u8,
    pub dirfd_a: u8,
    pub name_a: u8,
    pub dirfd_b: u8,
    pub name_b: u8,
    pub flags: u8,
    pub value: u8,
    pub extra: u8,
}

/// No such argument.
pub const N: u8 = 0xff;

const fn spec(op: u8, fd: u8, dirfd_a: u8, name_a: u8, dirfd_b: u8, name_b: u8, flags: u8, value: u8) -> Layout {
    Layout { op, fd, dirfd_a, name_a, dirfd_b, name_b, flags, value, extra: N }
}

impl Layout {
    const fn with_extra(mut self, extra: u8) -> Layout {
        self.extra = extra;
        self
    }

    /// The kernel's form: argument indices turned into `struct pt_regs` offsets.
    pub fn to_spec(&self, regs: &[u32; 6]) -> SyscallSpec {
        let reg = |arg: u8| regs.get(arg as usize).map_or(REG_NONE, |off| *off as u16);
        SyscallSpec {
            op: self.op as u16,
            fd: reg(self.fd),
            dirfd_a: reg(self.dirfd_a),
            name_a: reg(self.name_a),
            dirfd_b: reg(self.dirfd_b),
            name_b: reg(self.name_b),
            flags: reg(self.flags),
            value: reg(self.value),
            extra: reg(self.extra),
            _pad: [0; 3],
        }
    }

    pub fn args(&self) -> [u8; 8] {
        [self.fd, self.dirfd_a, self.name_a, self.dirfd_b, self.name_b, self.flags, self.value, self.extra]
    }
}

/// (syscall number, handler, argument layout).
#[cfg(target_arch = "x86_64")]
pub const TABLE: &[(u32, Handler, Layout)] = &[
    (2, Handler::FileOpen, spec(op::OPEN, N, N, 0, N, N, 1, 2)),        // open
    (257, Handler::FileOpen, spec(op::OPEN, N, 0, 1, N, N, 2, 3)),      // openat
    (437, Handler::FileOpen, spec(op::OPEN_HOW, N, 0, 1, N, N, 2, N)),  // openat2
    (85, Handler::FileOpen, spec(op::CREAT, N, N, 0, N, N, N, 1)),      // creat
    (1, Handler::FileWrite, spec(op::WRITE, 0, N, N, N, N, N, 2)),      // write
    (18, Handler::FileWrite, spec(op::WRITE, 0, N, N, N, N, N, 2)),     // pwrite64
    (20, Handler::FileWrite, spec(op::WRITE, 0, N, N, N, N, N, N)),     // writev
    (296, Handler::FileWrite, spec(op::WRITE, 0, N, N, N, N, N, N)),    // pwritev
    (328, Handler::FileWrite, spec(op::WRITE, 0, N, N, N, N, N, N)),    // pwritev2
    (40, Handler::FileWrite, spec(op::WRITE, 0, N, N, N, N, N, N)),     // sendfile (out_fd)
    (326, Handler::FileWrite, spec(op::WRITE, 2, N, N, N, N, N, N)),    // copy_file_range (fd_out)
    (275, Handler::FileWrite, spec(op::WRITE, 2, N, N, N, N, N, N)),    // splice (fd_out)
    (3, Handler::FileClose, spec(op::CLOSE, 0, N, N, N, N, N, N)),      // close
    (33, Handler::FileClose, spec(op::DUP_OVER, 1, N, N, N, N, N, 0)),  // dup2(old, new)
    (292, Handler::FileClose, spec(op::DUP_OVER, 1, N, N, N, N, N, 0)), // dup3(old, new, flags)
    (82, Handler::FileOp, spec(op::RENAME, N, N, 0, N, 1, N, N)),       // rename
    (264, Handler::FileOp, spec(op::RENAME, N, 0, 1, 2, 3, N, N)),      // renameat
    (316, Handler::FileOp, spec(op::RENAME, N, 0, 1, 2, 3, 4, N)),      // renameat2
    (87, Handler::FileOp, spec(op::UNLINK, N, N, 0, N, N, N, N)),       // unlink
    (263, Handler::FileOp, spec(op::UNLINK, N, 0, 1, N, N, 2, N)),      // unlinkat (AT_REMOVEDIR)
    (84, Handler::FileOp, spec(op::RMDIR, N, N, 0, N, N, N, N)),        // rmdir
    (83, Handler::FileOp, spec(op::MKDIR, N, N, 0, N, N, N, 1)),        // mkdir
    (258, Handler::FileOp, spec(op::MKDIR, N, 0, 1, N, N, N, 2)),       // mkdirat
    (90, Handler::FileOp, spec(op::CHMOD, N, N, 0, N, N, N, 1)),        // chmod
    (91, Handler::FileOp, spec(op::CHMOD, 0, N, N, N, N, N, 1)),        // fchmod
    (268, Handler::FileOp, spec(op::CHMOD, N, 0, 1, N, N, N, 2)),       // fchmodat
    (452, Handler::FileOp, spec(op::CHMOD, N, 0, 1, N, N, 3, 2)),       // fchmodat2
    (88, Handler::FileOp, spec(op::SYMLINK, N, N, 0, N, 1, N, N)),      // symlink(target, path)
    (266, Handler::FileOp, spec(op::SYMLINK, N, N, 0, 1, 2, N, N)),     // symlinkat
    (86, Handler::FileOp, spec(op::LINK, N, N, 0, N, 1, N, N)),         // link
    (265, Handler::FileOp, spec(op::LINK, N, 0, 1, 2, 3, 4, N)),        // linkat
    (76, Handler::FileOp, spec(op::TRUNCATE, N, N, 0, N, N, N, 1)),     // truncate
    (77, Handler::FileOp, spec(op::TRUNCATE, 0, N, N, N, N, N, 1)),     // ftruncate
    (9, Handler::FileOp, spec(op::MMAP, 4, N, N, N, N, 3, 1).with_extra(2)), // mmap(addr, len, prot, flags, fd)
];

/// aarch64 has only the *at variants.
#[cfg(target_arch = "aarch64")]
pub const TABLE: &[(u32, Handler, Layout)] = &[
    (56, Handler::FileOpen, spec(op::OPEN, N, 0, 1, N, N, 2, 3)),       // openat
    (437, Handler::FileOpen, spec(op::OPEN_HOW, N, 0, 1, N, N, 2, N)),  // openat2
    (64, Handler::FileWrite, spec(op::WRITE, 0, N, N, N, N, N, 2)),     // write
    (68, Handler::FileWrite, spec(op::WRITE, 0, N, N, N, N, N, 2)),     // pwrite64
    (66, Handler::FileWrite, spec(op::WRITE, 0, N, N, N, N, N, N)),     // writev
    (70, Handler::FileWrite, spec(op::WRITE, 0, N, N, N, N, N, N)),     // pwritev
    (287, Handler::FileWrite, spec(op::WRITE, 0, N, N, N, N, N, N)),    // pwritev2
    (71, Handler::FileWrite, spec(op::WRITE, 0, N, N, N, N, N, N)),     // sendfile
    (285, Handler::FileWrite, spec(op::WRITE, 2, N, N, N, N, N, N)),    // copy_file_range
    (76, Handler::FileWrite, spec(op::WRITE, 2, N, N, N, N, N, N)),     // splice
    (57, Handler::FileClose, spec(op::CLOSE, 0, N, N, N, N, N, N)),     // close
    (24, Handler::FileClose, spec(op::DUP_OVER, 1, N, N, N, N, N, 0)),  // dup3
    (38, Handler::FileOp, spec(op::RENAME, N, 0, 1, 2, 3, N, N)),       // renameat
    (276, Handler::FileOp, spec(op::RENAME, N, 0, 1, 2, 3, 4, N)),      // renameat2
    (35, Handler::FileOp, spec(op::UNLINK, N, 0, 1, N, N, 2, N)),       // unlinkat
    (34, Handler::FileOp, spec(op::MKDIR, N, 0, 1, N, N, N, 2)),        // mkdirat
    (52, Handler::FileOp, spec(op::CHMOD, 0, N, N, N, N, N, 1)),        // fchmod
    (53, Handler::FileOp, spec(op::CHMOD, N, 0, 1, N, N, N, 2)),        // fchmodat
    (452, Handler::FileOp, spec(op::CHMOD, N, 0, 1, N, N, 3, 2)),       // fchmodat2
    (36, Handler::FileOp, spec(op::SYMLINK, N, N, 0, 1, 2, N, N)),      // symlinkat
    (37, Handler::FileOp, spec(op::LINK, N, 0, 1, 2, 3, 4, N)),         // linkat
    (45, Handler::FileOp, spec(op::TRUNCATE, N, N, 0, N, N, N, 1)),     // truncate
    (46, Handler::FileOp, spec(op::TRUNCATE, 0, N, N, N, N, N, 1)),     // ftruncate
    (222, Handler::FileOp, spec(op::MMAP, 4, N, N, N, N, 3, 1).with_extra(2)), // mmap
];

/// Every handler program, so each is loaded once.
pub const HANDLERS: &[Handler] = &[Handler::FileOpen, Handler::FileWrite, Handler::FileClose, Handler::FileOp];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_syscall_number_is_listed_once_and_fits_the_dispatch_table() {
        let mut seen = std::collections::HashSet::new();
        for (nr, handler, spec) in TABLE {
            assert!(*nr < 512, "{nr} beyond SYSCALL_SLOTS");
            assert!(seen.insert(*nr), "{nr} listed twice");
            assert!(HANDLERS.contains(handler));
            for arg in spec.args() {
                assert!(arg < 6 || arg == N, "{nr}: argument index {arg}");
            }
        }
    }

    #[test]
    fn layouts_become_register_offsets() {
        let regs = [112, 104, 96, 56, 72, 64];
        let (_, _, layout) = TABLE.iter().find(|(nr, _, l)| l.op == op::RENAME && l.flags != N && *nr > 0).unwrap();
        let spec = layout.to_spec(&regs);
        assert_eq!((spec.dirfd_a, spec.name_a, spec.dirfd_b, spec.name_b), (112, 104, 96, 56));
        assert_eq!(spec.fd, REG_NONE);
    }

    #[test]
    fn fd_and_path_handlers_have_what_they_read() {
        for (nr, handler, spec) in TABLE {
            match handler {
                Handler::FileWrite | Handler::FileClose => assert_ne!(spec.fd, N, "{nr}"),
                Handler::FileOp => assert!(spec.fd != N || spec.name_a != N, "{nr}"),
                Handler::FileOpen => assert!(spec.op == op::CREAT || spec.flags != N, "{nr}"),
            }
        }
    }
}
