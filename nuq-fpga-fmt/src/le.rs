//! Little-endian integer types with alignment 1.
//!
//! Every on-disk structure of the format is made of these, so a record can be viewed in place
//! (zero-copy, via `bytemuck`) at *any* address: the reader accepts input buffers of any
//! alignment, and the values read the same on little- and big-endian hosts.

use bytemuck::{Pod, Zeroable};

macro_rules! le_type {
    ($(#[$doc:meta])* $name:ident, $prim:ty, $n:literal) => {
        $(#[$doc])*
        #[derive(Clone, Copy, Default, PartialEq, Eq, Hash, Pod, Zeroable)]
        #[repr(transparent)]
        pub struct $name(pub [u8; $n]);

        impl $name {
            /// Wraps a native value.
            pub const fn new(v: $prim) -> Self {
                Self(v.to_le_bytes())
            }
            /// The native value.
            pub const fn get(self) -> $prim {
                <$prim>::from_le_bytes(self.0)
            }
        }

        impl core::fmt::Debug for $name {
            fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
                core::fmt::Debug::fmt(&self.get(), f)
            }
        }

        impl From<$prim> for $name {
            fn from(v: $prim) -> Self {
                Self::new(v)
            }
        }
    };
}

le_type!(
    /// A little-endian `u16` stored as two bytes.
    U16Le, u16, 2
);
le_type!(
    /// A little-endian `u32` stored as four bytes.
    U32Le, u32, 4
);
le_type!(
    /// A little-endian `u64` stored as eight bytes.
    U64Le, u64, 8
);
le_type!(
    /// A little-endian `i16` stored as two bytes.
    I16Le, i16, 2
);
le_type!(
    /// A little-endian `i32` stored as four bytes.
    I32Le, i32, 4
);
