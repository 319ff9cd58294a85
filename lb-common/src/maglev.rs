//! The Maglev table sizes a service may use: the configuration validates `table_size`
//! against them and user space builds tables of exactly these sizes.

/// Table size used when the user does not choose one: fine up to ~650 backends.
pub const DEFAULT_TABLE_SIZE: u32 = 65537;

/// The table sizes a user may choose (primes), smallest to largest.
pub const TABLE_SIZES: [u32; 10] = [
    251, 509, 1021, 2039, 4093, 8191, 16381, 32749, 65537, 131071,
];
