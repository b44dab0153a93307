//! Which function an address belongs to, in a stripped binary.
//!
//! Unwind tables (`.eh_frame`) are authoritative and survive stripping; when a file has none
//! (Bun's own runtime binary ships without `.eh_frame`) the entry is found by scanning back for
//! a frame-pointer prologue, which only works for code built with frame pointers.

use super::{
    eh_frame::FdeIndex,
    image::Image,
    x86::{self, Code},
};

/// How a function's bounds were found.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Bounds {
    /// From an `.eh_frame` FDE.
    Fde,
    /// From a prologue scan; `end` is approximate (the next prologue).
    Prologue,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Function {
    pub start: u64,
    pub end: u64,
    pub bounds: Bounds,
}

pub(crate) struct Functions<'a, 'd> {
    img: &'a Image<'d>,
    code: &'a [Code<'d>],
    fde: FdeIndex<'d>,
}

impl<'a, 'd> Functions<'a, 'd> {
    pub fn new(img: &'a Image<'d>, code: &'a [Code<'d>]) -> Self {
        Functions { img, code, fde: FdeIndex::new(img) }
    }

    pub fn has_unwind_tables(&self) -> bool {
        !self.fde.is_none()
    }

    /// The function containing the code at `va`.
    pub fn containing(&self, va: u64) -> Option<Function> {
        if let Some(range) = self.fde.lookup(self.img, va) {
            return Some(Function { start: range.start, end: range.end, bounds: Bounds::Fde });
        }
        let code = x86::region_of(self.code, va)?;
        let start = x86::prologue_entry(code, va)?;
        Some(Function { start, end: x86::prologue_function_end(code, start), bounds: Bounds::Prologue })
    }

    /// The code of `f`, for scanning its body.
    pub fn code_of(&self, f: &Function) -> Option<&'a Code<'d>> {
        x86::region_of(self.code, f.start)
    }
}
