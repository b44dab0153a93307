//! A small reader for the kernel's BTF, enough to find struct member offsets.
//!
//! aya's Rust eBPF has no CO-RE, so the kernel programs read struct fields at offsets this
//! module resolves at start-up from `/sys/kernel/btf/vmlinux`.

use std::collections::HashMap;

use thiserror::Error;

#[derive(Debug, Error)]
pub enum BtfError {
    #[error("BTF data is malformed: {0}")]
    Malformed(&'static str),
    #[error("kernel BTF has no struct `{0}`")]
    NoStruct(String),
    #[error("kernel BTF struct `{strukt}` has no member `{member}`")]
    NoMember { strukt: String, member: String },
    #[error("`{0}` is a bitfield; it cannot be read at a byte offset")]
    Bitfield(String),
}

const MAGIC: u16 = 0xeb9f;

const KIND_INT: u32 = 1;
const KIND_PTR: u32 = 2;
const KIND_ARRAY: u32 = 3;
const KIND_STRUCT: u32 = 4;
const KIND_UNION: u32 = 5;
const KIND_ENUM: u32 = 6;
const KIND_FWD: u32 = 7;
const KIND_TYPEDEF: u32 = 8;
const KIND_VOLATILE: u32 = 9;
const KIND_CONST: u32 = 10;
const KIND_RESTRICT: u32 = 11;
const KIND_FUNC: u32 = 12;
const KIND_FUNC_PROTO: u32 = 13;
const KIND_VAR: u32 = 14;
const KIND_DATASEC: u32 = 15;
const KIND_FLOAT: u32 = 16;
const KIND_DECL_TAG: u32 = 17;
const KIND_TYPE_TAG: u32 = 18;
const KIND_ENUM64: u32 = 19;

#[derive(Clone, Debug)]
struct Member {
    name: u32,
    ty: u32,
    /// Bit offset.
    offset: u32,
    bitfield: bool,
}

#[derive(Clone, Debug)]
struct Type {
    kind: u32,
    name: u32,
    /// The referenced type for modifiers, typedefs and pointers.
    ty: u32,
    members: Vec<Member>,
}

/// Parsed kernel BTF: types and the string table.
pub struct Btf {
    types: Vec<Type>,
    strings: Vec<u8>,
    structs_by_name: HashMap<String, u32>,
}

fn u32_at(data: &[u8], at: usize) -> Result<u32, BtfError> {
    data.get(at..at + 4)
        .map(|b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
        .ok_or(BtfError::Malformed("truncated"))
}

impl Btf {
    pub fn from_sys_fs() -> anyhow::Result<Btf> {
        let path = "/sys/kernel/btf/vmlinux";
        let data = std::fs::read(path).map_err(|e| {
            anyhow::anyhow!("cannot read {path}: {e}; agent-observer needs a kernel built with CONFIG_DEBUG_INFO_BTF")
        })?;
        Ok(Btf::parse(&data)?)
    }

    /// Parses little-endian BTF (the only byte order on the targets we support).
    pub fn parse(data: &[u8]) -> Result<Btf, BtfError> {
        if data.len() < 24 || u16::from_le_bytes([data[0], data[1]]) != MAGIC {
            return Err(BtfError::Malformed("bad magic"));
        }
        let hdr_len = u32_at(data, 4)? as usize;
        let type_off = u32_at(data, 8)? as usize;
        let type_len = u32_at(data, 12)? as usize;
        let str_off = u32_at(data, 16)? as usize;
        let str_len = u32_at(data, 20)? as usize;
        let section = |off: usize, len: usize| {
            let start = hdr_len.checked_add(off).ok_or(BtfError::Malformed("offset overflow"))?;
            let end = start.checked_add(len).ok_or(BtfError::Malformed("length overflow"))?;
            data.get(start..end).ok_or(BtfError::Malformed("section out of bounds"))
        };
        let type_data = section(type_off, type_len)?;
        let strings = section(str_off, str_len)?.to_vec();

        // Type id 0 is void.
        let mut types = vec![Type { kind: 0, name: 0, ty: 0, members: Vec::new() }];
        let mut at = 0usize;
        while at < type_data.len() {
            let name = u32_at(type_data, at)?;
            let info = u32_at(type_data, at + 4)?;
            let size_or_type = u32_at(type_data, at + 8)?;
            at += 12;
            let vlen = (info & 0xffff) as usize;
            let kind = (info >> 24) & 0x1f;
            let kind_flag = info >> 31 == 1;
            let mut ty = Type { kind, name, ty: size_or_type, members: Vec::new() };
            let extra = match kind {
                KIND_INT | KIND_VAR | KIND_DECL_TAG => 4,
                KIND_ARRAY => {
                    ty.ty = u32_at(type_data, at)?;
                    12
                }
                KIND_STRUCT | KIND_UNION => {
                    for i in 0..vlen {
                        let m = at + i * 12;
                        let raw = u32_at(type_data, m + 8)?;
                        let (offset, bitfield) = if kind_flag {
                            (raw & 0x00ff_ffff, raw >> 24 != 0)
                        } else {
                            (raw, false)
                        };
                        ty.members.push(Member {
                            name: u32_at(type_data, m)?,
                            ty: u32_at(type_data, m + 4)?,
                            offset,
                            bitfield,
                        });
                    }
                    vlen * 12
                }
                KIND_ENUM | KIND_FUNC_PROTO => vlen * 8,
                KIND_DATASEC | KIND_ENUM64 => vlen * 12,
                KIND_PTR | KIND_FWD | KIND_TYPEDEF | KIND_VOLATILE | KIND_CONST | KIND_RESTRICT
                | KIND_FUNC | KIND_FLOAT | KIND_TYPE_TAG => 0,
                _ => return Err(BtfError::Malformed("unknown type kind")),
            };
            at = at.checked_add(extra).ok_or(BtfError::Malformed("overflow"))?;
            if at > type_data.len() {
                return Err(BtfError::Malformed("type runs past its section"));
            }
            types.push(ty);
        }

        let mut btf = Btf { types, strings, structs_by_name: HashMap::new() };
        for id in 1..btf.types.len() {
            let t = &btf.types[id];
            if t.kind == KIND_STRUCT && !t.members.is_empty() {
                let name = btf.name(t.name).to_owned();
                // Keep the first complete definition; later duplicates are identical.
                btf.structs_by_name.entry(name).or_insert(id as u32);
            }
        }
        Ok(btf)
    }

    fn name(&self, off: u32) -> &str {
        let bytes = self.strings.get(off as usize..).unwrap_or(&[]);
        let end = bytes.iter().position(|&b| b == 0).unwrap_or(bytes.len());
        std::str::from_utf8(&bytes[..end]).unwrap_or("")
    }

    /// Follows typedefs and qualifiers.
    fn resolve(&self, mut id: u32) -> u32 {
        for _ in 0..32 {
            match self.types.get(id as usize) {
                Some(t)
                    if matches!(
                        t.kind,
                        KIND_TYPEDEF | KIND_VOLATILE | KIND_CONST | KIND_RESTRICT | KIND_TYPE_TAG
                    ) =>
                {
                    id = t.ty
                }
                _ => break,
            }
        }
        id
    }

    /// Byte offset of `path` (dot-separated members, e.g. `__sk_common.skc_family`) inside the
    /// struct named `strukt`. Anonymous struct and union members are searched through, as C does.
    pub fn offset_of(&self, strukt: &str, path: &str) -> Result<u32, BtfError> {
        let mut id = *self
            .structs_by_name
            .get(strukt)
            .ok_or_else(|| BtfError::NoStruct(strukt.to_owned()))?;
        let mut total_bits = 0u32;
        for member in path.split('.') {
            let (bits, bitfield, ty) = self.find_member(id, member, 0).ok_or_else(|| {
                BtfError::NoMember { strukt: strukt.to_owned(), member: path.to_owned() }
            })?;
            if bitfield || bits % 8 != 0 {
                return Err(BtfError::Bitfield(format!("{strukt}.{path}")));
            }
            total_bits += bits;
            id = self.resolve(ty);
        }
        Ok(total_bits / 8)
    }

    /// Whether `strukt` has a member named `member` (searched as [`Btf::offset_of`] does).
    pub fn has_member(&self, strukt: &str, member: &str) -> bool {
        self.offset_of(strukt, member).is_ok()
    }

    fn find_member(&self, id: u32, name: &str, depth: u32) -> Option<(u32, bool, u32)> {
        let t = self.types.get(id as usize)?;
        if depth > 8 || !matches!(t.kind, KIND_STRUCT | KIND_UNION) {
            return None;
        }
        for m in &t.members {
            let mname = self.name(m.name);
            if mname == name {
                return Some((m.offset, m.bitfield, m.ty));
            }
            if mname.is_empty() {
                if let Some((bits, bf, ty)) = self.find_member(self.resolve(m.ty), name, depth + 1) {
                    return Some((m.offset + bits, bf, ty));
                }
            }
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Builds BTF for: struct inner { int a; int b; }; struct outer { long x; union { int y; struct inner in; }; };
    fn sample() -> Vec<u8> {
        let strings = b"\0int\0inner\0a\0b\0outer\0x\0y\0in\0long\0".to_vec();
        let s = |name: &str| {
            let pos = strings.windows(name.len() + 2).position(|w| {
                w[0] == 0 && &w[1..=name.len()] == name.as_bytes() && w[name.len() + 1] == 0
            });
            pos.unwrap() as u32 + 1
        };
        let mut t = Vec::new();
        let mut push = |v: u32| t.extend_from_slice(&v.to_le_bytes());
        // 1: int
        push(s("int"));
        push(KIND_INT << 24);
        push(4);
        push(32);
        // 2: long
        push(s("long"));
        push(KIND_INT << 24);
        push(8);
        push(64);
        // 3: struct inner
        push(s("inner"));
        push(KIND_STRUCT << 24 | 2);
        push(8);
        for (n, off) in [("a", 0u32), ("b", 32)] {
            push(s(n));
            push(1);
            push(off);
        }
        // 4: anonymous union { int y; struct inner in; }
        push(0);
        push(KIND_UNION << 24 | 2);
        push(8);
        for (n, ty) in [("y", 1u32), ("in", 3)] {
            push(s(n));
            push(ty);
            push(0);
        }
        // 5: struct outer { long x; union; }
        push(s("outer"));
        push(KIND_STRUCT << 24 | 2);
        push(16);
        push(s("x"));
        push(2);
        push(0);
        push(0);
        push(4);
        push(64);
        let mut out = Vec::new();
        out.extend_from_slice(&MAGIC.to_le_bytes());
        out.push(1);
        out.push(0);
        for v in [24u32, 0, t.len() as u32, t.len() as u32, strings.len() as u32] {
            out.extend_from_slice(&v.to_le_bytes());
        }
        out.extend_from_slice(&t);
        out.extend_from_slice(&strings);
        out
    }

    #[test]
    fn finds_members_through_anonymous_unions_and_nested_structs() {
        let btf = Btf::parse(&sample()).unwrap();
        assert_eq!(btf.offset_of("outer", "x").unwrap(), 0);
        assert_eq!(btf.offset_of("outer", "y").unwrap(), 8);
        assert_eq!(btf.offset_of("outer", "in.b").unwrap(), 12);
        assert!(matches!(btf.offset_of("outer", "zz"), Err(BtfError::NoMember { .. })));
        assert!(matches!(btf.offset_of("nope", "x"), Err(BtfError::NoStruct(_))));
    }

    #[test]
    fn rejects_garbage_without_panicking() {
        assert!(Btf::parse(b"").is_err());
        assert!(Btf::parse(&[0x9f, 0xeb, 1, 0, 24, 0, 0, 0, 0, 0, 0, 0, 255, 255, 255, 255]).is_err());
        let mut data = sample();
        data[12] = 0xff; // type_len past the end
        assert!(Btf::parse(&data).is_err());
    }
}
