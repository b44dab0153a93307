//! Resolves [`Offsets`] for the running kernel from its BTF.

use agent_observer_common::Offsets;

use super::btf::{Btf, BtfError};

/// Every field the kernel programs read, as (struct, member path).
pub fn resolve(btf: &Btf) -> Result<Offsets, BtfError> {
    let o = |s: &str, m: &str| btf.offset_of(s, m);
    Ok(Offsets {
        task_pid: o("task_struct", "pid")?,
        task_tgid: o("task_struct", "tgid")?,
        task_exit_code: o("task_struct", "exit_code")?,
        task_mm: o("task_struct", "mm")?,
        task_fs: o("task_struct", "fs")?,
        task_files: o("task_struct", "files")?,
        mm_arg_start: o("mm_struct", "arg_start")?,
        mm_arg_end: o("mm_struct", "arg_end")?,
        fs_pwd: o("fs_struct", "pwd")?,
        path_mnt: o("path", "mnt")?,
        path_dentry: o("path", "dentry")?,
        dentry_parent: o("dentry", "d_parent")?,
        dentry_name: o("dentry", "d_name")?,
        qstr_name: o("qstr", "name")?,
        mount_mnt: o("mount", "mnt")?,
        mount_parent: o("mount", "mnt_parent")?,
        mount_mountpoint: o("mount", "mnt_mountpoint")?,
        vfsmount_root: o("vfsmount", "mnt_root")?,
        files_fdt: o("files_struct", "fdt")?,
        fdtable_max_fds: o("fdtable", "max_fds")?,
        fdtable_fd: o("fdtable", "fd")?,
        file_path: o("file", "f_path")?,
        file_inode: o("file", "f_inode")?,
        file_mode: o("file", "f_mode")?,
        file_flags: o("file", "f_flags")?,
        file_private_data: o("file", "private_data")?,
        inode_mode: o("inode", "i_mode")?,
        inode_ino: o("inode", "i_ino")?,
        inode_sb: o("inode", "i_sb")?,
        inode_size: o("inode", "i_size")?,
        sb_dev: o("super_block", "s_dev")?,
        socket_sk: o("socket", "sk")?,
        sock_family: o("sock", "__sk_common.skc_family")?,
        sock_type: o("sock", "sk_type")?,
        sock_protocol: o("sock", "sk_protocol")?,
        sock_dport: o("sock", "__sk_common.skc_dport")?,
        sock_num: o("sock", "__sk_common.skc_num")?,
        sock_daddr: o("sock", "__sk_common.skc_daddr")?,
        sock_rcv_saddr: o("sock", "__sk_common.skc_rcv_saddr")?,
        sock_v6_daddr: o("sock", "__sk_common.skc_v6_daddr")?,
        sock_v6_rcv_saddr: o("sock", "__sk_common.skc_v6_rcv_saddr")?,
        regs_nr: regs_nr(btf)?,
        file_refs: file_refs(btf)?.0,
        file_refs_bias: file_refs(btf)?.1,
    })
}

/// Where the first six function-call arguments sit in `struct pt_regs` (for uprobes).
#[cfg(target_arch = "x86_64")]
pub fn call_regs(btf: &Btf) -> Result<[u32; 6], BtfError> {
    let mut out = [0; 6];
    for (slot, reg) in out.iter_mut().zip(["di", "si", "dx", "cx", "r8", "r9"]) {
        *slot = btf.offset_of("pt_regs", reg)?;
    }
    Ok(out)
}

#[cfg(target_arch = "aarch64")]
pub fn call_regs(btf: &Btf) -> Result<[u32; 6], BtfError> {
    let regs = btf.offset_of("pt_regs", "user_regs")? + btf.offset_of("user_pt_regs", "regs")?;
    Ok([regs, regs + 8, regs + 16, regs + 24, regs + 32, regs + 40])
}

#[cfg(target_arch = "x86_64")]
fn regs_nr(btf: &Btf) -> Result<u32, BtfError> {
    btf.offset_of("pt_regs", "orig_ax")
}

#[cfg(target_arch = "aarch64")]
fn regs_nr(btf: &Btf) -> Result<u32, BtfError> {
    btf.offset_of("pt_regs", "syscallno")
}

/// The open file's reference count and how to read it.
fn file_refs(btf: &Btf) -> Result<(u32, u32), BtfError> {
    if btf.has_member("file", "f_ref") {
        Ok((btf.offset_of("file", "f_ref")?, 1))
    } else {
        Ok((btf.offset_of("file", "f_count")?, 0))
    }
}

/// Where the six syscall arguments sit in `struct pt_regs` (the syscall ABI's registers).
#[cfg(target_arch = "x86_64")]
pub fn regs_args(btf: &Btf) -> Result<[u32; 6], BtfError> {
    let mut out = [0; 6];
    for (slot, reg) in out.iter_mut().zip(["di", "si", "dx", "r10", "r8", "r9"]) {
        *slot = btf.offset_of("pt_regs", reg)?;
    }
    Ok(out)
}

#[cfg(target_arch = "aarch64")]
pub fn regs_args(btf: &Btf) -> Result<[u32; 6], BtfError> {
    // x0 is overwritten by the return value; the kernel keeps the first argument in orig_x0.
    let base = btf.offset_of("user_pt_regs", "regs")?;
    let regs = btf.offset_of("pt_regs", "user_regs")? + base;
    Ok([btf.offset_of("pt_regs", "orig_x0")?, regs + 8, regs + 16, regs + 24, regs + 32, regs + 40])
}


#[cfg(test)]
mod tests {
    use super::*;

    /// Runs against the BTF of the machine the tests run on; every CI machine has it.
    #[test]
    fn resolves_every_offset_on_this_kernel() {
        let btf = Btf::from_sys_fs().expect("kernel BTF is required");
        let offsets = resolve(&btf).expect("all fields resolve");
        assert!(offsets.task_tgid > 0 && offsets.task_tgid != offsets.task_pid);
        assert!(offsets.mm_arg_end > offsets.mm_arg_start);
        assert_eq!(offsets.qstr_name, 8, "qstr is {{ hash_len, name }}");
        #[cfg(target_arch = "x86_64")]
        assert_eq!(regs_args(&btf).unwrap()[0], 112, "pt_regs.di");
    }
}
