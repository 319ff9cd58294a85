//! Where the eBPF object comes from: `LB_EBPF_OBJECT` if set (tests, development), else
//! the copy embedded at build time.

use std::path::PathBuf;

use super::DataplaneError;

/// Environment variable naming an eBPF object file to load instead of the embedded one.
pub const OBJECT_ENV: &str = "LB_EBPF_OBJECT";

static EMBEDDED: &[u8] = aya::include_bytes_aligned!(concat!(env!("OUT_DIR"), "/lb-ebpf.o"));

/// The object's bytes in 8-byte aligned storage, as the ELF parser needs.
pub struct Object {
    words: Vec<u64>,
    len: usize,
}

impl Object {
    pub fn load() -> Result<Self, DataplaneError> {
        if let Some(path) = std::env::var_os(OBJECT_ENV).map(PathBuf::from) {
            let bytes = std::fs::read(&path).map_err(|e| {
                DataplaneError::Object(format!(
                    "{OBJECT_ENV}={}: {e}; run `cargo xtask build-ebpf` or fix the path",
                    path.display()
                ))
            })?;
            return Ok(Self::from_bytes(&bytes));
        }
        if EMBEDDED.is_empty() {
            return Err(DataplaneError::Object(format!(
                "this lb-daemon was built without the eBPF object; run `cargo xtask build` \
                 (or `cargo xtask build-ebpf` and set {OBJECT_ENV} to its path)"
            )));
        }
        Ok(Self::from_bytes(EMBEDDED))
    }

    fn from_bytes(bytes: &[u8]) -> Self {
        let mut words = vec![0u64; bytes.len().div_ceil(8)];
        for (w, chunk) in words.iter_mut().zip(bytes.chunks(8)) {
            let mut b = [0u8; 8];
            b[..chunk.len()].copy_from_slice(chunk);
            *w = u64::from_ne_bytes(b);
        }
        Self {
            words,
            len: bytes.len(),
        }
    }

    pub fn bytes(&self) -> &[u8] {
        // SAFETY: any u64 storage is valid as bytes, and len <= 8 * words.len().
        unsafe { std::slice::from_raw_parts(self.words.as_ptr().cast::<u8>(), self.len) }
    }
}
