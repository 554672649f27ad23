//! The input side of the serde codec: a postcard flavor that reads a slice and bounds how deep decoding nests.
//!
//! Postcard has no nesting limit, so a recursive message type (a tree of `Box`es) would let a peer nest a value
//! as deep as a frame allows and overflow the stack of the task decoding it, which aborts the process. Every level
//! of nesting reads at least one byte (a variant, an option tag, a length) through [`Flavor::pop`], so every
//! [`CHECK_EVERY`] such reads this flavor measures how much stack the decoding has used since it began, and
//! fails past [`STACK_BUDGET`]. The budget is what is at risk (stack), not a depth that would mean different
//! sizes in debug and release builds.

use postcard::de_flavors::Flavor;

/// Stack the decoding of one message may use: room for hundreds of nested levels in a debug build (and
/// thousands in release), a small part of a tokio worker thread's 2 MiB.
pub(super) const STACK_BUDGET: usize = 256 * 1024;

/// How many one-byte reads pass between two looks at the stack: a look costs a few nanoseconds, and one every 8
/// reads lets a decoding pass the budget by at most 8 levels. A power of two.
const CHECK_EVERY: u32 = 8;

/// A slice being read, with the stack address at which its decoding began.
pub(super) struct Bounded<'de> {
    rest: &'de [u8],
    base: usize,
    pops: u32,
    too_deep: bool,
}

impl<'de> Bounded<'de> {
    /// Reads `bytes`; the caller's frame is the base of the stack budget.
    #[inline(never)]
    pub(super) fn new(bytes: &'de [u8]) -> Self {
        Bounded { rest: bytes, base: stack_address(), pops: 0, too_deep: false }
    }

    /// Fails once decoding has used more than the budget (stacks grow down on every target we build for; were
    /// one to grow up, the difference would saturate at 0 and only the budget would be lost, not safety).
    #[inline]
    fn check_depth(&mut self) -> postcard::Result<()> {
        self.pops = self.pops.wrapping_add(1);
        if self.pops % CHECK_EVERY == 0 && self.base.saturating_sub(stack_address()) > STACK_BUDGET {
            self.too_deep = true;
            return Err(postcard::Error::DeserializeBadEncoding);
        }
        Ok(())
    }
}

/// What is left once decoding ends: the unread bytes, and whether it stopped for nesting too deep.
pub(super) struct Remainder<'de> {
    pub(super) unread: &'de [u8],
    pub(super) too_deep: bool,
}

impl<'de> Flavor<'de> for Bounded<'de> {
    type Remainder = Remainder<'de>;
    type Source = &'de [u8];

    #[inline]
    fn pop(&mut self) -> postcard::Result<u8> {
        self.check_depth()?;
        let (&byte, rest) = self.rest.split_first().ok_or(postcard::Error::DeserializeUnexpectedEnd)?;
        self.rest = rest;
        Ok(byte)
    }

    /// What is left bounds every length the input claims: postcard then gives serde no size hint for a longer
    /// sequence, and serde reserves nothing ahead of its elements.
    #[inline]
    fn size_hint(&self) -> Option<usize> {
        Some(self.rest.len())
    }

    #[inline]
    fn try_take_n(&mut self, count: usize) -> postcard::Result<&'de [u8]> {
        if count > self.rest.len() {
            return Err(postcard::Error::DeserializeUnexpectedEnd);
        }
        let (taken, rest) = self.rest.split_at(count);
        self.rest = rest;
        Ok(taken)
    }

    fn finalize(self) -> postcard::Result<Remainder<'de>> {
        Ok(Remainder { unread: self.rest, too_deep: self.too_deep })
    }
}

/// The address of a local of the calling frame: how deep the stack is here.
#[inline(always)]
fn stack_address() -> usize {
    let here = 0u8;
    std::hint::black_box(std::ptr::addr_of!(here)).addr()
}
